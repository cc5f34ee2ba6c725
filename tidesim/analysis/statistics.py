"""Spike-train statistics: thin, named wrappers over elephant, in SI units (seconds, hertz).

Every function takes what :func:`as_spiketrains` takes (Recordings, SimulationResults,
SpikeData, neo objects, arrays of spike times) and returns plain numbers or numpy arrays.
"""

from __future__ import annotations

from typing import Any

import neo
import numpy as np
import quantities as pq
from elephant.conversion import BinnedSpikeTrain
from elephant.kernels import GaussianKernel
from elephant.spike_train_correlation import correlation_coefficient, cross_correlation_histogram
from elephant.spike_train_dissimilarity import van_rossum_distance as _vr
from elephant.spike_train_dissimilarity import victor_purpura_distance as _vp
from elephant.statistics import cv, fanofactor, lv, mean_firing_rate
from elephant.statistics import instantaneous_rate as _rate
from elephant.statistics import isi as _isi

from tidesim.analysis.spiketrains import NoSpikesError, as_spiketrains
from tidesim.analysis.timing import coincidence_factor

__all__ = ["firing_rate", "instantaneous_rate", "isi", "cv_isi", "local_variation", "fano_factor",
           "spike_count_correlation", "cross_correlogram", "van_rossum_distance", "victor_purpura_distance",
           "gamma_factor"]


def firing_rate(obj: Any, t_start: float | None = None, t_stop: float | None = None) -> np.ndarray:
    """Mean firing rate (Hz) of each train over [t_start, t_stop) (default: the train's span)."""
    out = []
    for st in as_spiketrains(obj):
        kw = {}
        if t_start is not None:
            kw["t_start"] = t_start * pq.s
        if t_stop is not None:
            kw["t_stop"] = t_stop * pq.s
        if kw:
            start = kw.get("t_start", st.t_start)
            stop = kw.get("t_stop", st.t_stop)
            st = st.time_slice(start, stop)
            if len(st) == 0:  # elephant refuses an empty train with a window: its rate is 0 Hz
                out.append(0.0)
                continue
        out.append(float(mean_firing_rate(st, **kw).rescale("Hz").magnitude))
    return np.asarray(out)


def instantaneous_rate(obj: Any, sampling_period: float = 1e-3, sigma: float = 10e-3):
    """Rate estimate (Hz) with a Gaussian kernel of width ``sigma`` (s): a neo AnalogSignal."""
    return _rate(as_spiketrains(obj), sampling_period=sampling_period * pq.s,
                 kernel=GaussianKernel(sigma=sigma * pq.s))


def isi(obj: Any) -> list[np.ndarray]:
    """Inter-spike intervals (s) of each train."""
    return [np.asarray(_isi(st).rescale("s").magnitude) for st in as_spiketrains(obj)]


def _intervals_or_raise(intervals: np.ndarray, k: int, need: int, what: str) -> np.ndarray:
    if len(intervals) < need:
        have = f"{len(intervals) + 1} spikes" if len(intervals) else "fewer than 2 spikes"
        raise NoSpikesError(f"{what} needs at least {need + 1} spikes; train {k} has {have} "
                            "(pass nan_policy='nan' to get NaN instead)")
    return intervals


def _per_train(obj: Any, fn, what: str, nan_policy: str) -> np.ndarray:
    """``fn`` of each train's intervals; a train with fewer than 3 spikes raises (or gives NaN)."""
    out = []
    for k, intervals in enumerate(isi(obj)):
        if len(intervals) < 2 and nan_policy == "nan":
            out.append(np.nan)
            continue
        out.append(float(fn(_intervals_or_raise(intervals, k, 2, what))))
    return np.asarray(out)


def cv_isi(obj: Any, nan_policy: str = "raise") -> np.ndarray:
    """Coefficient of variation of the inter-spike intervals of each train.

    A train with fewer than 3 spikes raises :class:`NoSpikesError` (``nan_policy="nan"``: NaN).
    """
    return _per_train(obj, cv, "the CV of ISIs", nan_policy)


def local_variation(obj: Any, nan_policy: str = "raise") -> np.ndarray:
    """Local variation LV (Shinomoto et al. 2003) of the intervals of each train."""
    return _per_train(obj, lv, "LV", nan_policy)


def fano_factor(obj: Any) -> float:
    """Fano factor of the spike counts across trains (trials)."""
    return float(fanofactor(as_spiketrains(obj)))


def spike_count_correlation(obj: Any, bin_size: float = 10e-3) -> np.ndarray:
    """Pearson correlation matrix of binned spike counts (``bin_size`` s)."""
    return np.asarray(correlation_coefficient(BinnedSpikeTrain(as_spiketrains(obj), bin_size=bin_size * pq.s)))


def cross_correlogram(a: Any, b: Any, bin_size: float = 1e-3, window: float = 50e-3):
    """Cross-correlation histogram of two trains: (lags in s, counts)."""
    sa, sb = as_spiketrains(a)[0], as_spiketrains(b)[0]
    # elephant bins both trains on one grid: give them one common window
    start, stop = min(sa.t_start, sb.t_start), max(sa.t_stop, sb.t_stop)
    sa, sb = (neo.SpikeTrain(st.times.rescale("s"), t_start=start, t_stop=stop) for st in (sa, sb))
    n = int(round(window / bin_size))
    cch, lags = cross_correlation_histogram(BinnedSpikeTrain(sa, bin_size=bin_size * pq.s),
                                            BinnedSpikeTrain(sb, bin_size=bin_size * pq.s), window=[-n, n])
    return np.asarray(lags) * bin_size, np.asarray(cch.magnitude).ravel()


def van_rossum_distance(obj: Any, tau: float = 10e-3) -> np.ndarray:
    """Van Rossum distance matrix (elephant's normalisation: 1 between no spike and one spike)."""
    trains = [st.rescale("ms") for st in as_spiketrains(obj)]  # elephant advises ms for precision
    return np.asarray(_vr(trains, time_constant=tau * 1e3 * pq.ms))


def victor_purpura_distance(obj: Any, cost: float = 100.0) -> np.ndarray:
    """Victor-Purpura distance matrix; ``cost`` (1/s) of shifting a spike by one second."""
    return np.asarray(_vp(as_spiketrains(obj), cost_factor=cost * pq.Hz))


def gamma_factor(data: Any, model: Any, delta: float = 4e-3, duration: float | None = None) -> np.ndarray:
    """Coincidence factor Gamma (Kistler et al. 1997; Jolivet et al. 2008) per pair of trains
    (:func:`tidesim.analysis.coincidence_factor` on each pair; ``duration`` defaults to each data
    train's span). 1 is a perfect match, 0 is chance; NaN for pairs where both trains are empty or
    where the model's rate makes Gamma undefined (2 nu delta >= 1)."""
    d_trains, m_trains = as_spiketrains(data), as_spiketrains(model)
    if len(d_trains) != len(m_trains):
        raise ValueError(f"{len(d_trains)} data trains but {len(m_trains)} model trains")
    out = []
    for d, m in zip(d_trains, m_trains):
        T = duration if duration is not None else float((d.t_stop - d.t_start).rescale("s"))
        out.append(coincidence_factor(d.rescale("s").magnitude, m.rescale("s").magnitude, T, delta))
    return np.asarray(out, dtype=float)
