"""Coupling inference from spike trains, judged against networks simulated by Brian2 (whose weights are
known), and its handling of the input a lab brings."""

import warnings

import neo
import numpy as np
import pandas as pd
import pytest
import quantities as pq
from elephant.conversion import BinnedSpikeTrain
from elephant.spike_train_correlation import cross_correlation_histogram

from tidesim.datasets.spikes import SpikeData
from tidesim.fitting import (
    FitError,
    FitWarning,
    infer_connectivity,
    infer_connectivity_many,
    infer_connectivity_windows,
)
from tidesim.fitting.coupling_ccg import correlograms
from tidesim.fitting.coupling_data import bin_population, raised_cosine_basis
from tidesim.validation.coupled_network import brian2_coupled_network


@pytest.fixture(scope="module")
def network():
    """20 Brian2 neurons, p = 0.15, 150 s: 57 synapses, E and I."""
    return brian2_coupled_network(n=20, p=0.15, duration=150.0, seed=3)


@pytest.fixture(scope="module")
def unconnected():
    return brian2_coupled_network(n=12, p=0.2, duration=150.0, seed=4, w_exc=0.0)


@pytest.fixture(scope="module")
def glm_result(network):
    return infer_connectivity(network.spikes, method="glm")


def test_glm_recovers_brian2_connections(network, glm_result):
    assert network.connected.sum() > 30 and (network.weights < 0).any()
    scores = glm_result.compare(network.weights)
    assert scores["auc"] >= 0.9
    assert scores["precision"] >= 0.8 and scores["recall"] >= 0.3
    assert scores["sign_accuracy"] >= 0.9
    assert glm_result.settings["integral_fraction"] == 1.0  # short recording: every bin


def test_glm_beats_correlograms_on_a_short_recording(network, glm_result):
    ccg = infer_connectivity(network.spikes, method="ccg")
    glm_auc, ccg_auc = glm_result.compare(network.weights)["auc"], ccg.compare(network.weights)["auc"]
    assert ccg_auc >= 0.7  # the established method works too, on the same data
    assert glm_auc > ccg_auc


def test_excitatory_weights_are_positive_inhibitory_negative(network, glm_result):
    sig = glm_result.significant & network.connected
    signs = np.sign(glm_result.weights[sig])
    assert np.array_equal(signs, np.sign(network.weights[sig]))


def test_no_connections_few_detections(unconnected):
    assert not unconnected.connected.any()
    for method in ("glm", "ccg"):
        res = infer_connectivity(unconnected.spikes, method=method)
        tested = np.isfinite(res.pvalues).sum()
        assert res.significant.sum() <= max(1, 0.02 * tested), method
        assert np.nanmean(res.pvalues < 0.05) < 0.12, method  # p-values roughly uniform under the null


def test_subsampled_integral_agrees_with_the_full_one(network, glm_result):
    sub = infer_connectivity(network.spikes, max_bins=50_000)
    assert sub.settings["integral_fraction"] == pytest.approx(50_000 / 150_000, rel=1e-3)
    off = ~np.eye(network.spikes.n_units, dtype=bool)
    assert np.corrcoef(sub.weights[off], glm_result.weights[off])[0, 1] > 0.9
    assert sub.compare(network.weights)["auc"] >= 0.85


def test_group_lasso_sets_weak_couplings_to_zero(network):
    res = infer_connectivity(network.spikes, group_l1=3.0)
    off = ~np.eye(network.spikes.n_units, dtype=bool)
    zero = res.weights[off] == 0
    assert zero.mean() > 0.3
    assert (network.connected[off][~zero]).mean() > network.connected[off].mean()  # what survives is enriched


def test_correlograms_match_elephant(network):
    data = network.spikes.units([0, 1])
    pb = bin_population(data, 1e-3, 60)
    ours = correlograms(pb, 20)[1, 0]  # unit 1 relative to unit 0's spikes
    trains = [neo.SpikeTrain(data.trains[u][0] * pq.s, t_stop=data.t_stop * pq.s) for u in (0, 1)]
    binned = [BinnedSpikeTrain(st, bin_size=1 * pq.ms) for st in trains]
    # elephant's positive lags: spikes of its second train after those of its first
    cch, lags = cross_correlation_histogram(binned[0], binned[1], window=[-20, 20])
    assert np.array_equal(ours, np.asarray(cch.magnitude).ravel())


def test_result_table_and_plot(glm_result):
    df = glm_result.to_dataframe()
    n = glm_result.n_units
    assert len(df) == n * (n - 1)
    assert set(df.columns) >= {"target", "source", "weight", "pvalue", "significant", "sign"}
    assert set(df.loc[df.significant, "sign"]) <= {"excitatory", "inhibitory"}
    assert isinstance(df, pd.DataFrame)
    fig = glm_result.plot(pairs=3)
    assert len(fig.axes) >= 2
    assert glm_result.filters.shape[:2] == (n, n) and glm_result.filters.shape[2] == len(glm_result.lags)


def test_trials_are_fitted_without_history_across_them(network):
    data = network.spikes
    half = data.duration / 2
    trains = [[u[0][u[0] < half], u[0][u[0] >= half] - half] for u in data.trains]
    split = SpikeData(trains, 0.0, half, data.unit_names)
    res = infer_connectivity(split)
    assert res.settings["n_trials"] == 2
    assert res.compare(network.weights)["auc"] >= 0.85


def test_raised_cosines_cover_the_window():
    lags, basis = raised_cosine_basis(3, 1e-3, 20e-3, 1e-3)
    assert lags[0] == 1 and np.allclose(basis.max(axis=1), 1)
    peaks = lags[basis.argmax(axis=1)]
    assert peaks[0] == 1 and abs(peaks[-1] - 20) <= 1


