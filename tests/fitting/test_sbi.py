"""Posterior inference (issue 7): neural posterior estimation with sbi on synthetic AdEx data.

One amortized posterior (3 parameters, 3000 simulations of 3 sweeps of 0.5 s at dt = 0.1 ms) is
trained once per session and conditioned on 20 synthetic recordings whose true parameters are drawn
from the prior: the calibration test counts how often the truth falls in the 90% (and 50%) credible
region and writes the numbers to the artefacts folder (sbi_calibration.json).
"""

import json
import pickle
import time

import numpy as np
import pytest
import torch
from brian2 import ms, mV, pF

import tidesim as ts
from tidesim.fitting import (
    BoundsError,
    FitError,
    FitResult,
    prepare,
)
from tidesim.fitting import sbi as tsbi

BOUNDS = {"a": (0.0, 10e-9), "b": (0.0, 200e-12), "tau_w": (20e-3, 300e-3)}
AMPLITUDES = [0.6e-9, 0.9e-9, 1.2e-9]  # A, steps from 50 to 450 ms of 0.5 s sweeps
NOISE = 0.5e-3  # V, recording noise of the synthetic data


def _recording(params, seed, amplitudes=AMPLITUDES, duration=0.5):
    return ts.datasets.synthetic(ts.models.get("adex"), params, protocol=amplitudes, duration=duration,
                                 noise=NOISE, seed=seed)


@pytest.fixture(scope="module")
def amortized():
    """The posterior trained once (about 30 s on one thread) and reused by every test here."""
    t0 = time.perf_counter()
    post = tsbi.train(ts.models.get("adex"), _recording({}, seed=0), BOUNDS, n_simulations=3000, seed=0)
    post.info["wall_seconds"] = time.perf_counter() - t0
    return post


# ------------------------------------------------------------------------------ statistics
def test_summary_statistics_agree_with_ts_analysis():
    rec = _recording({"a": 2e-9, "b": 60e-12, "tau_w": 100e-3}, seed=3, amplitudes=[0.0, 0.55e-9, 1.0e-9])
    data = prepare(rec)
    starts, stops = tsbi.protocol_windows(data.current)
    assert list(starts) == [500, 500, 500] and list(stops) == [4500, 4500, 4500]  # the 0 pA sweep borrows
    x = tsbi.summary_statistics(data.voltage, data.spikes, data.dt, starts, stops)
    stat = {name: x[:, j].numpy() for j, name in enumerate(tsbi.STATISTICS)}
    window = (0.05, 0.45)
    np.testing.assert_array_equal(stat["count"], rec.spike_counts)
    assert rec.spike_counts[0] == 0 and rec.spike_counts[2] >= 5
    fi = ts.analysis.fi_curve(rec, window=window)
    np.testing.assert_allclose(stat["rate"], fi["rate_Hz"], rtol=1e-9)
    latency = ts.analysis.first_spike_latency(rec, window=window)
    spiking = ~np.isnan(latency)
    # spike times sit on the simulation grid; the raster puts them on it too
    np.testing.assert_allclose(stat["latency"][spiking], latency[spiking], atol=1e-9)
    assert stat["latency"][0] == pytest.approx(0.4)  # silent sweep: the window's length (sentinel)
    cv = ts.analysis.cv_isi(rec, nan_policy="nan")
    np.testing.assert_allclose(stat["isi_cv"][2], cv[2], rtol=1e-6)
    assert stat["isi_cv"][0] == -1.0 and stat["adaptation"][0] == -1.0  # sentinels for a silent sweep
    assert stat["adaptation"][2] == pytest.approx(ts.analysis.adaptation_index(rec.spike_times[2]), rel=1e-6)
    # silent sweep: the voltage statistics are plain means and spreads of the trace
    v0 = rec.voltage[0].numpy()
    assert stat["v_mean"][0] == pytest.approx(v0[500:4500].mean(), rel=1e-12)
    assert stat["v_std"][0] == pytest.approx(v0[500:4500].std(), rel=1e-9)
    assert stat["v_rest"][0] == pytest.approx(np.r_[v0[:500], v0[4500:]].mean(), rel=1e-12)
    # a spiking sweep's subthreshold statistics leave the spikes out
    assert stat["v_mean"][2] < -45e-3 and stat["v_std"][2] < 10e-3
    assert tsbi.estimate_noise(data) == pytest.approx(NOISE, rel=0.1)


