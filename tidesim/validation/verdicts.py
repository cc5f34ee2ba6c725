"""Verdicts of a comparison between two simulators, each one of four outcomes named as such.

- ``exact``: bitwise equal.
- ``within tolerance``: every difference within the stated tolerance.
- ``diverged``: equal within tolerance until a time ``t`` (after some spikes), then apart; a
  difference that starts at rounding size and grows, as it does in chaotic regimes when a function
  (``exp``) differs in the last bit between libraries. Spike statistics (count, rate, ISI CV) are
  then compared with their own tolerance.
- ``disagree``: apart beyond tolerance before any spike could have amplified a rounding difference,
  or spike statistics apart after a divergence: the two simulators do not run the same model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TraceVerdict", "SpikeVerdict", "trace_verdict", "spike_verdict", "spike_statistics"]

OUTCOMES = ("exact", "within tolerance", "diverged", "disagree")


@dataclass
class TraceVerdict:
    """How one recorded variable compares: the outcome and the numbers it follows from."""

    outcome: str
    at: float | None = None  # s: first time the difference exceeds the tolerance
    neuron: int | None = None
    spikes_before: int | None = None  # spikes that neuron had fired before ``at``
    first_difference: float | None = None  # the first nonzero difference of that neuron (SI)
    growth_per_50ms: float | None = None  # factor the difference grew by per 50 ms up to ``at``


@dataclass
class SpikeVerdict:
    """How the spike trains compare; after a divergence, their statistics (torch, Brian2) too."""

    outcome: str
    at: float | None = None
    neuron: int | None = None
    spike_index: int | None = None
    statistics: dict[str, tuple[float, float]] | None = None
    stat_rtol: float = 0.1
    statistics_agree: bool | None = None


def trace_verdict(a: np.ndarray, b: np.ndarray, tol: float, dt: float, spikes: np.ndarray) -> TraceVerdict:
    """Compare traces ``a``, ``b`` ``[T, n]`` with tolerance ``tol``; ``spikes`` ``[T, n]`` (either
    simulator's raster) tells whether a neuron had fired before the difference appeared."""
    if a.shape == b.shape and np.array_equal(a, b, equal_nan=False):
        return TraceVerdict("exact")
    err = np.abs(a - b)
    err = np.where(np.isfinite(a) == np.isfinite(b), np.nan_to_num(err, nan=0.0), np.inf)
    over = err > tol
    if not over.any():
        return TraceVerdict("within tolerance")
    steps = np.where(over.any(0), over.argmax(0), a.shape[0])
    k = int(np.argmin(steps))
    step = int(steps[k])
    fired = int(spikes[:step, k].sum())
    nonzero = np.nonzero(err[: step + 1, k] > 0)[0]
    j0 = int(nonzero[0]) if nonzero.size else step
    first = float(err[j0, k])
    growth = None
    if step > j0 and first > 0 and np.isfinite(err[step, k]):
        growth = float((err[step, k] / first) ** (0.05 / ((step - j0) * dt)))
    # a divergence grows from a rounding-sized difference after spikes; anything else is a disagreement
    outcome = "diverged" if fired > 0 and first <= tol and step > j0 else "disagree"
    return TraceVerdict(outcome, step * dt, k, fired, first, growth)


def spike_statistics(trains: list[np.ndarray], duration: float) -> dict[str, float]:
    """Count, mean rate (Hz) and mean ISI coefficient of variation (neurons with 3+ spikes)."""
    count = float(sum(len(t) for t in trains))
    cvs = [np.std(np.diff(t)) / np.mean(np.diff(t)) for t in trains if len(t) >= 3 and np.mean(np.diff(t)) > 0]
    return {"count": count, "rate": count / max(len(trains), 1) / duration,
            "isi_cv": float(np.mean(cvs)) if cvs else float("nan")}


#: Absolute floors of the statistics' tolerances: a regular train's ISI CV is near 0, where a relative
#: tolerance would call 0.01 vs 0.02 a disagreement.
_FLOORS = {"count": 1.0, "rate": 0.0, "isi_cv": 0.05}


def _agree(x: float, y: float, rtol: float, floor: float) -> bool:
    if np.isnan(x) and np.isnan(y):
        return True
    return bool(abs(x - y) <= max(rtol * abs(y), floor))


def spike_verdict(a: list[np.ndarray], b: list[np.ndarray], tol: float, duration: float,
                  stat_rtol: float) -> SpikeVerdict:
    """Compare spike trains ``a`` (torch) with ``b`` (Brian2): identical, within ``tol`` (s), or the first
    spike that differs, then the statistics within ``stat_rtol``."""
    if len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b)):
        return SpikeVerdict("exact")
    first: tuple[float, int, int] | None = None
    for k, (x, y) in enumerate(zip(a, b)):
        m = min(len(x), len(y))
        bad = np.nonzero(np.abs(np.asarray(x[:m]) - np.asarray(y[:m])) > tol)[0]
        j = int(bad[0]) if bad.size else (m if len(x) != len(y) else None)
        if j is not None:
            t = float(min(x[j] if j < len(x) else np.inf, y[j] if j < len(y) else np.inf))
            if first is None or t < first[0]:
                first = (t, k, j)
    if first is None:
        return SpikeVerdict("within tolerance")
    sa, sb = spike_statistics(a, duration), spike_statistics(b, duration)
    stats = {key: (sa[key], sb[key]) for key in sa}
    agree = all(_agree(x, y, stat_rtol, _FLOORS[key]) for key, (x, y) in stats.items())
    # a rounding difference needs earlier spikes to grow: a first spike that differs is a disagreement
    outcome = "diverged" if agree and first[2] > 0 else "disagree"
    return SpikeVerdict(outcome, first[0], first[1], first[2], stats, stat_rtol, agree)
