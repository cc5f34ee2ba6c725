"""Summary statistics of sweeps for simulation-based inference, the unit-cube scale of the prior, and
credible intervals of posterior samples (see :mod:`tidesim.fitting.sbi`)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from tidesim.fitting.data import FitData
from tidesim.fitting.errors import FitError
from tidesim.fitting.parameters import ParameterSpace

__all__ = ["STATISTICS", "SENTINELS", "summary_statistics", "protocol_windows", "estimate_noise", "to_unit",
           "from_unit", "credible_intervals"]

#: The summary statistics of one sweep, in this order, with their units. ``window`` is the stimulus
#: window (where the injected current departs from its first value, see :func:`protocol_windows`);
#: "subthreshold" samples leave out 2 ms before and 5 ms after every spike.
STATISTICS: dict[str, str] = {
    "count": "spikes in the whole sweep",
    "rate": "spikes in the window / window length (Hz)",
    "latency": "time from the window's start to its first spike (s)",
    "isi_cv": "coefficient of variation of the inter-spike intervals (std/mean, ddof 0; needs 3 spikes)",
    "adaptation": "adaptation index, mean of (ISI_k+1 - ISI_k)/(ISI_k+1 + ISI_k) (needs 3 spikes)",
    "v_mean": "mean subthreshold voltage in the window (V)",
    "v_std": "standard deviation of the subthreshold voltage in the window (V)",
    "v_rest": "mean subthreshold voltage outside the window (V; the window's value if there is none)",
}

#: What a statistic that is undefined on a sweep (NaN: too few spikes) is replaced by, so that the
#: density estimator sees a number: values outside the statistic's range (the ISI CV is >= 0, the
#: adaptation index lies in (-1, 1)); a sweep without a spike in the window gets the window's length
#: as its latency (its first spike is "at the end or later"). The spike count tells the estimator
#: which case it is in.
SENTINELS: dict[str, Any] = {"latency": "window length (s)", "isi_cv": -1.0, "adaptation": -1.0}

_MASK_BEFORE, _MASK_AFTER = 2e-3, 5e-3  # s around a spike left out of the voltage statistics


def to_unit(space: ParameterSpace, values: torch.Tensor) -> torch.Tensor:
    """``[B, d]`` SI values -> positions in the unit cube (0 at the lower bound, 1 at the upper),
    uniform in the parameter (linear scale) or in its logarithm (log scale)."""
    values = torch.as_tensor(values, dtype=torch.float64)
    cols = []
    for j, b in enumerate(space.bounds):
        if b.scale == "log":
            cols.append((torch.log(values[:, j]) - np.log(b.low)) / (np.log(b.high) - np.log(b.low)))
        else:
            cols.append((values[:, j] - b.low) / (b.high - b.low))
    return torch.stack(cols, 1)


def from_unit(space: ParameterSpace, theta: torch.Tensor) -> torch.Tensor:
    """``[B, d]`` unit-cube positions -> SI values (the inverse of :func:`to_unit`)."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    cols = []
    for j, b in enumerate(space.bounds):
        if b.scale == "log":
            cols.append(torch.exp(np.log(b.low) + (np.log(b.high) - np.log(b.low)) * theta[:, j]))
        else:
            cols.append(b.low + (b.high - b.low) * theta[:, j])
    return torch.stack(cols, 1)


