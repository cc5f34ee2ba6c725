"""ts.sweep: batched sweeps against the same points simulated one by one, chunking under a memory
budget, resuming from cached chunks, NaN (not exceptions) for silent points, maps.

Expected values are computed here from single-neuron ``ts.simulate`` runs, a step waveform built
here, and ``ts.analysis`` (or a plain loop where ts.analysis has no such function), never by the
sweep code.
"""

import brian2 as b2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

import tidesim as ts
from tidesim import sweep
from tidesim.analysis import NoSpikesError

DT = 1e-4
START, STOP, DURATION = 0.05, 0.35, 0.4
AMPS = (0.6e-9, 0.9e-9, 1.2e-9)
MEASURES = ["spike_count", "rate", "first_spike_latency", "isi_cv", "adaptation_index", "burst_fraction",
            "fi_slope", "rheobase_estimate"]


@pytest.fixture(scope="module")
def adex():
    return ts.models.get("adex")


def one_point(model, params, amp, start=START, stop=STOP, duration=DURATION, dt=DT):
    """Spike times (s) of one neuron, stepped from start to stop, simulated on its own."""
    steps = int(round(duration / dt))
    current = torch.zeros(steps, dtype=torch.float64)
    current[int(round(start / dt)):int(round(stop / dt))] = amp
    res = ts.simulate(model, duration=duration, dt=dt, n=1, params=params, inputs={"I": current}, record=[])
    return np.asarray(res.spike_trains[0])


def expected_measures(times, start=START, stop=STOP):
    """The built-in measures by their definitions, from one train of absolute spike times."""
    inside = times[(times >= start - 1e-12) & (times < stop - 1e-12)] - start
    n = inside.size
    isi = np.diff(inside)
    near = [(k > 0 and isi[k - 1] <= 10e-3 + 1e-12) or (k < n - 1 and isi[k] <= 10e-3 + 1e-12) for k in range(n)]
    try:
        ai = ts.analysis.adaptation_index(inside)
    except NoSpikesError:
        ai = np.nan
    return {"spike_count": n, "rate": n / (stop - start), "first_spike_latency": inside[0] if n else np.nan,
            "isi_cv": ts.analysis.cv_isi([inside], nan_policy="nan")[0] if n else np.nan,
            "adaptation_index": ai, "burst_fraction": np.mean(near) if n else np.nan}


def point_level(rates, amps):
    rates, amps = np.asarray(rates), np.asarray(amps)
    firing = rates > 0
    slope = np.polyfit(amps[firing], rates[firing], 1)[0] if firing.sum() >= 2 else np.nan
    rheobase = amps[firing].min() if firing.any() else np.nan
    return slope, rheobase


def assert_close(got, want, what):
    if np.isnan(want):
        assert np.isnan(got), f"{what}: expected NaN, got {got}"
    else:
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), what


def test_2d_sweep_matches_points_simulated_one_by_one(adex):
    a = np.linspace(0, 8e-9, 7)
    b = np.linspace(0, 160e-12, 5)
    protocol = sweep.steps(AMPS, start=START, stop=STOP, duration=DURATION)
    df = sweep(adex, {"a": a, "b": b}, protocol, measures=MEASURES, progress=False, dt=DT)
    assert len(df) == a.size * b.size * len(AMPS)
    assert list(df.columns) == ["point", "a", "b", "amplitude", *MEASURES]
    assert df.attrs["units"]["a"] == "S" and df.attrs["units"]["rate"] == "Hz"
    # full factorial, last name fastest, every amplitude per point
    first = df[df.point == 1]
    assert first.a.unique().tolist() == [a[0]] and first.b.unique().tolist() == [b[1]]
    assert first.amplitude.tolist() == list(AMPS)
    assert df.rate.max() > 20  # the chosen region fires
    checked = 0
    for point in (0, 6, 17, 23, 34):
        rows = df[df.point == point]
        params = {"a": float(rows.a.iloc[0]), "b": float(rows.b.iloc[0])}
        rates = []
        for (_, row), amp in zip(rows.iterrows(), AMPS):
            want = expected_measures(one_point(adex, params, amp))
            rates.append(want["rate"])
            for name, value in want.items():
                assert_close(row[name], value, f"point {point} {params}, {amp} A: {name}")
                checked += 1
        slope, rheobase = point_level(rates, AMPS)
        assert_close(rows.fi_slope.iloc[0], slope, f"point {point}: fi_slope")
        assert_close(rows.rheobase_estimate.iloc[0], rheobase, f"point {point}: rheobase")
    assert checked == 5 * 3 * 6


