"""Losses on spike events, for the evaluations no gradient flows through (a differential-evolution
generation, a sweep): the same values as the raster-based losses of :mod:`tidesim.fitting.losses`,
without building ``[T, n]`` spike rasters or masks.

- The masked trace error sums the squared error over all samples once, and subtracts the sums over
  the windows around spikes (merged per column, read from one cumulative sum).
- The van Rossum distance of spikes on the time grid is exact in closed form:
  ``D^2 = sum_kl c_k c_l q^|t_k - t_l|`` over the model's spikes (c = +1) and the target's (c = -1),
  ``q = exp(-dt/tau)``, summed by the running recursion ``r_k = q^(t_k - t_{k-1}) (r_{k-1} + c_{k-1})``
  (van Rossum 2001; the recursion as in Houghton & Kreuz 2012), which is what the gridded, exponentially
  filtered difference integrates to.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["merged_windows", "masked_mean", "van_rossum_squared", "columns_of"]


def columns_of(steps: np.ndarray, sweeps: np.ndarray, n_starts: int, n_sweeps: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Recorded spikes (step, sweep) repeated for every parameter point: columns ``b * n_sweeps + sweep``."""
    b = np.repeat(np.arange(n_starts), len(steps))
    return np.tile(steps, n_starts), b * n_sweeps + np.tile(sweeps, n_starts)


def merged_windows(steps: np.ndarray, cols: np.ndarray, before: int, after: int, T: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The union, per column, of the windows ``[step - before, step + after]`` (clipped to ``[0, T)``):
    (column, start, end) of disjoint half-open intervals."""
    if len(steps) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    order = np.lexsort((steps, cols))
    steps, cols = steps[order], cols[order]
    start = np.clip(steps - before, 0, T)
    end = np.clip(steps + after + 1, 0, T)  # equal widths: within a column, ends rise with starts
    new = np.ones(len(steps), dtype=bool)
    new[1:] = (cols[1:] != cols[:-1]) | (start[1:] > end[:-1])
    first = np.flatnonzero(new)
    last = np.append(first[1:] - 1, len(steps) - 1)
    return cols[first], start[first], end[last]


def masked_mean(err: torch.Tensor, steps: np.ndarray, cols: np.ndarray, before: int, after: int) -> torch.Tensor:
    """``[B]``: the mean of ``err`` (``[T, B, S]``) over time and sweeps, leaving out the samples within
    ``before`` steps before and ``after`` steps after each event (step, column ``b * S + s``)."""
    T, B, S = err.shape
    flat = err.reshape(T, B * S)
    total = flat.sum(0)
    col, a, b = merged_windows(steps, cols, before, after, T)
    lengths = b - a
    # every sample inside a window, once (the windows are disjoint): far fewer than T x B x S
    rows = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths - a, lengths)
    at = torch.from_numpy(np.repeat(col, lengths))
    inside = torch.zeros(B * S, dtype=err.dtype).index_add_(0, at, flat[torch.from_numpy(rows), at])
    kept = (total - inside).reshape(B, S).sum(1)
    counted = T - np.bincount(col, weights=lengths, minlength=B * S)
    return kept / torch.from_numpy(counted).to(err.dtype).reshape(B, S).sum(1).clamp_min(1)


def van_rossum_squared(model: tuple[np.ndarray, np.ndarray], target: tuple[np.ndarray, np.ndarray], n: int,
                       dt: float, tau: float) -> np.ndarray:
    """``[n]`` squared van Rossum distances (elephant's normalisation) between the model's spikes and
    the target's, each given as (steps, columns)."""
    t = np.concatenate([model[0], target[0]]).astype(np.float64)
    c = np.concatenate([np.ones(len(model[0])), -np.ones(len(target[0]))])
    col = np.concatenate([model[1], target[1]]).astype(np.int64)
    order = np.lexsort((t, col))
    t, c, col = t[order], c[order], col[order]
    counts = np.bincount(col, minlength=n)
    pos = np.arange(len(t)) - (np.cumsum(counts) - counts)[col]
    L = int(counts.max()) if len(t) else 0
    times, signs = np.zeros((n, max(L, 1))), np.zeros((n, max(L, 1)))
    times[col, pos], signs[col, pos] = t, c
    total = np.bincount(col, minlength=n).astype(np.float64)  # the k = l terms: c_k^2 = 1
    r = np.zeros(n)
    for k in range(1, L):
        valid = counts > k
        q = np.exp(-(times[:, k] - times[:, k - 1]) * (dt / tau))
        r = np.where(valid, q * (r + signs[:, k - 1]), 0.0)
        total += 2.0 * signs[:, k] * r
    return np.maximum(total, 0.0)