def test_prior_scale_is_uniform_per_parameter_scale():
    model = ts.models.get("adex")
    space = ts.fitting.ParameterSpace(model, {"b": (0.0, 200e-12), "tau_w": (10e-3, 1000e-3)})
    assert [bd.scale for bd in space.bounds] == ["linear", "log"]
    mid = tsbi.from_unit(space, torch.tensor([[0.5, 0.5]]))[0]
    assert mid[0].item() == pytest.approx(100e-12) and mid[1].item() == pytest.approx(100e-3)  # geometric mean
    values = torch.tensor([[50e-12, 30e-3], [190e-12, 700e-3]], dtype=torch.float64)
    torch.testing.assert_close(tsbi.from_unit(space, tsbi.to_unit(space, values)), values)


# ------------------------------------------------------------------------------ simulations
def test_chunks_are_reproducible_picklable_and_run_on_dask():
    model = ts.models.get("adex")
    rec = _recording({}, seed=0, amplitudes=[0.8e-9], duration=0.2)
    sim = tsbi.Simulator(model, prepare(rec), ts.fitting.ParameterSpace(model, BOUNDS), noise=NOISE)
    theta = torch.rand(10, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    here = tsbi.simulate(sim, theta, seed=5, chunk=4)
    assert here.shape == (10, len(tsbi.STATISTICS)) and torch.isfinite(here).all()
    torch.testing.assert_close(tsbi.simulate(sim, theta, seed=5, chunk=4), here, rtol=0, atol=0)
    # one batch of 10 points gives each point what it gets alone (the noise aside)
    quiet = tsbi.Simulator(model, prepare(rec), ts.fitting.ParameterSpace(model, BOUNDS), noise=0.0)
    together = quiet.simulate_batch(theta, seed=0)
    alone = torch.cat([quiet.simulate_batch(theta[i:i + 1], seed=0) for i in (0, 7)])
    torch.testing.assert_close(together[[0, 7]], alone)
    shipped = pickle.loads(pickle.dumps(sim))  # what a Dask worker with processes receives
    torch.testing.assert_close(tsbi.simulate(shipped, theta, seed=5, chunk=4), here, rtol=0, atol=0)
    import distributed
    with distributed.Client(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None) as client:
        on_dask = tsbi.simulate(sim, theta, seed=5, chunk=4, client=client)
    torch.testing.assert_close(on_dask, here, rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:overflow encountered")  # Brian2 formatting the inf in the message
def test_a_point_that_blows_up_gets_nan_and_the_others_go_on():
    model = ts.NeuronModel(equations="""dv/dt = k*(v - E)/tau + I/C : volt
                                        I : amp""",
                           threshold=None, reset=None,
                           parameters={"k": 0.0, "E": -70 * mV, "tau": 10 * ms, "C": 100 * pF, "I": 0.0},
                           initial={"v": "E"}, method="euler", name="unstable")
    T = 2000
    current = torch.zeros(T, 1, dtype=torch.float64)
    current[500:1500] = 20e-12
    data = ts.fitting.FitData(1e-4, torch.full((T, 1), -70e-3, dtype=torch.float64), current,
                              torch.zeros(T, 1, dtype=torch.float64), [np.zeros(0)], ["protocol: sweep 0"])
    sim = tsbi.Simulator(model, data, ts.fitting.ParameterSpace(model, {"k": (-1.0, 80.0)}))
    x = sim.simulate_batch(torch.tensor([[0.0], [1.0], [0.05]], dtype=torch.float64), seed=0)
    assert torch.isfinite(x[0]).all() and torch.isfinite(x[2]).all()
    assert torch.isnan(x[1]).all()


# ------------------------------------------------------------------------------ calibration
@pytest.mark.slow
def test_posterior_is_calibrated_on_20_synthetic_datasets(amortized, artefacts):
    """True parameters drawn from the prior; the truth must lie in the 90% highest-posterior-density
    region for at least 14 of 20 datasets (a calibrated posterior averages 18)."""
    rng = np.random.default_rng(2024)
    space = amortized.space
    hpd = {0.9: 0, 0.5: 0}
    marginal = {0.9: 0, 0.5: 0}
    t0 = time.perf_counter()
    for i in range(20):
        true = dict(zip(space.names, tsbi.from_unit(space, torch.as_tensor(rng.uniform(size=(1, 3))))[0].tolist()))
        cond = amortized.condition(_recording(true, seed=100 + i))
        for level in (0.9, 0.5):
            hpd[level] += cond.contains(true, level, seed=i)
            marginal[level] += cond.contains(true, level, seed=i, kind="marginal")
    seconds = time.perf_counter() - t0
    info = amortized.info
    report = {"datasets": 20, "n_simulations": info["n_simulations"], "invalid": info["invalid_simulations"],
              "simulation_s": round(info["simulation_seconds"], 2),
              "training_s": round(info["training_seconds"], 2),
              "epochs": info["epochs"], "conditioning_20_datasets_s": round(seconds, 2),
              "hpd_coverage": {str(k): v / 20 for k, v in hpd.items()},
              "marginal_box_coverage": {str(k): v / 20 for k, v in marginal.items()}}
    (artefacts / "sbi_calibration.json").write_text(json.dumps(report, indent=1))
    print(report)
    assert hpd[0.9] >= 14, report
    assert hpd[0.5] >= 5, report  # not hopelessly over-confident either
    assert hpd[0.5] < hpd[0.9] or hpd[0.9] == 20


# ------------------------------------------------------------------------------ predictive check
def test_predictive_check_reproduces_the_spike_counts(amortized):
    true = {"a": 3e-9, "b": 90e-12, "tau_w": 150e-3}
    rec = _recording(true, seed=7)
    fit = amortized.fit(rec, n_samples=500, seed=1)
    assert isinstance(fit, FitResult) and list(fit.samples.columns) == list(BOUNDS)
    assert len(fit.samples) == 500
    ci = fit.credible_interval(0.9)
    assert list(ci.index) == list(BOUNDS)
    assert (ci["low"] <= ci["median"]).all() and (ci["median"] <= ci["high"]).all()
    assert fit.best_params == pytest.approx({k: fit.samples[k].median() for k in BOUNDS})
    check = fit.predictive_check(rec, n=60)
    counts = check[check["statistic"] == "count"]
    assert len(counts) == 3 and (counts["n_valid"] == 60).all()
    assert counts["inside"].all(), counts
    assert (abs(counts["median"] - counts["data"]) <= np.maximum(1, 0.1 * counts["data"])).all(), counts
    assert check["inside"].mean() >= 0.8, check
    # a held-out sweep with another stimulus: the same posterior samples predict it
    held_out = _recording(true, seed=8, amplitudes=[1.5e-9])
    other = fit.predictive_check(held_out, n=60)
    c = other[other["statistic"] == "count"].iloc[0]
    assert c["low"] <= c["data"] <= c["high"] and abs(c["median"] - c["data"]) <= max(2, 0.1 * c["data"]), other
    # the fitted model (best_params = posterior medians) scores well on the fitted sweeps
    assert (fit.score(rec, baseline=False)["gamma"] > 0.7).all()


def test_a_recording_with_another_protocol_is_refused(amortized):
    with pytest.raises(FitError, match="trained on 3 sweeps"):
        amortized.condition(_recording({}, seed=1, amplitudes=[0.6e-9, 0.9e-9]))
    with pytest.raises(FitError, match="injected current differs"):
        amortized.condition(_recording({}, seed=1, amplitudes=[0.6e-9, 0.9e-9, 1.3e-9]))


# ------------------------------------------------------------------------------ ts.fit(method="sbi")
@pytest.mark.filterwarnings("ignore:Maximum number of epochs")  # 60 epochs: a small, fast problem
def test_ts_fit_method_sbi_end_to_end_with_save_and_load(tmp_path):
    model = ts.models.get("adex")
    true = {"a": 4e-9, "b": 100e-12}
    rec = ts.datasets.synthetic(model, true, protocol=[0.7e-9, 1.1e-9], duration=0.3, noise=NOISE, seed=2)
    fit = ts.fit(model, rec, params={"a": (0.0, 10e-9), "b": (0.0, 200e-12)}, method="sbi", n_simulations=500,
                 n_samples=300, seed=0, sbi_options={"max_epochs": 60})
    assert fit.samples.shape == (300, 2) and fit.settings["n_simulations"] == 500
    assert fit.settings["method"].startswith("sbi")
    for k, (lo, hi) in {"a": (0.0, 10e-9), "b": (0.0, 200e-12)}.items():
        assert lo <= fit.samples[k].min() and fit.samples[k].max() <= hi
    ci = fit.credible_interval(0.9)
    assert ci.loc["b", "low"] <= true["b"] <= ci.loc["b", "high"], ci  # b is well constrained by the counts
    assert np.isfinite(fit.loss) and "FitResult(adex" in repr(fit)
    import matplotlib.pyplot as plt

    plt.close(fit.plot())  # the data-vs-model figure works without an optimiser history
    lp = fit.posterior.log_prob({"a": [true["a"], 9.9e-9], "b": [true["b"], 5e-12]})
    assert lp[0] > lp[1]
    path = fit.save(tmp_path / "sbi-fit")
    assert (path / "samples.csv").exists()
    back = FitResult.load(path)
    assert back.best_params == fit.best_params and back.posterior is None
    np.testing.assert_array_equal(back.samples.to_numpy(), fit.samples.to_numpy())
    assert back.credible_interval(0.9).equals(ci)
    check = back.predictive_check(rec, n=20)
    assert set(check["statistic"]) == set(tsbi.STATISTICS) and len(check) == 2 * len(tsbi.STATISTICS)
    # a fit of another method still saves and loads without samples
    plain = FitResult(model, true, np.array([0.1]), fit.starts, fit.history, {"dt": 1e-4, "input": "I"})
    assert FitResult.load(plain.save(tmp_path / "plain")).samples is None
    with pytest.raises(FileExistsError, match="overwrite=True"):  # a saved fit is never replaced unasked
        plain.save(path)
    assert FitResult.load(path).samples is not None
    assert FitResult.load(plain.save(path, overwrite=True)).samples is None  # over the sbi fit: its samples go
    with pytest.raises(ValueError, match="method='sbi'"):
        plain.credible_interval()


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("n", [0, 10, -5, 2.5, True, "many"])
def test_bad_n_simulations_is_refused_before_simulating(n):
    rec = _recording({}, seed=0, amplitudes=[0.8e-9], duration=0.2)
    with pytest.raises(FitError, match="n_simulations must be a whole number of at least 50"):
        ts.fit(ts.models.get("adex"), rec, params={"b": (0.0, 200e-12)}, method="sbi", n_simulations=n)


@pytest.mark.parametrize("params, match", [
    ({}, "needs bounds"), (["a", "b"], "needs bounds"), ({"b": 80e-12}, "must be \\(low, high\\)"),
    ({"b": (0.0, float("inf"))}, "must be finite"), ({"b": (200e-12, 0.0)}, "empty")])
def test_missing_or_bad_bounds_are_refused(params, match):
    rec = _recording({}, seed=0, amplitudes=[0.8e-9], duration=0.2)
    with pytest.raises(BoundsError, match=match):
        ts.fit(ts.models.get("adex"), rec, params=params, method="sbi", n_simulations=100)


def test_bad_sampling_arguments_are_refused(amortized):
    rec = _recording({}, seed=1)
    with pytest.raises(FitError, match="n_samples"):
        amortized.fit(rec, n_samples=0)
    cond = amortized.condition(rec)
    with pytest.raises(FitError, match="level"):
        cond.contains({"a": 1e-9, "b": 1e-10, "tau_w": 0.1}, level=90)
    with pytest.raises(FitError, match="missing \\['tau_w'\\]"):
        cond.log_prob({"a": 1e-9, "b": 1e-10})
    with pytest.raises(FitError, match="noise"):
        tsbi.train(ts.models.get("adex"), rec, BOUNDS, n_simulations=100, noise="loud")


def test_statistics_outside_the_simulations_are_named(amortized):
    """An observation far outside what the simulator produces: the statistics are named, and
    sampling that cannot finish in time is an error that names them instead of a hang."""
    rec = _recording({"a": 3e-9, "b": 90e-12, "tau_w": 150e-3}, seed=7)
    x = amortized.observation(rec).clone()
    names = amortized.simulator.names
    counts = [k for k, n in enumerate(names) if n.endswith(": count")]
    x[counts] = 500.0  # far more spikes than any simulation had
    cond = amortized.condition(x)
    assert "count" in cond.outliers() and "SD" in cond.outliers()
    assert "No statistic" in amortized.condition(amortized.observation(rec)).outliers()
    with pytest.raises(FitError, match="took over .* s.*count"):
        cond.sample_unit(2000, max_seconds=1e-3)