def test_analysis_functions_and_custom_measures(adex):
    protocol = sweep.steps([0.3e-9, 1.0e-9], start=0.02, stop=0.22, duration=0.25)
    points = pd.DataFrame({"b": [0.0, 50e-12, 150e-12]})
    df = sweep(adex, points, protocol, progress=False,
               measures=[ts.analysis.cv_isi, ts.analysis.adaptation_index, ("last_spike", lambda t: t[-1]),
                         {"n_intervals": lambda t: len(t) - 1}])
    assert list(df.columns[-4:]) == ["isi_cv", "adaptation_index", "last_spike", "n_intervals"]
    for _, row in df.iterrows():
        times = one_point(adex, {"b": row.b}, row.amplitude, 0.02, 0.22, 0.25)
        inside = times[(times >= 0.02 - 1e-12) & (times < 0.22 - 1e-12)] - 0.02
        assert_close(row.last_spike, inside[-1] if inside.size else np.nan, "last_spike")
        assert_close(row.n_intervals, inside.size - 1, "n_intervals")  # defined (-1) on silent trains too
        cv = ts.analysis.cv_isi([inside], nan_policy="nan")[0] if inside.size else np.nan
        assert_close(row.isi_cv, cv, "isi_cv")
    assert df[df.amplitude == 0.3e-9].last_spike.isna().all()  # 0.3 nA is below this AdEx's rheobase


def test_silent_points_give_nan_with_counts(adex):
    # AdEx rheobase ~ (gL + a)(VT - EL - DeltaT): ~0.62 nA at gL = 30 nS, ~1.2 nA at 60 nS, ~7 nA at 400 nS.
    # So: I = 0 silent everywhere (rest at E_L); 0.5 nA silent everywhere; 1.5 nA fires but at 400 nS.
    protocol = sweep.steps([0.0, 0.5e-9, 1.5e-9], start=0.02, stop=0.22, duration=0.25)
    points = pd.DataFrame({"gL": [30e-9, 60e-9, 400e-9]})
    df = sweep(adex, points, protocol, progress=False,
               measures=MEASURES + [("ai", lambda t: ts.analysis.adaptation_index(t))])
    silent = df[df.amplitude < 1e-9]
    assert (silent.spike_count == 0).all() and (silent.rate == 0).all()
    for name in ("first_spike_latency", "isi_cv", "adaptation_index", "burst_fraction", "ai"):
        assert silent[name].isna().all(), name
    never = df[df.gL == 400e-9]
    assert (never.spike_count == 0).all()
    assert never.rheobase_estimate.isna().all()
    firing = df[(df.gL < 100e-9) & (df.amplitude == 1.5e-9)]
    assert (firing.spike_count > 3).all() and np.isfinite(firing[["isi_cv", "ai"]].to_numpy()).all()
    assert (df[df.gL < 100e-9].rheobase_estimate == 1.5e-9).all()
    counts = df.attrs["nan_counts"]
    assert counts == {c: int(df[c].isna().sum()) for c in MEASURES + ["ai"]}
    assert counts["first_spike_latency"] == 7 and counts["burst_fraction"] == 7
    assert counts["spike_count"] == 0 and counts["rate"] == 0
    assert counts["rheobase_estimate"] == 3  # the 400 nS point's three rows
    assert counts["fi_slope"] == 9  # no point fires at two amplitudes: no slope