# --- what a lab brings -------------------------------------------------------------------------------

def _trains(rng, n=3, rate=20.0, t_stop=100.0):
    return [np.sort(rng.uniform(0, t_stop, rng.poisson(rate * t_stop))) for _ in range(n)]


def test_arrays_need_t_stop_and_inferred_t_stop_is_refused():
    trains = _trains(np.random.default_rng(0))
    with pytest.raises(FitError, match="t_stop"):
        infer_connectivity(trains)
    guessed = SpikeData([[t] for t in trains])
    with pytest.raises(FitError, match="t_stop"):
        infer_connectivity(guessed)
    res = infer_connectivity(guessed, t_stop=100.0, method="ccg")
    assert res.settings["duration"] == 100.0


def test_spikes_outside_the_recording_and_repeats_are_named():
    trains = _trains(np.random.default_rng(1))
    trains[1] = np.append(trains[1], 101.5)
    with pytest.raises(FitError, match=r"unit 1.*outside.*101\.5"):
        infer_connectivity(trains, t_stop=100.0)
    trains = _trains(np.random.default_rng(1))
    trains[2] = np.sort(np.append(trains[2], trains[2][5]))
    with pytest.raises(FitError, match="unit 2.*twice"):
        infer_connectivity(trains, t_stop=100.0)


def test_units_with_few_spikes_are_skipped_by_name():
    trains = _trains(np.random.default_rng(2)) + [np.array([1.0, 2.0, 3.0])]
    with pytest.warns(FitWarning, match=r"unit 3 \(3\)"):
        res = infer_connectivity(trains, t_stop=100.0)
    assert res.skipped == ["unit 3"]
    assert np.isnan(res.weights[3]).all() and np.isnan(res.pvalues[:, 3]).all()
    assert np.isfinite(res.weights[0, 1])


def test_units_of_different_lengths_are_refused():
    rng = np.random.default_rng(3)
    a = neo.SpikeTrain(np.sort(rng.uniform(0, 50, 500)) * pq.s, t_stop=50 * pq.s, name="a")
    b = neo.SpikeTrain(np.sort(rng.uniform(0, 60, 600)) * pq.s, t_stop=60 * pq.s, name="b")
    with pytest.raises(FitError, match="a: 0-50 s, b: 0-60 s"):
        infer_connectivity([a, b])
    same = infer_connectivity([a, b.time_slice(0 * pq.s, 50 * pq.s)], method="ccg")
    assert same.unit_names == ["a", "b"]


def test_coarse_bins_warn_and_bad_settings_are_refused():
    rng = np.random.default_rng(4)
    bursty = [np.sort(np.concatenate([b + np.array([0, 0.002, 0.004]) for b in rng.uniform(0, 99, 300)]))
              for _ in range(2)]
    with pytest.warns(FitWarning, match="wider than these units' refractory"):
        infer_connectivity(bursty, t_stop=100.0, bin_size=5e-3, window=(5e-3, 20e-3), method="ccg")
    with pytest.raises(ValueError, match="inside the first bin"):
        infer_connectivity(bursty, t_stop=100.0, bin_size=5e-3)
    with pytest.raises(ValueError, match="method"):
        infer_connectivity(bursty, t_stop=100.0, method="granger")


def test_no_unexpected_warnings_on_clean_data(network):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        infer_connectivity(network.spikes.units(range(6)), method="ccg")


# --- many sessions, and changes over time --------------------------------------------------------------

@pytest.fixture(scope="module")
def rewired(unconnected):
    """The same 12 Brian2 neurons (same seed, same drawn synapses) with their synapses on for 150 s, then
    off for 150 s: every true coupling disappears in the second window."""
    on = brian2_coupled_network(n=12, p=0.2, duration=150.0, seed=4)
    assert np.array_equal(on.connected, np.abs(on.weights) > 0) and on.connected.sum() > 10
    trains = [[np.concatenate([a[0], b[0] + 150.0])] for a, b in zip(on.spikes.trains, unconnected.spikes.trains)]
    return on, SpikeData(trains, 0.0, 300.0, on.spikes.unit_names)


def test_coupling_over_windows_sees_synapses_vanish(rewired):
    on, data = rewired
    maps, table = infer_connectivity_windows(data, [(0, 150), (150, 300)])
    assert len(maps) == 2 and len(table) == 12 * 11
    truth = on.connected[~np.eye(12, dtype=bool)]
    first, second = table.significant_0.to_numpy(), table.significant_1.to_numpy()
    assert first[truth].mean() >= 0.3  # synapses found while they exist ...
    assert second[truth].sum() <= 1  # ... and gone once removed
    assert (np.abs(table.change[truth & first]) > 0).all()
    with pytest.raises(FitError, match=r"window 1 = \(250, 400\) s lies outside"):
        infer_connectivity_windows(data, [(0, 100), (250, 400)])


def test_many_sessions_on_dask_equal_the_serial_run(network, unconnected):
    sessions = {"net": network.spikes.units(range(8)), "null": unconnected.spikes}
    serial = infer_connectivity_many(sessions, method="ccg")
    parallel = infer_connectivity_many(sessions, method="ccg", client="local")
    assert list(parallel) == ["net", "null"]
    for name in sessions:
        np.testing.assert_array_equal(parallel[name].pvalues, serial[name].pvalues)
    with pytest.raises(FitError, match="t_stop"):
        infer_connectivity_many({"x": SpikeData([[np.array([1.0, 2.0])], [np.array([1.5])]])})