def protocol_windows(current: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Stimulus window of each sweep of a ``[T, S]`` current (A): ``(start, stop)`` sample indices,
    from the first to the last sample where the current departs from its first value. A sweep whose
    current never changes (e.g. a 0 pA step) takes the union of the other sweeps' windows, or the
    whole sweep if no sweep changes."""
    current = torch.as_tensor(current, dtype=torch.float64)
    T, S = current.shape
    dev = (current - current[:1]).abs()
    scale = dev.max(0).values
    starts, stops = np.full(S, -1), np.full(S, -1)
    for s in range(S):
        if scale[s] > 0:
            idx = torch.nonzero(dev[:, s] > 1e-3 * scale[s]).flatten()
            starts[s], stops[s] = int(idx[0]), int(idx[-1]) + 1
    have = starts >= 0
    lo, hi = (int(starts[have].min()), int(stops[have].max())) if have.any() else (0, T)
    starts[~have], stops[~have] = lo, hi
    return starts, stops


def summary_statistics(voltage: torch.Tensor, spikes: torch.Tensor, dt: float, starts: np.ndarray,
                       stops: np.ndarray, statistics: Sequence[str] = tuple(STATISTICS)) -> torch.Tensor:
    """Summary statistics of sweeps, vectorised over them (definitions: :data:`STATISTICS`).

    Parameters
    ----------
    voltage, spikes
        ``[T, N]`` membrane potential (V) and 0/1 spike raster of ``N`` sweeps at step ``dt`` (s).
    starts, stops
        ``[N]`` stimulus window of each sweep (sample indices, :func:`protocol_windows`).
    statistics
        Names from :data:`STATISTICS`, in the order wanted.

    Returns
    -------
    ``[N, len(statistics)]`` float64; undefined values replaced by :data:`SENTINELS`.
    """
    unknown = [s for s in statistics if s not in STATISTICS]
    if unknown:
        raise FitError(f"unknown summary statistics {unknown}; known: {', '.join(STATISTICS)}")
    v = torch.as_tensor(voltage).to(torch.float64)
    sp = (torch.as_tensor(spikes) > 0.5)
    T, N = v.shape
    start = torch.as_tensor(np.asarray(starts), dtype=torch.long).reshape(-1).expand(N)
    stop = torch.as_tensor(np.asarray(stops), dtype=torch.long).reshape(-1).expand(N)
    t = torch.arange(T)[:, None]
    inside = (t >= start) & (t < stop)
    length = (stop - start).to(torch.float64) * dt
    out: dict[str, torch.Tensor] = {}
    out["count"] = _count(sp)
    in_win = sp & inside
    out["rate"] = _count(in_win) / length.clamp_min(dt)
    any_in = in_win.any(0)
    first = torch.argmax(in_win.to(torch.uint8), 0)
    out["latency"] = torch.where(any_in, (first - start).to(torch.float64) * dt, length)

    # inter-spike intervals of every train at once: (neuron, step) pairs sorted by neuron, then time
    nz = torch.nonzero(sp)  # time-major; reorder by neuron (then time) below
    nz = nz[torch.argsort(nz[:, 1] * T + nz[:, 0])]
    n_idx, t_idx = nz[:, 1], nz[:, 0].to(torch.float64) * dt
    same = n_idx[1:] == n_idx[:-1]
    isi, isi_n = (t_idx[1:] - t_idx[:-1])[same], n_idx[1:][same]
    k = torch.zeros(N, dtype=torch.float64).index_add_(0, isi_n, torch.ones_like(isi))
    s1 = torch.zeros(N, dtype=torch.float64).index_add_(0, isi_n, isi)
    mean = s1 / k.clamp_min(1)
    s2 = torch.zeros(N, dtype=torch.float64).index_add_(0, isi_n, (isi - mean[isi_n]) ** 2)
    cv = torch.sqrt(s2 / k.clamp_min(1)) / mean.clamp_min(1e-300)
    out["isi_cv"] = torch.where(k >= 2, cv, torch.full_like(cv, SENTINELS["isi_cv"]))
    pair = isi_n[1:] == isi_n[:-1]
    ratio = ((isi[1:] - isi[:-1]) / (isi[1:] + isi[:-1]))[pair]
    pn = isi_n[1:][pair]
    kp = torch.zeros(N, dtype=torch.float64).index_add_(0, pn, torch.ones_like(ratio))
    ai = torch.zeros(N, dtype=torch.float64).index_add_(0, pn, ratio) / kp.clamp_min(1)
    out["adaptation"] = torch.where(kp >= 1, ai, torch.full_like(ai, SENTINELS["adaptation"]))

    if {"v_mean", "v_std", "v_rest"} & set(statistics):
        sub = _subthreshold(sp, dt)
        m_in = inside & sub
        n_in = _count(m_in).clamp_min(1)
        v_mean = torch.where(m_in, v, 0.0).sum(0) / n_in
        v_std = torch.sqrt(torch.where(m_in, v - v_mean, 0.0).square_().sum(0) / n_in)
        m_out = sub & ~inside
        n_out = _count(m_out)
        v_rest = torch.where(n_out > 0, torch.where(m_out, v, 0.0).sum(0) / n_out.clamp_min(1), v_mean)
        out.update(v_mean=v_mean, v_std=v_std, v_rest=v_rest)
    return torch.stack([out[s] for s in statistics], 1)


def _count(mask: torch.Tensor) -> torch.Tensor:
    """Column sums of a ``[T, N]`` bool mask as float64 (through float32: exact below 2**24, and
    several times faster than summing bools)."""
    return mask.to(torch.float32).sum(0).to(torch.float64)


def _subthreshold(sp: torch.Tensor, dt: float) -> torch.Tensor:
    """``[T, N]`` True where no spike lies within 2 ms before / 5 ms after (a spike at step ``i``
    masks steps ``i - 2 ms / dt`` to ``i + 5 ms / dt``)."""
    T, N = sp.shape
    nb, na = int(round(_MASK_BEFORE / dt)), int(round(_MASK_AFTER / dt))
    keep = torch.ones(T, N, dtype=torch.bool)
    nz = torch.nonzero(sp)
    if len(nz):
        steps = (nz[:, :1] + torch.arange(-nb, na + 1)).clamp_(0, T - 1)
        keep[steps.reshape(-1), nz[:, 1:].expand_as(steps).reshape(-1)] = False
    return keep

def estimate_noise(data: FitData) -> float:
    """Recording-noise standard deviation (V) from the sample-to-sample differences of the
    subthreshold voltage: 1.4826 * MAD(diff) / sqrt(2), robust to the slow membrane dynamics (a
    smooth trace sampled at 10 kHz changes by far less than the noise between two samples)."""
    sub = _subthreshold(data.spikes > 0.5, data.dt)
    d = torch.diff(data.voltage, dim=0)[sub[1:] & sub[:-1]]
    if d.numel() < 10:
        return 0.0
    mad = torch.median((d - torch.median(d)).abs())
    return float(1.4826 * mad / np.sqrt(2.0))


def credible_intervals(samples: pd.DataFrame, level: float = 0.9) -> pd.DataFrame:
    """Central marginal credible intervals of posterior samples: a row per parameter, columns
    ``low`` and ``high`` (the (1 - level)/2 and (1 + level)/2 quantiles), ``median``, ``mean``, ``std``."""
    if not 0 < level < 1:
        raise FitError(f"level must lie between 0 and 1, got {level!r}")
    q = [(1 - level) / 2, 0.5, (1 + level) / 2]
    rows = {}
    for k in samples.columns:
        lo, med, hi = np.quantile(samples[k].to_numpy(dtype=float), q)
        rows[k] = {"low": lo, "median": med, "high": hi, "mean": float(samples[k].mean()),
                   "std": float(samples[k].std())}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "parameter"
    return table