def test_a_point_that_blows_up_is_nan_and_the_others_are_unaffected(adex):
    # DeltaT = 1 uV: exp((v - VT)/DeltaT) overflows in the first step (ts.simulate raises for it)
    protocol = sweep.steps([0.9e-9, 1.2e-9], start=0.02, stop=0.15, duration=0.15)
    points = pd.DataFrame({"DeltaT": [2e-3, 1e-6, 3e-3, 1.5e-3]})
    with pytest.raises(ts.NumericalInstabilityError):
        one_point(adex, {"DeltaT": 1e-6}, 0.9e-9, 0.02, 0.15, 0.15)
    df = sweep(adex, points, protocol, progress=False, measures=["spike_count", "rate", "fi_slope"])
    assert df.attrs["diverged"] == {"rows": 2, "points": [1]}
    bad = df[df.point == 1]
    assert bad[["spike_count", "rate", "fi_slope"]].isna().all().all()
    good = df[df.point != 1]
    for _, row in good.iterrows():
        want = expected_measures(one_point(adex, {"DeltaT": row.DeltaT}, row.amplitude, 0.02, 0.15, 0.15),
                                 0.02, 0.15)
        assert row.spike_count == want["spike_count"] > 0
    assert np.isfinite(good.fi_slope).all()
    assert df.attrs["nan_counts"]["spike_count"] == 2


def test_memory_budget_chunks_and_gives_one_chunk_results(adex):
    protocol = sweep.steps([0.8e-9, 1.1e-9], start=0.02, stop=0.18, duration=0.2)
    points = sweep.grid(a=np.linspace(0, 6e-9, 6), tau_w=[50e-3, 150e-3, 300e-3])
    whole = sweep(adex, points, protocol, progress=False, n_per_chunk=len(points))
    assert whole.attrs["chunks"] == 1
    small = sweep(adex, points, protocol, progress=False, memory_budget="200kB")  # 2000 steps: a few points
    assert 1 < small.attrs["points_per_chunk"] < len(points) and small.attrs["chunks"] > 2
    pd.testing.assert_frame_equal(small, whole, check_exact=True)
    with pytest.warns(UserWarning, match="one point per chunk"):
        tiny = sweep(adex, points.iloc[:4], protocol, progress=False, memory_budget=1)
    assert tiny.attrs["chunks"] == 4
    pd.testing.assert_frame_equal(tiny, whole.iloc[:8], check_exact=True)


def test_memory_budget_bounds_the_peak(adex):
    """2000 points x 2000 steps: a float64 spike raster of one batch would be 32 MB; the compiled engine
    hands spikes back as events, and a 4 MB budget keeps the peak under 4 MB."""
    import tracemalloc

    protocol = sweep.steps([1e-9], start=0.02, stop=0.18, duration=0.2)
    points = sweep.grid(a=np.linspace(0, 6e-9, 50), b=np.linspace(0, 100e-12, 40))
    sweep(adex, points.iloc[:4], protocol, progress=False)  # kernels built and loaded outside the measurement
    peaks = {}
    for budget in ("4MB", "128MB"):
        tracemalloc.start()
        try:
            out = sweep(adex, points, protocol, progress=False, memory_budget=budget)
            peaks[budget] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(out) == 2000
    assert peaks["4MB"] < 4e6
    assert peaks["128MB"] < 8e6  # one chunk of 2000 points: still no raster


def _count_simulations(monkeypatch):
    import tidesim.sweep.run as run

    calls = []
    real = run.simulate

    def counting(*args, **kwargs):
        calls.append(kwargs.get("n"))
        return real(*args, **kwargs)

    monkeypatch.setattr(run, "simulate", counting)
    return calls


def test_resume_reuses_finished_chunks(adex, tmp_path, monkeypatch):
    protocol = sweep.steps([0.9e-9, 1.2e-9], start=0.02, stop=0.12, duration=0.15)
    points = sweep.grid(a=np.linspace(0, 6e-9, 8), b=np.linspace(0, 100e-12, 5))
    kw = dict(progress=False, n_per_chunk=10, cache_dir=tmp_path)
    calls = _count_simulations(monkeypatch)

    # an interrupted run: the third chunk's simulation dies
    import tidesim.sweep.run as run

    counting = run.simulate

    def dies_on_fifth(*args, **kwargs):
        if len(calls) == 4:
            raise KeyboardInterrupt
        return counting(*args, **kwargs)

    monkeypatch.setattr(run, "simulate", dies_on_fifth)
    with pytest.raises(KeyboardInterrupt):
        sweep(adex, points, protocol, **kw)
    assert len(calls) == 4 and len(list(tmp_path.glob("sweep-adex-*.npz"))) == 2
    monkeypatch.setattr(run, "simulate", counting)

    calls.clear()
    resumed = sweep(adex, points, protocol, **kw)
    assert len(calls) == 2 * 2 and resumed.attrs["cached_chunks"] == 2  # chunks 3 and 4, two amplitudes each
    calls.clear()
    again = sweep(adex, points, protocol, **kw)
    assert calls == [] and again.attrs["cached_chunks"] == 4
    pd.testing.assert_frame_equal(again, resumed, check_exact=True)
    fresh = sweep(adex, points, protocol, progress=False, n_per_chunk=10)
    pd.testing.assert_frame_equal(fresh, resumed, check_exact=True)
    # other arguments, other files: a changed protocol is simulated again
    calls.clear()
    sweep(adex, points, sweep.steps([0.9e-9], start=0.02, stop=0.12, duration=0.15), **kw)
    assert len(calls) == 4


