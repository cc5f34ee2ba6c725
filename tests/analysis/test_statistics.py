"""Spike-train statistics: each wrapper against a value worked out by hand or with numpy."""

import numpy as np
import pytest

import tidesim as ts
from tidesim.analysis import NoSpikesError

A = np.array([0.010, 0.030, 0.070, 0.080, 0.150])  # seconds


def test_rate_and_isi_by_hand():
    assert ts.analysis.firing_rate([A], t_start=0.0, t_stop=0.5)[0] == pytest.approx(5 / 0.5)
    assert ts.analysis.firing_rate([A], t_start=0.0, t_stop=0.05)[0] == pytest.approx(2 / 0.05)
    assert np.allclose(ts.analysis.isi([A])[0], np.diff(A))


def test_cv_and_lv_by_hand():
    intervals = np.diff(A)
    assert ts.analysis.cv_isi([A])[0] == pytest.approx(intervals.std() / intervals.mean())
    r = (intervals[:-1] - intervals[1:]) / (intervals[:-1] + intervals[1:])
    assert ts.analysis.local_variation([A])[0] == pytest.approx(3 * np.mean(r ** 2))
    # a perfectly regular train: CV 0, LV 0
    regular = np.arange(1, 11) * 0.01
    assert ts.analysis.cv_isi([regular])[0] == pytest.approx(0, abs=1e-9)


def test_too_few_spikes_say_which_train_and_how_many():
    with pytest.raises(NoSpikesError, match=r"train 1 has 2 spikes"):
        ts.analysis.cv_isi([A, [0.1, 0.2]])
    with pytest.raises(NoSpikesError, match="fewer than 2 spikes"):
        ts.analysis.local_variation([[]], )
    out = ts.analysis.cv_isi([A, [0.1]], nan_policy="nan")
    assert np.isfinite(out[0]) and np.isnan(out[1])
    with pytest.raises(NoSpikesError, match="at least 3 spikes"):
        ts.analysis.adaptation_index([0.1, 0.2])


def test_fano_factor_by_hand():
    trains = [np.linspace(0.01, 0.9, n) for n in (2, 4, 6, 8)]
    counts = np.array([2, 4, 6, 8])
    assert ts.analysis.fano_factor(trains) == pytest.approx(counts.var() / counts.mean())


def test_van_rossum_closed_form():
    tau = 10e-3
    # elephant's normalisation: empty vs one spike = 1; two single spikes Delta apart: sqrt(2 - 2 exp(-Delta/tau))
    d = ts.analysis.van_rossum_distance([[0.1], [], [0.105]], tau=tau)
    assert d[0, 1] == pytest.approx(1.0, rel=1e-6)
    assert d[0, 2] == pytest.approx(np.sqrt(2 - 2 * np.exp(-5e-3 / tau)), rel=1e-6)
    assert np.allclose(d, d.T) and np.allclose(np.diag(d), 0)


def test_victor_purpura_by_hand():
    # shifting one spike by 5 ms at 100/s costs 0.5; more than 2 (delete + insert) is never paid
    d = ts.analysis.victor_purpura_distance([[0.1], [0.105], []], cost=100.0)
    assert d[0, 1] == pytest.approx(0.5)
    assert d[0, 2] == pytest.approx(1.0)
    far = ts.analysis.victor_purpura_distance([[0.1], [0.5]], cost=100.0)
    assert far[0, 1] == pytest.approx(2.0)


def test_gamma_factor_hand_cases():
    rng = np.random.default_rng(0)
    data = np.sort(rng.uniform(0, 1, 20))
    assert ts.analysis.gamma_factor([data], [data], duration=1.0)[0] == pytest.approx(1.0)
    # half the model spikes coincide (2 ms off), half are far: Gamma by the Kistler formula
    model = np.concatenate([data[:10] + 2e-3, data[10:] + 0.3])
    model = model[model < 1]
    # Jolivet et al. 2008: <N_coinc> = 2 nu delta N_data and the normalisation 1 - 2 nu delta, with nu the
    # MODEL's rate (a Poisson train at the model's rate is the chance level)
    delta, nu = 4e-3, len(model) / 1.0
    coinc = 10 + sum(np.min(np.abs(data - m)) <= delta for m in data[10:] + 0.3 if m < 1)
    expected = (coinc - 2 * nu * delta * 20) / (0.5 * (20 + len(model))) / (1 - 2 * nu * delta)
    gamma = ts.analysis.gamma_factor([data], [model], delta=delta, duration=1.0)[0]
    assert gamma == pytest.approx(expected, rel=1e-9)
    # independent trains: near chance (0) on average
    g = [ts.analysis.gamma_factor([np.sort(rng.uniform(0, 10, 100))], [np.sort(rng.uniform(0, 10, 100))],
                                  duration=10.0)[0] for _ in range(30)]
    assert abs(np.mean(g)) < 0.1
    with pytest.raises(ValueError, match="2 data trains but 1 model"):
        ts.analysis.gamma_factor([data, data], [data])


def test_correlations():
    rng = np.random.default_rng(1)
    a = np.sort(rng.uniform(0, 2, 80))
    c = ts.analysis.spike_count_correlation([a, a, np.sort(rng.uniform(0, 2, 80))], bin_size=10e-3)
    assert c[0, 1] == pytest.approx(1.0) and abs(c[0, 2]) < 0.3
    lags, counts = ts.analysis.cross_correlogram([a], [a + 5e-3], bin_size=1e-3, window=20e-3)
    assert len(lags) == len(counts) == 41
    assert abs(abs(lags[np.argmax(counts)]) - 5e-3) < 1e-9 and counts.max() >= 70


def test_on_shipped_recording_and_units():
    rec = ts.datasets.load_bundled("axon_steps")
    rates = ts.analysis.firing_rate(rec)
    assert np.allclose(rates, np.asarray(rec.spike_counts) / rec.duration)
    units = ts.datasets.load_bundled("hippocampus_units")
    rates = ts.analysis.firing_rate(units)
    counts = np.array([len(u[0]) for u in units.trains])
    assert np.allclose(rates, counts / (units.t_stop - units.t_start))
    assert rates.min() > 0.4  # 485 spikes in the quietest unit over ~998 s


def test_simulation_result_is_accepted():
    import brian2 as b2

    model = ts.models.get("lif")
    res = ts.simulate(model, 200 * b2.ms, n=2, params={"I": [0, 0.3] * b2.nA}, dt=0.1 * b2.ms)
    rates = ts.analysis.firing_rate(res)
    assert rates[0] == 0 and rates[1] == pytest.approx(len(res.spike_trains[1]) / 0.2) and rates[1] > 0


def test_importing_the_analysis_leaves_the_warning_filters_alone():
    """elephant installs a global 'once' filter for UserWarning on import; tidesim keeps it out."""
    import subprocess
    import sys

    code = ("import warnings, tidesim; before = list(warnings.filters); import tidesim.analysis, elephant; "
            "assert warnings.filters == before, warnings.filters[:3]")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr[-500:]


def test_firing_rate_of_a_silent_train_in_a_window_is_zero():
    rates = ts.analysis.firing_rate([np.array([0.1, 0.3]), np.array([])], t_start=0.0, t_stop=1.0)
    assert rates.tolist() == [2.0, 0.0]
