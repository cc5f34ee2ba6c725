"""Spike trains from any tidesim or neo object, as the ``neo.SpikeTrain`` objects elephant takes."""

from __future__ import annotations

from typing import Any

import neo
import numpy as np
import quantities as pq

from tidesim.core.errors import TidesimError

__all__ = ["as_spiketrains", "NoSpikesError"]


class NoSpikesError(TidesimError, ValueError):
    """A statistic that needs spikes (or intervals between them) got a train without enough."""


def as_spiketrains(obj: Any, t_stop: float | None = None) -> list:
    """``neo.SpikeTrain`` list from a Recording (one per sweep), SpikeData (one per unit, first
    trial), SimulationResult (one per neuron), a neo Segment/Block, one SpikeTrain, or arrays of
    spike times in seconds (then ``t_stop``, or the last spike of all + 1 ms, bounds them all)."""
    if isinstance(obj, neo.SpikeTrain):
        return [obj]
    if isinstance(obj, neo.Segment):
        return list(obj.spiketrains)
    if isinstance(obj, neo.Block):
        return [st for seg in obj.segments for st in seg.spiketrains]
    if hasattr(obj, "voltage") and hasattr(obj, "spike_times"):  # Recording
        return [neo.SpikeTrain(np.asarray(s) * pq.s, t_start=0 * pq.s, t_stop=obj.duration * pq.s)
                for s in obj.spike_times]
    if hasattr(obj, "trains") and hasattr(obj, "unit_names"):  # SpikeData
        return [neo.SpikeTrain(u[0] * pq.s, t_start=obj.t_start * pq.s, t_stop=obj.t_stop * pq.s, name=name)
                for u, name in zip(obj.trains, obj.unit_names)]
    if hasattr(obj, "spike_trains") and hasattr(obj, "duration"):  # SimulationResult
        return [neo.SpikeTrain(np.asarray(s) * pq.s, t_start=0 * pq.s, t_stop=obj.duration * pq.s)
                for s in obj.spike_trains]
    if isinstance(obj, (list, tuple)):
        arrays = list(obj)
        if arrays and all(np.ndim(a) == 0 for a in arrays):  # one train given as a list of times
            arrays = [np.asarray(arrays, dtype=float)]
    elif np.ndim(obj) == 1:
        arrays = [obj]
    elif np.ndim(obj) == 2:
        arrays = list(obj)
    else:
        raise TypeError(f"cannot read spike trains from {type(obj).__name__} of shape {np.shape(obj)}; "
                        "pass a Recording, SimulationResult, SpikeData, neo object, or arrays of spike times (s)")
    arrays = [a if isinstance(a, neo.SpikeTrain) else np.sort(np.asarray(a, dtype=float).ravel()) for a in arrays]
    if t_stop is None:  # one shared window, so that binned statistics line the trains up
        last = [float(a[-1]) for a in arrays if not isinstance(a, neo.SpikeTrain) and a.size]
        t_stop = max(last, default=0.0) + 1e-3
    stop = t_stop * pq.s
    return [a if isinstance(a, neo.SpikeTrain) else neo.SpikeTrain(a * pq.s, t_start=0 * pq.s, t_stop=stop)
            for a in arrays]