def test_truncated_cache_chunk_is_recomputed_with_a_warning_naming_it(adex, tmp_path, monkeypatch):
    protocol = sweep.steps([1.0e-9], start=0.02, stop=0.12, duration=0.15)
    points = sweep.grid(a=np.linspace(0, 6e-9, 4), b=[0.0, 50e-12])
    kw = dict(progress=False, n_per_chunk=4, cache_dir=tmp_path)
    first = sweep(adex, points, protocol, **kw)
    chunk = sorted(tmp_path.glob("sweep-adex-*.npz"))[0]
    chunk.write_bytes(chunk.read_bytes()[:100])  # a disk that filled up, a copy cut short
    calls = _count_simulations(monkeypatch)
    with pytest.warns(UserWarning, match=f"unreadable cached sweep chunk {chunk}.*recomputing"):
        again = sweep(adex, points, protocol, **kw)
    assert len(calls) == 1 and again.attrs["cached_chunks"] == 1
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    assert np.load(chunk)["counts"].shape == (1, 4)  # rewritten whole


def test_samples_from_bounds_and_maps(adex, artefacts):
    bounds = {"a": (0.5e-9, 8e-9, "log"), "b": (0, 150e-12)}
    s = sweep.sample(bounds, 48, method="sobol", seed=1)
    assert s.a.between(0.5e-9, 8e-9).all() and s.b.between(0, 150e-12).all() and s.a.nunique() == 48
    pd.testing.assert_frame_equal(s, sweep.sample(bounds, 48, method="sobol", seed=1))
    assert not s.equals(sweep.sample(bounds, 48, method="sobol", seed=2))
    protocol = sweep.steps([0.7e-9, 1.0e-9], start=0.02, stop=0.22, duration=0.25)
    scattered = sweep(adex, s, protocol, progress=False, measures=["rate", "fi_slope"])
    fig = sweep.plot_map(scattered, "a", "b", measure="rate", amplitude=1.0e-9, log_x=True)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "a (nS)" and ax.get_ylabel() == "b (pA)" and fig.axes[1].get_ylabel() == "rate (Hz)"
    fig.savefig(artefacts / "sweep_scatter_rate.png")
    plt.close(fig)

    grid = sweep(adex, sweep.grid(a=np.linspace(0, 8e-9, 9), b=np.linspace(0, 150e-12, 7)), protocol,
                 progress=False, measures=["rate", "fi_slope"])
    fig = sweep.plot_map(grid, "a", "b", measure="fi_slope")
    mesh = fig.axes[0].collections[0]
    assert fig.axes[1].get_ylabel() == "fi_slope (Hz/nA)"
    shown = np.ma.filled(mesh.get_array().astype(float), np.nan).reshape(7, 9)  # rows: b, columns: a
    want = grid[grid.amplitude == 0.7e-9].pivot(index="b", columns="a", values="fi_slope").to_numpy() * 1e-9
    np.testing.assert_allclose(shown, want, rtol=1e-12)
    assert np.isfinite(shown).sum() > 30
    fig.savefig(artefacts / "sweep_heatmap_fi_slope.png")
    plt.close(fig)
    fig = sweep.plot_map(grid[grid.b == 0], "a", measure="rate", amplitude=0.7e-9)
    line = fig.axes[0].lines[0]
    want = grid[(grid.b == 0) & (grid.amplitude == 0.7e-9)].sort_values("a")
    np.testing.assert_allclose(line.get_xdata(), want.a * 1e9)
    np.testing.assert_allclose(line.get_ydata(), want.rate)
    assert fig.axes[0].get_ylabel() == "rate (Hz)"
    plt.close(fig)
    with pytest.raises(ValueError, match="amplitude="):
        sweep.plot_map(grid, "a", "b", measure="rate")
    with pytest.raises(ValueError, match="parameter 'b' also varies"):
        sweep.plot_map(grid, "a", measure="rate", amplitude=0.7e-9)


