"""Coupling between recorded units: ``ts.fitting.infer_connectivity(spikes, method="glm" | "ccg")``.

>>> truth = ts.validation.brian2_coupled_network(n=30, duration=300)   # Brian2 ground truth
>>> res = ts.fitting.infer_connectivity(truth.spikes)
>>> res.weights, res.pvalues, res.compare(truth.weights)["auc"], res.to_dataframe()

Two methods on the same binned data, so they can be compared on one recording: ``"glm"``, a coupled
point-process model fitted by maximum likelihood (:mod:`tidesim.fitting.coupling_glm`), and
``"ccg"``, cross-correlograms against a hollow-Gaussian baseline
(:mod:`tidesim.fitting.coupling_ccg`).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from tidesim.datasets.spikes import SpikeData
from tidesim.fitting.connectivity_result import ConnectivityResult
from tidesim.fitting.coupling_ccg import ccg_test, correlograms
from tidesim.fitting.coupling_data import as_population, bin_population, raised_cosine_basis
from tidesim.fitting.coupling_glm import build_design, fit_glm
from tidesim.fitting.errors import FitError, FitWarning

__all__ = ["infer_connectivity"]


def infer_connectivity(
    spikes: Any,
    method: str = "glm",
    t_stop: float | None = None,
    bin_size: float = 1e-3,
    window: tuple[float, float] = (1e-3, 20e-3),
    n_basis: int = 3,
    history: tuple[float, float] = (1e-3, 100e-3),
    n_history: int = 5,
    drift: float | None = 60.0,
    min_spikes: int = 50,
    ridge: float = 1e-3,
    group_l1: float = 0.0,
    max_bins: int | None = None,
    alpha: float = 0.05,
    seed: int = 0,
) -> ConnectivityResult:
    """Infer signed couplings between simultaneously recorded units from their spike trains.

    ``spikes``: a :class:`~tidesim.datasets.SpikeData` (units x trials), a ``neo.Block`` or
    ``Segment``, a list of ``neo.SpikeTrain`` or a list of arrays of spike times (s, with ``t_stop``).
    ``method``: ``"glm"`` (coupled point process by maximum likelihood) or ``"ccg"``
    (cross-correlograms). ``bin_size`` (s): time resolution. ``window`` (s): the lags of the
    coupling filters (glm: first and last bump peaks; ccg: the synaptic window tested, default
    1-4 ms when left at the glm default). ``n_basis``/``history``/``n_history``: raised-cosine bumps
    of the coupling and of each unit's own spike-history filter. ``drift`` (s): knot spacing of a
    slowly varying baseline rate per unit (None: constant), so slow co-fluctuations of rate are not
    read as couplings. ``ridge``: Gaussian prior per coefficient and spike; ``group_l1``: group
    lasso on each coupling filter: a filter whose score statistic (about its Wald chi-square) is
    below ``group_l1**2`` becomes exactly 0 (3: roughly those a test would not call significant).
    ``max_bins``: bins used for the likelihood's integral term (a uniform random subset beyond it,
    weighted; the spike term is always exact); None: every bin up to a work budget of 10^10
    feature-target products per pass and at least 100,000 (all 1.2 million 1-ms bins of 20 min for
    50 units; 100,000 for 200 units).
    Units with fewer than ``min_spikes`` spikes are skipped with a warning naming them (NaN rows and
    columns). ``alpha``: false-discovery rate of ``result.significant``.
    """
    if method not in ("glm", "ccg"):
        raise ValueError(f"method = {method!r}: use 'glm' (coupled point process) or 'ccg' (cross-correlograms)")
    data = as_population(spikes, t_stop)
    _check_settings(bin_size, window, history, n_basis, n_history, min_spikes, max_bins, alpha)
    active, skipped = _active_units(data, min_spikes)
    started = time.perf_counter()
    sub = data.units(active)
    if method == "glm":
        weights, pvalues, filters, lags, extra = _glm(sub, bin_size, window, n_basis, history, n_history, drift,
                                                      ridge, group_l1, max_bins, seed)
    else:
        ccg_window = (1e-3, 4e-3) if window == (1e-3, 20e-3) else window
        weights, pvalues, filters, lags, extra = _ccg(sub, bin_size, ccg_window)
    n = data.n_units
    full = [np.full((n, n), np.nan), np.full((n, n), np.nan), np.full((n, n, len(lags)), np.nan)]
    idx = np.ix_(active, active)
    full[0][idx], full[1][idx] = weights, pvalues
    full[2][np.ix_(active, active, np.arange(len(lags)))] = filters
    settings = dict(bin_size=bin_size, window=window, n_basis=n_basis, history=history, n_history=n_history,
                    drift=drift, min_spikes=min_spikes, ridge=ridge, group_l1=group_l1, max_bins=max_bins,
                    seed=seed, duration=data.duration, n_trials=data.n_trials, **extra)
    return ConnectivityResult(method, list(data.unit_names), full[0], full[1], full[2], lags, alpha,
                              [data.unit_names[u] for u in skipped], settings, time.perf_counter() - started)


def _check_settings(bin_size, window, history, n_basis, n_history, min_spikes, max_bins, alpha) -> None:
    if not (0 < window[0] < window[1]):
        raise ValueError(f"window = {window} s: need 0 < first < last")
    if not (0 < history[0] < history[1]):
        raise ValueError(f"history = {history} s: need 0 < first < last")
    if window[0] < bin_size:
        raise ValueError(f"window starts at {window[0] * 1e3:g} ms, inside the first bin ({bin_size * 1e3:g} ms): "
                         "a coupling within one bin cannot be told from a common cause; use a smaller bin_size")
    if n_basis < 1 or n_history < 1 or min_spikes < 1 or (max_bins is not None and max_bins < 1000) \
            or not 0 < alpha < 1:
        raise ValueError("n_basis, n_history and min_spikes must be >= 1, max_bins >= 1000 and 0 < alpha < 1")


def _active_units(data: SpikeData, min_spikes: int) -> tuple[list[int], list[int]]:
    counts = data.spike_counts.sum(axis=1)
    active = [u for u in range(data.n_units) if counts[u] >= min_spikes]
    skipped = [u for u in range(data.n_units) if counts[u] < min_spikes]
    if skipped:
        listed = ", ".join(f"{data.unit_names[u]} ({counts[u]})" for u in skipped)
        warnings.warn(f"skipped {len(skipped)} unit(s) with fewer than {min_spikes} spikes: {listed}; their rows "
                      "and columns are NaN", FitWarning, stacklevel=3)
    if len(active) < 2:
        raise FitError(f"{data.name}: fewer than two units have >= {min_spikes} spikes (counts: "
                       f"{counts.tolist()}); nothing to couple")
    return active, skipped


def _glm(data, bin_size, window, n_basis, history, n_history, drift, ridge, group_l1, max_bins, seed):
    # the raised cosines' span, orthonormalised: the same filters, better-conditioned coefficients
    # (L-BFGS needs about half the steps), and the ridge acts on each filter's sum of squares
    coupling, hist = (_orthonormal(raised_cosine_basis(k, lo, hi, bin_size))
                      for k, (lo, hi) in ((n_basis, window), (n_history, history)))
    gap = int(max(coupling[0].max(), hist[0].max())) + 1
    pb = bin_population(data, bin_size, gap)
    if max_bins is None:
        n = data.n_units
        max_bins = max(100_000, int(1e10 / (n * (n * n_basis + n_history))))
    design = build_design(pb, coupling, hist, drift, max_bins, np.random.default_rng(seed))
    fit = fit_glm(design, ridge=ridge, group_l1=group_l1)
    lags, basis = coupling
    filters = np.einsum("jki,kl->ijl", fit.W, basis)  # log-rate change per source spike at each lag
    weights = fit.mean_rate[:, None] * np.expm1(filters).sum(axis=2)
    np.fill_diagonal(weights, np.nan)
    extra = {"integral_fraction": 1 / design.scale, "iterations": fit.iterations, "fisher": fit.fisher,
             "log_likelihood": fit.log_likelihood}
    return weights, fit.pvalues, filters, lags * bin_size, extra


def _orthonormal(basis: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lags, bumps = basis
    return lags, np.linalg.qr(bumps.T)[0].T


def _ccg(data, bin_size, window):
    max_lag = int(round(50e-3 / bin_size))
    pb = bin_population(data, bin_size, max_lag + 1)
    ccg = correlograms(pb, max_lag)
    lo, hi = int(round(window[0] / bin_size)), int(round(window[1] / bin_size))
    weights, pvalues, baseline = ccg_test(ccg, pb.counts.astype(float), (lo, hi), 10e-3 / bin_size)
    lags = np.arange(-max_lag, max_lag + 1) * bin_size
    excess = (ccg - baseline) / np.maximum(pb.counts, 1)[None, :, None]
    return weights, pvalues, excess, lags, {"ccg_window": window, "baseline": "hollow Gaussian, sigma 10 ms, 60 %"}
