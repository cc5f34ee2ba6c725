"""Spike times: detection on voltage traces, and ``SpikeData`` (units x trials) for population work."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import neo
import numpy as np
import quantities as pq
import scipy.io

__all__ = ["detect_spikes", "SpikeData", "read_spike_times_mat"]


def detect_spikes(voltage: np.ndarray, dt: float, threshold: float = 0.0, rearm: float | None = -0.01,
                  refractory: float = 0.5e-3) -> np.ndarray:
    """Spike times (s) of one trace (V): upward crossings of ``threshold``.

    A crossing counts only if the voltage fell below ``rearm`` since the previous spike (None:
    any dip below threshold re-arms) and at least ``refractory`` seconds have passed. The time
    is that of the first sample at or above threshold.
    """
    v = np.asarray(voltage, dtype=float)
    above = v >= threshold
    crossings = np.nonzero(~above[:-1] & above[1:])[0] + 1
    if v.size and above[0]:
        crossings = np.concatenate([[0], crossings])
    below = np.nonzero(v < rearm)[0] if rearm is not None else None
    times: list[float] = []
    last = -1
    for idx in crossings:
        if last >= 0:
            if (idx - last) * dt < refractory:
                continue
            # re-armed only if a sample between the last spike and this crossing is below rearm
            if below is not None:
                j = np.searchsorted(below, last)
                if j >= len(below) or below[j] >= idx:
                    continue
        times.append(idx * dt)
        last = idx
    return np.asarray(times, dtype=float)


class SpikeData:
    """Spike times of several units over one or more trials (seconds).

    ``trains[u][k]`` is a 1-D array of unit ``u``'s spike times in trial ``k``, relative to the
    trial's start; every trial spans ``[t_start, t_stop)``.
    """

    def __init__(self, trains: Sequence[Sequence[np.ndarray]], t_start: float = 0.0, t_stop: float | None = None,
                 unit_names: Sequence[str] | None = None, name: str = "spikes", annotations: dict | None = None):
        self.trains = [[np.sort(np.asarray(tr, dtype=float).ravel()) for tr in unit] for unit in trains]
        n_trials = {len(u) for u in self.trains}
        if len(n_trials) > 1:
            raise ValueError(f"every unit needs the same number of trials, got {sorted(n_trials)}")
        self.t_start = float(t_start)
        last = max((float(tr[-1]) for u in self.trains for tr in u if len(tr)), default=self.t_start)
        self.t_stop = float(t_stop) if t_stop is not None else last + 1e-3
        default_names = [f"unit {u}" for u in range(len(self.trains))]
        self.unit_names = list(unit_names) if unit_names is not None else default_names
        self.name = name
        self.annotations = dict(annotations or {})
        if t_stop is None:  # methods that need the recording's true end can refuse to guess it
            self.annotations["t_stop_inferred"] = True

    @property
    def n_units(self) -> int:
        """Number of units (neurons)."""
        return len(self.trains)

    @property
    def n_trials(self) -> int:
        """Number of trials of each unit (0 without units)."""
        return len(self.trains[0]) if self.trains else 0

    def __len__(self) -> int:
        return self.n_units

    @property
    def spike_counts(self) -> np.ndarray:
        """``[units, trials]`` number of spikes."""
        return np.array([[len(tr) for tr in u] for u in self.trains], dtype=int)

    @property
    def duration(self) -> float:
        """Length of a trial (s): ``t_stop - t_start``."""
        return self.t_stop - self.t_start

    def units(self, which: Sequence[int]) -> "SpikeData":
        """The given units only."""
        return SpikeData([self.trains[u] for u in which], self.t_start, self.t_stop,
                         [self.unit_names[u] for u in which], self.name, self.annotations)

    def to_neo(self):
        """A ``neo.Block``: a Segment per trial, a SpikeTrain per unit (annotated with its name)."""
        block = neo.Block(name=self.name)
        for k in range(self.n_trials):
            seg = neo.Segment(name=f"trial {k}")
            for u, unit in enumerate(self.trains):
                st = neo.SpikeTrain(unit[k] * pq.s, t_start=self.t_start * pq.s, t_stop=self.t_stop * pq.s,
                                    name=self.unit_names[u])
                st.annotate(unit=u, unit_name=self.unit_names[u])
                seg.spiketrains.append(st)
            block.segments.append(seg)
        return block

    @classmethod
    def from_segments(cls, segments, name: str = "spikes") -> "SpikeData":
        """Units are matched across segments by SpikeTrain position (and named by the first segment)."""
        n_units = len(segments[0].spiketrains)
        trains = [[np.asarray(seg.spiketrains[u].rescale("s").magnitude - float(seg.t_start.rescale("s")))
                   for seg in segments] for u in range(n_units)]
        first = segments[0]
        t_stop = float((first.spiketrains[0].t_stop - first.t_start).rescale("s")) if n_units else None
        names = [st.name or f"unit {u}" for u, st in enumerate(first.spiketrains)]
        return cls(trains, 0.0, t_stop, names, name)

    def __repr__(self) -> str:
        return (f"SpikeData({self.name!r}, units={self.n_units}, trials={self.n_trials}, "
                f"spikes={int(self.spike_counts.sum())}, t=[{self.t_start:g}, {self.t_stop:g}) s)")


def read_spike_times_mat(path: str | Path, variable: str | None = None, t_stop: float | None = None,
                         name: str | None = None) -> SpikeData:
    """Spike times kept in a MATLAB file as a cell array (one cell per unit, seconds).

    This is the layout of the shipped ``all_unit.mat`` (variable ``unit_t``, 1 x 16 cells of
    column vectors, Wave_Clus output). Without ``variable`` the file's only variable is used;
    without ``t_stop`` the recording ends 1 ms after the last spike.
    """
    path = Path(path)
    content = {k: v for k, v in scipy.io.loadmat(str(path)).items() if not k.startswith("__")}
    if variable is None:
        if len(content) != 1:
            raise ValueError(f"{path.name} holds variables {sorted(content)}; pass variable=")
        variable = next(iter(content))
    if variable not in content:
        raise KeyError(f"{path.name} has no variable '{variable}'; it holds {sorted(content)}")
    cells = np.asarray(content[variable], dtype=object).ravel()
    trains = [[np.asarray(c, dtype=float).ravel()] for c in cells]
    return SpikeData(trains, 0.0, t_stop, [f"unit {u + 1}" for u in range(len(trains))],
                     name or path.stem, {"source": str(path), "variable": variable})