def test_bad_input_is_named(adex):
    protocol = sweep.steps([1e-9], start=0.01, stop=0.05)
    with pytest.raises(ts.UnknownIdentifierError, match="'tau_q' is not a parameter of adex"):
        sweep(adex, {"tau_q": [1, 2]}, protocol, progress=False)
    with pytest.raises(ValueError, match="driven by the step protocol"):
        sweep(adex, {"I": [1e-9]}, protocol, progress=False)
    with pytest.raises(ValueError, match="unknown measure 'spikiness'"):
        sweep(adex, {"a": [1e-9]}, protocol, measures=["spikiness"], progress=False)
    with pytest.raises(ts.UnitMismatchError, match="unit S"):
        import brian2 as b2

        sweep(adex, {"a": [1, 2] * b2.mV}, protocol, progress=False)
    with pytest.raises(ValueError, match="end after it starts"):
        sweep.steps([1e-9], start=0.2, stop=0.1)
    with pytest.raises(ValueError, match="non-finite"):
        sweep(adex, pd.DataFrame({"a": [1e-9, np.nan]}), protocol, progress=False)
    with pytest.raises(ValueError, match="memory size"):
        sweep(adex, {"a": [1e-9]}, protocol, memory_budget="lots", progress=False)


@pytest.mark.slow
def test_10000_point_sweep_with_progress_bar(adex, capsys):
    a = np.linspace(0, 10e-9, 100)
    b = np.linspace(0, 200e-12, 100)
    protocol = sweep.steps([1.0e-9], start=0.02, stop=0.2, duration=0.2)
    df = sweep(adex, sweep.grid(a=a, b=b), protocol, measures=["spike_count", "rate", "first_spike_latency",
                                                              "isi_cv", "adaptation_index"], progress=True)
    err = capsys.readouterr().err
    assert "sweep adex" in err and "10000/10000" in err
    assert len(df) == 10_000 and df.attrs["seconds"] < 60
    assert df.rate.nunique() > 5
    for point in (0, 99, 4321, 7777, 9999):
        row = df.iloc[point]
        want = expected_measures(one_point(adex, {"a": row.a, "b": row.b}, 1.0e-9, 0.02, 0.2, 0.2), 0.02, 0.2)
        for name in ("spike_count", "rate", "first_spike_latency", "isi_cv", "adaptation_index"):
            assert_close(row[name], want[name], f"point {point}: {name}")


def test_quantities_given_before_the_model_are_checked_against_it():
    adex = ts.models.get("adex")
    protocol = ts.sweep.steps(np.array([0.5]) * b2.nA, start=0.01, stop=0.05)
    with pytest.raises(ts.UnitMismatchError, match="column 'a' was given in V but adex's a is in S"):
        ts.sweep(adex, ts.sweep.grid(a=np.array([1.0, 2.0]) * b2.mV), protocol)
    with pytest.raises(ts.UnitMismatchError, match="input 'I' was given in V"):
        ts.sweep(adex, ts.sweep.grid(a=[1e-9]), ts.sweep.steps(np.array([0.5]) * b2.mV, start=0.01, stop=0.05))
    with pytest.raises(ts.UnitMismatchError, match="'start'"):
        ts.sweep.steps([0.5e-9], start=10 * b2.mV, stop=0.05)
    bounds = ts.sweep.sample({"b": (0 * b2.pA, 100 * b2.pA)}, 4)
    df = ts.sweep(adex, bounds, protocol, measures=["rate"])
    assert len(df) == 4 and df["b"].between(0, 100e-12).all()
