"""Poisson spike sources (Network.add_spike_source(rates=...)) in distribution: rates within
binomial tolerance (scalar and per-unit rates), exponential inter-spike intervals (CV near 1,
measured with elephant), reproducible by seed, and Brian2's PoissonGroup at the same rates."""

import numpy as np
import pytest
import torch
from elephant.statistics import cv, isi
from scipy import stats

import tidesim as ts

DT, DURATION = 1e-4, 1.0
N_FLAT, RATE = 400, 20.0
GRADED = np.linspace(2.0, 80.0, 40)
Z = 4.5  # tolerance in standard deviations


def _network() -> ts.Network:
    net = ts.Network()
    net.add_spike_source("flat", N_FLAT, rates=RATE)
    net.add_spike_source("graded", len(GRADED), rates=torch.as_tensor(GRADED))
    return net


@pytest.fixture(scope="module")
def runs():
    net = _network()
    return {"torch": net.run(DURATION, dt=DT, seed=11),
            "brian2": net.run(DURATION, dt=DT, seed=11, backend="brian2", target="numpy")}


def _counts(res) -> np.ndarray:
    return res.spikes.detach().numpy().sum(0)


def _binomial(rate, n_units=1):
    """Mean and standard deviation of a spike count: one Bernoulli trial per unit and step."""
    steps = round(DURATION / DT)
    p = np.asarray(rate) * DT
    return n_units * steps * p, np.sqrt(n_units * steps * p * (1 - p))


@pytest.mark.brian2
@pytest.mark.parametrize("backend", ["torch", "brian2"])
def test_scalar_rate(runs, backend):
    counts = _counts(runs[backend]["flat"])
    mean, sd = _binomial(RATE, N_FLAT)
    assert abs(counts.sum() - mean) <= Z * sd, (counts.sum(), mean, sd)
    # counts across units: Poisson-like dispersion (Fano factor 1 - p), not all equal, not clumped
    fano = counts.var(ddof=1) / counts.mean()
    assert 0.7 < fano < 1.3, fano


@pytest.mark.brian2
@pytest.mark.parametrize("backend", ["torch", "brian2"])
def test_per_unit_rates(runs, backend):
    counts = _counts(runs[backend]["graded"])
    mean, sd = _binomial(GRADED)
    assert np.all(np.abs(counts - mean) <= Z * sd), np.nonzero(np.abs(counts - mean) > Z * sd)
    assert stats.spearmanr(counts, GRADED).statistic > 0.9  # the rates are per unit, in order


def _window_isi_cdf(x, rate=RATE, window=DURATION):
    """CDF of the intervals between consecutive spikes of a Poisson process seen in a window of
    length L: an interval x fits in L - x starting points, so its density is (L - x) rate e^(-rate x)
    up to normalisation (exponential, tilted towards short intervals)."""
    def mass(x):
        e = np.exp(-rate * x)
        return window * (1 - e) / rate - (1 - e * (1 + rate * x)) / rate**2
    return mass(np.clip(x, 0, window)) / mass(window)


@pytest.mark.brian2
@pytest.mark.parametrize("backend", ["torch", "brian2"])
def test_intervals_are_exponential(runs, backend):
    trains = runs[backend]["flat"].spike_trains
    # the units share one rate, so their intervals pool into one sample of ~8000 (the CV of a
    # ~20-interval train alone is biased low)
    pooled = np.concatenate([isi(np.asarray(t)) for t in trains if len(t) > 1])
    grid = np.linspace(0, DURATION, 200001)
    density = np.gradient(_window_isi_cdf(grid), grid)
    mean = np.trapezoid(grid * density, grid)
    sd = np.sqrt(np.trapezoid((grid - mean) ** 2 * density, grid))
    assert 0.94 < sd / mean < 1.0  # the window's CV: near 1, as for an exponential
    assert abs(cv(pooled) - sd / mean) < 0.04, (cv(pooled), sd / mean)
    assert abs(pooled.mean() - mean) < Z * sd / np.sqrt(len(pooled)), (pooled.mean(), mean)
    ks = stats.kstest(pooled, _window_isi_cdf)
    assert ks.pvalue > 1e-3, ks
    # an evenly spaced train at the same rate would fail the same test
    assert stats.kstest(np.full(len(pooled), 1 / RATE), _window_isi_cdf).pvalue < 1e-6


@pytest.mark.brian2
def test_torch_and_brian2_rates_agree(runs):
    for name in ("flat", "graded"):
        a, b = _counts(runs["torch"][name]).sum(), _counts(runs["brian2"][name]).sum()
        rates = RATE if name == "flat" else GRADED
        _, sd = _binomial(rates, N_FLAT if name == "flat" else 1)
        sd_total = float(np.sqrt(np.sum(np.atleast_1d(sd) ** 2)))
        assert abs(a - b) <= Z * np.sqrt(2) * sd_total, (name, a, b)


def test_reproducible_by_seed_and_different_seeds_differ():
    net = _network()
    a = net.run(0.2, dt=DT, seed=3)["flat"].spikes
    b = net.run(0.2, dt=DT, seed=3)["flat"].spikes
    c = net.run(0.2, dt=DT, seed=4)["flat"].spikes
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert int(a.sum()) > 100 and int(c.sum()) > 100
    # different seeds: independent samples, so hardly any spike coincides
    assert int((a * c).sum()) < 0.05 * int(a.sum())
