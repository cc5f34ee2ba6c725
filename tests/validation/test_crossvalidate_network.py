"""ts.crossvalidate on a Network: a report per population, spike for spike for deterministic
networks, by rate and CV of ISIs for networks with Poisson sources; networks built differently
in the two runs are reported as disagreeing, in the population where they differ."""

import numpy as np
import pytest
import torch

import tidesim as ts
from tidesim.models import synapses as zs
from tidesim.validation.network import NetworkCrossValidationReport, compare_networks

DT = 1e-4
EXP = zs.exp_current("e", tau=4e-3)
DELTA = zs.delta("r")


def _deterministic(delay: float = 1e-3) -> ts.Network:
    rng = np.random.default_rng(2)
    net = ts.Network("det")
    times = np.sort(rng.choice(np.arange(10, 900), 40, replace=False)) * DT
    net.add_spike_source("inp", 4, indices=rng.integers(0, 4, 40), times=times)
    net.add_population("exc", zs.with_synapses(ts.models.get("lif"), EXP, DELTA), 5)
    net.add_population("adx", zs.with_synapses(ts.models.get("adex"), EXP), 2)
    w = torch.as_tensor(rng.uniform(0.08e-9, 0.25e-9, 20))
    net.connect("inp", "exc", EXP.synapse, params={"weight": w}, delay=delay)
    net.connect("exc", "exc", DELTA.synapse, connectivity=0.5, params={"weight": 1e-3}, delay=1e-3, seed=0)
    net.connect("exc", "adx", EXP.synapse, params={"weight": 0.5e-9}, delay=2e-3)
    return net


def _stochastic(weight: float = 0.12e-9) -> ts.Network:
    net = ts.Network("poisson")
    net.add_spike_source("inp", 80, rates=25.0)
    net.add_population("exc", zs.with_synapses(ts.models.get("lif"), EXP), 40)
    net.connect("inp", "exc", EXP.synapse, connectivity=0.25, params={"weight": weight}, seed=1)
    return net


@pytest.mark.brian2
def test_deterministic_network_agrees_spike_for_spike():
    net = _deterministic()
    report = ts.crossvalidate(net, duration=0.1, dt=DT, target="numpy")
    assert isinstance(report, NetworkCrossValidationReport)
    assert not report.stochastic
    assert set(report.populations) == {"inp", "exc", "adx"}
    assert report.passed, str(report)
    exc = report["exc"]
    assert exc.kind == "neurons" and report["inp"].kind == "source"
    assert int(exc.spikes.counts_brian2.sum()) >= 5 and int(report["adx"].spikes.counts_brian2.sum()) >= 1
    assert np.array_equal(exc.spikes.counts_torch, exc.spikes.counts_brian2)
    assert exc.spikes.max_time_difference <= 1e-12
    assert {v.name for v in exc.variables} == {"v", "I_e"}
    assert all(v.max_abs_error_before_first_spike <= 1e-9 * v.scale for v in exc.variables)
    assert report["inp"].spikes.counts_torch.sum() == 40
    table = report.to_dataframe()
    assert list(table.index) == ["inp", "exc", "adx"] and table["passed"].all()
    assert "PASSED" in str(report) and "spike for spike" in str(report)


@pytest.mark.brian2
def test_a_differently_built_network_is_reported_as_disagreeing():
    ours = _deterministic(delay=1e-3).run(0.1, dt=DT)
    other = _deterministic(delay=2e-3).run(0.1, dt=DT, backend="brian2", target="numpy")
    report = compare_networks(ours, other, name="delays differ")
    assert not report.passed
    assert "exc" in report.failed_populations
    assert report["inp"].passed  # the sources are the same in both
    s = report["exc"].spikes
    assert s.max_time_difference >= 1e-3 - 1e-9 or len(s.mismatched_neurons) > 0
    text = str(report)
    assert "FAILED" in text and "exc (neurons, 5):  FAIL" in text
    assert "spikes: DISAGREE: differ at" in text and "v: DISAGREE at" in text
    # the same comparison of equally built networks passes
    same = _deterministic(delay=1e-3).run(0.1, dt=DT, backend="brian2", target="numpy")
    assert compare_networks(ours, same).passed


@pytest.mark.brian2
def test_poisson_network_agrees_in_distribution():
    report = ts.crossvalidate(_stochastic(), duration=0.5, dt=DT, target="numpy", seed=3)
    assert report.stochastic and report["exc"].stochastic
    assert report.passed, str(report)
    exc, inp = report["exc"], report["inp"]
    assert abs(inp.rate_torch - 25.0) < 4 * np.sqrt(25.0 / (80 * 0.5)) and abs(inp.rate_brian2 - 25.0) < 4
    assert exc.rate_torch > 5 and exc.rate_brian2 > 5  # the population is driven
    assert np.isfinite(exc.cv_torch) and np.isfinite(exc.cv_brian2)
    assert exc.spikes is None and exc.variables == []
    assert "compared in distribution" in str(report)


@pytest.mark.brian2
def test_a_stronger_network_is_reported_by_its_rate():
    ours = _stochastic(0.12e-9).run(0.5, dt=DT, seed=3)
    other = _stochastic(0.18e-9).run(0.5, dt=DT, seed=3, backend="brian2", target="numpy")
    report = compare_networks(ours, other, stochastic=True)
    assert report.failed_populations == ["exc"]
    exc = report["exc"]
    assert exc.rate_brian2 > exc.rate_torch + exc.rate_tolerance


def test_network_arguments_are_per_population():
    with pytest.raises(TypeError, match=r"n, params belong to the populations"):
        ts.crossvalidate(_deterministic(), duration=0.01, n=3, params={"tau_m": 0.01})
