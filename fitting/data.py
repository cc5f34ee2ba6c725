"""The recorded sweeps a fit compares against, on the simulation's time grid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from tidesim.datasets.recording import Recording
from tidesim.fitting.errors import FitError

__all__ = ["FitData", "prepare"]


@dataclass
class FitData:
    """Sweeps at the integration step: tensors are ``[T, S]`` (time, sweep), float64, SI."""

    dt: float
    voltage: torch.Tensor
    current: torch.Tensor
    spikes: torch.Tensor  # the recorded spikes as a 0/1 raster on the grid
    spike_times: list[np.ndarray]
    names: list[str]  # "recording name: sweep k" per sweep
    stimuli: list | None = None  # per sweep, the stimulus label (repeats share one), or None
    bias: torch.Tensor | None = None  # [S] constant current added to the recorded one (A), see with_bias

    def trials(self) -> dict:
        """``{stimulus: [sweep indices]}`` of the labelled sweeps (repeats of one current together)."""
        out: dict = {}
        for k, label in enumerate(self.stimuli or []):
            if label is not None:
                out.setdefault(label, []).append(k)
        return out

    @property
    def n_sweeps(self) -> int:
        """Number of sweeps ``S``."""
        return int(self.voltage.shape[1])

    @property
    def n_steps(self) -> int:
        """Number of integration steps ``T`` in a sweep."""
        return int(self.voltage.shape[0])

    @property
    def duration(self) -> float:
        """Length of a sweep (s): ``n_steps * dt``."""
        return self.n_steps * self.dt

    @property
    def counts(self) -> torch.Tensor:
        """``[S]`` recorded spike count of each sweep."""
        return self.spikes.sum(0)

    def baseline_voltage(self, min_duration: float = 10e-3, guard: float = 5e-3) -> torch.Tensor:
        """``[S]`` each sweep's resting voltage before its stimulus (V): the mean over the samples before the
        injected current first changes and before the first spike (less ``guard`` s), when they last at least
        ``min_duration`` s; NaN for a sweep without such a stretch (a stimulus from the first sample)."""
        out = torch.full((self.n_sweeps,), float("nan"), dtype=torch.float64)
        for s in range(self.n_sweeps):
            current = self.current[:, s]
            changed = torch.nonzero((current - current[0]).abs() > 1e-13)
            end = int(changed[0, 0]) if len(changed) else self.n_steps
            if len(self.spike_times[s]):
                end = min(end, int(float(np.min(self.spike_times[s])) / self.dt))
            end -= int(round(guard / self.dt))
            if end * self.dt >= min_duration and bool(torch.isfinite(self.voltage[:end, s]).all()):
                out[s] = self.voltage[:end, s].mean()
        return out

    def with_bias(self, bias: torch.Tensor) -> "FitData":
        """These sweeps with a constant current ``bias`` [S] (A) added to each sweep's recorded current."""
        bias = torch.nan_to_num(torch.as_tensor(bias, dtype=torch.float64), nan=0.0)
        total = bias if self.bias is None else self.bias + bias
        return FitData(self.dt, self.voltage, self.current + bias[None, :], self.spikes, self.spike_times,
                       self.names, self.stimuli, total)

    @property
    def recorded_current(self) -> torch.Tensor:
        """``[T, S]`` the current as recorded (without any bias added by :meth:`with_bias`)."""
        return self.current if self.bias is None else self.current - self.bias[None, :]

    def spike_mask(self, before: float, after: float, extra: torch.Tensor | None = None) -> torch.Tensor:
        """``[T, S]`` (or ``[T, B, S]`` with ``extra`` model spikes) 1 where no spike is within
        ``before`` s before / ``after`` s after: the samples the trace loss compares."""
        s = self.spikes if extra is None else torch.maximum(self.spikes[:, None, :], extra)
        nb, na = int(round(before / self.dt)), int(round(after / self.dt))
        # a spike at step i masks steps i - nb ... i + na: a windowed sum by cumulative sums (O(T),
        # where a convolution costs O(T * window) and dominated whole fits)
        T = s.shape[0]
        cs = torch.cat([torch.zeros_like(s[:1]), torch.cumsum(s, 0)])  # cs[i] = spikes before step i
        hi = torch.clamp(torch.arange(T) + nb + 1, max=T)
        lo = torch.clamp(torch.arange(T) - na, min=0)
        near = cs[hi] - cs[lo]
        return (near < 0.5).to(s.dtype)


def prepare(recordings: Recording | Sequence[Recording], dt: float | None = None,
            window: tuple[float, float] | None = None) -> FitData:
    """Stack the sweeps of one or more Recordings (same sampling, same length) at step ``dt``
    (a whole multiple of their sampling interval; default: theirs), cropped to ``window`` (s)."""
    recs = [recordings] if isinstance(recordings, Recording) else list(recordings)
    if not recs:
        raise FitError("no recordings to fit")
    for r in recs:
        if not isinstance(r, Recording):
            raise FitError(f"fit needs ts.datasets Recordings, got {type(r).__name__}")
        if not r.has_current:
            raise FitError(f"{r.name} holds no injected current: load it with current= or protocol= so "
                           "the model can be driven by the same stimulus")
    if window is not None:
        recs = [r.crop(*window) for r in recs]
    dt = dt if dt is not None else recs[0].dt
    recs = [r.resample(dt) for r in recs]
    lengths = {r.n_samples for r in recs}
    if len(lengths) > 1:
        raise FitError(f"recordings fitted together need the same sweep length; got {sorted(lengths)} samples "
                       "(crop them with window=)")
    T = lengths.pop()
    volts, amps, rasters, times, names, stimuli = [], [], [], [], [], []
    for r in recs:
        for k in range(len(r)):
            volts.append(r.voltage[k])
            amps.append(r.current[k])
            st = np.asarray(r.spike_times[k], dtype=float)
            raster = torch.zeros(T, dtype=torch.float64)
            idx = np.floor(st / dt + 1e-9).astype(int)
            raster[idx[(idx >= 0) & (idx < T)]] = 1.0
            rasters.append(raster)
            times.append(st)
            names.append(f"{r.name}: sweep {r.sweep_number(k)}")
            label = r.stimuli[k]
            stimuli.append(None if label is None else (label if len(recs) == 1 else f"{r.name}: {label}"))
    return FitData(dt, torch.stack(volts, 1), torch.stack(amps, 1), torch.stack(rasters, 1), times, names,
                   stimuli)
