"""The established method: cross-correlograms tested against a slow, locally estimated baseline.

For each ordered pair (source ``j`` -> target ``i``) the cross-correlogram counts target spikes at
each lag after the source's spikes. Its expected value without a fast interaction is the
correlogram smoothed by a partially hollow Gaussian (sigma 10 ms, 60 % of the centre weight
removed), and the count in the synaptic window is Poisson around it (Stark & Abeles 2009,
J. Neurosci. Methods 179:90, which shows this equals spike-jitter surrogates in expectation
without drawing them; English et al. 2017, Neuron 96:505 use it for monosynaptic pairs).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.ndimage import convolve1d
from scipy.stats import poisson

from tidesim.fitting.coupling_data import PopulationBins

__all__ = ["correlograms", "ccg_test"]


def correlograms(pb: PopulationBins, max_lag: int) -> np.ndarray:
    """``ccg[i, j, max_lag + l]``: pairs of a spike of ``i`` and a spike of ``j`` with ``i`` ``l`` bins after
    ``j`` (``l`` in ``-max_lag .. max_lag``), from the binned counts."""
    n = pb.n_units
    Y = sp.csr_matrix((np.ones(pb.spike_bins.size), (pb.spike_bins, pb.spike_units)), shape=(pb.n_bins, n))
    out = np.zeros((n, n, 2 * max_lag + 1))
    for lag in range(0, max_lag + 1):
        later, earlier = Y[lag:], Y[:pb.n_bins - lag]
        m = (later.T @ earlier).toarray()  # m[i, j]: i spikes lag bins after j
        out[:, :, max_lag + lag] = m
        out[:, :, max_lag - lag] = m.T
    return out


def _hollow_gaussian(sigma_bins: float, hollow: float) -> np.ndarray:
    half = int(np.ceil(5 * sigma_bins))
    x = np.arange(-half, half + 1)
    k = np.exp(-0.5 * (x / sigma_bins) ** 2)
    k /= k.sum()
    k[half] *= 1 - hollow
    return k / k.sum()


def ccg_test(ccg: np.ndarray, counts: np.ndarray, window: tuple[int, int], sigma_bins: float,
             hollow: float = 0.6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, p-values and baselines of every ordered pair.

    ``window``: first and last lag (bins, inclusive, > 0) of the synaptic window. Returns
    ``weights[i, j]`` (extra target spikes per source spike in the window: observed minus
    baseline, divided by the source's spike count; negative for a trough), two-sided
    ``pvalues[i, j]`` of the window's count against a Poisson with the baseline's sum, and the
    baselines ``[n, n, lags]``.
    """
    max_lag = (ccg.shape[2] - 1) // 2
    baseline = convolve1d(ccg, _hollow_gaussian(sigma_bins, hollow), axis=2, mode="reflect")
    sl = slice(max_lag + window[0], max_lag + window[1] + 1)
    observed, expected = ccg[:, :, sl].sum(2), baseline[:, :, sl].sum(2)
    p_up = poisson.sf(observed - 1, expected)
    p_down = poisson.cdf(observed, expected)
    pvalues = np.minimum(1.0, 2 * np.minimum(p_up, p_down))
    weights = (observed - expected) / np.maximum(counts[None, :], 1)
    np.fill_diagonal(pvalues, np.nan)
    np.fill_diagonal(weights, np.nan)
    return weights, pvalues, baseline
