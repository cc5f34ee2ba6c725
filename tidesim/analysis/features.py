"""Current-clamp features: f-I curves, first-spike latency, adaptation, and eFEL's trace features."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from tidesim.analysis.spiketrains import NoSpikesError

__all__ = ["step_window", "fi_curve", "first_spike_latency", "adaptation_index", "efel_features"]


def step_window(rec, sweep: int = -1) -> tuple[float, float]:
    """(start, stop) in s of the first current step of a sweep (default: the last sweep)."""
    current = rec.current[sweep].numpy()
    nonzero = np.nonzero(np.abs(current) > 0)[0]
    if nonzero.size == 0:
        raise ValueError(f"sweep {sweep} of {rec.name} has no current step")
    start = nonzero[0]
    level = current[start]
    stop = start + np.argmax(current[start:] != level) if np.any(current[start:] != level) else len(current)
    return start * rec.dt, stop * rec.dt


def _window(rec, window):
    return window if window is not None else step_window(rec)


def fi_curve(rec, window: tuple[float, float] | None = None) -> pd.DataFrame:
    """Firing rate (Hz) inside the step window against the step amplitude (A), a row per sweep."""
    start, stop = _window(rec, window)
    t = rec.t.numpy()
    inside = (t >= start) & (t < stop)
    rows = []
    for k in range(len(rec)):
        spikes = rec.spike_times[k]
        n = int(np.sum((spikes >= start) & (spikes < stop)))
        rows.append({"sweep": k, "current_A": float(np.median(rec.current[k].numpy()[inside])),
                     "spikes": n, "rate_Hz": n / (stop - start)})
    return pd.DataFrame(rows)


def first_spike_latency(rec, window: tuple[float, float] | None = None) -> np.ndarray:
    """Time (s) from the step's start to the first spike in the step, per sweep (NaN: none)."""
    start, stop = _window(rec, window)
    out = []
    for spikes in rec.spike_times:
        inside = spikes[(spikes >= start) & (spikes < stop)]
        out.append(inside[0] - start if inside.size else np.nan)
    return np.asarray(out)


def adaptation_index(spike_times: Sequence[float] | np.ndarray) -> float:
    """Mean of (ISI_{k+1} - ISI_k)/(ISI_{k+1} + ISI_k) over a train (Allen Institute convention:
    positive for a slowing, adapting cell). Needs 3 or more spikes."""
    times = np.sort(np.asarray(spike_times, dtype=float))
    intervals = np.diff(times)
    if intervals.size < 2:
        raise NoSpikesError(f"the adaptation index needs at least 3 spikes; the train has {times.size}")
    return float(np.mean(np.diff(intervals) / (intervals[1:] + intervals[:-1])))


def efel_features(rec, features: Sequence[str] = ("AP_amplitude", "AP_width", "AHP_depth", "mean_frequency"),
                  window: tuple[float, float] | None = None, threshold: float = -20e-3) -> pd.DataFrame:
    """Trace features computed by eFEL (the Blue Brain feature library), a row per sweep.

    eFEL works in ms and mV; values come back in eFEL's units (documented per feature there). A
    feature eFEL cannot compute on a sweep (e.g. spike width without spikes) is NaN.
    """
    # eFEL (a compiled library) loads only when features are asked for
    import efel

    start, stop = _window(rec, window)
    traces = []
    for k in range(len(rec)):
        traces.append({"T": rec.t.numpy() * 1e3, "V": rec.voltage[k].numpy() * 1e3,
                       "stim_start": [start * 1e3], "stim_end": [stop * 1e3]})
    efel.set_setting("Threshold", threshold * 1e3)
    try:
        values = efel.get_feature_values(traces, list(features), raise_warnings=False)
    finally:
        efel.reset()  # eFEL keeps settings globally: leave them as they were
    rows = []
    for k, feats in enumerate(values):
        row: dict[str, Any] = {"sweep": k}
        for f in features:
            v = feats.get(f)
            row[f] = float(np.mean(v)) if v is not None and len(v) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)
