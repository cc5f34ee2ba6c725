"""``Recording``: current-clamp sweeps in SI units, the same kind of thing as a simulation result."""

from __future__ import annotations

from typing import Any, Sequence

import neo
import numpy as np
import quantities as pq
import torch

from tidesim.core.errors import TidesimError

__all__ = ["Recording", "MissingCurrentError"]


class MissingCurrentError(TidesimError, LookupError):
    """The recording holds no injected current (and none was given to ``load``)."""


class Recording:
    """Sweeps of one cell: membrane potential, injected current and spikes (SI units).

    Attributes
    ----------
    t : torch.Tensor
        ``[T]`` time within a sweep, seconds from the sweep's start.
    dt : float
        Sampling interval in seconds.
    voltage : torch.Tensor
        ``[S, T]`` membrane potential in volts (float64).
    current : torch.Tensor
        ``[S, T]`` injected current in amperes (raises :class:`MissingCurrentError` if unknown).
    spike_times : list of numpy arrays
        Per sweep, spike times in seconds from the sweep's start.
    annotations : dict
        What the file said (neo annotations), plus ``source``, ``channel`` and ``current_source``.
    sweep_annotations : list of dict
        Per sweep, the neo segment's annotations (``t_start`` in seconds is always there, and
        ``sweep``, the sweep's number in the file, which :meth:`select` keeps).
    """

    def __init__(
        self,
        voltage: torch.Tensor,
        dt: float,
        current: torch.Tensor | None = None,
        spike_times: Sequence[np.ndarray] | None = None,
        name: str = "recording",
        annotations: dict[str, Any] | None = None,
        sweep_annotations: Sequence[dict[str, Any]] | None = None,
    ):
        voltage = torch.as_tensor(voltage, dtype=torch.float64)
        if voltage.ndim == 1:
            voltage = voltage[None]
        if voltage.ndim != 2:
            raise ValueError(f"voltage must be [sweeps, samples], got shape {tuple(voltage.shape)}")
        self.voltage = voltage
        self.dt = float(dt)
        if current is not None:
            current = torch.as_tensor(current, dtype=torch.float64)
            if current.ndim == 1:
                current = current[None].expand(voltage.shape[0], -1)
            if tuple(current.shape) != tuple(voltage.shape):
                raise ValueError(f"current has shape {tuple(current.shape)} but voltage has "
                                 f"{tuple(voltage.shape)} (sweeps, samples)")
        self._current = current
        self.spike_times = [np.asarray(s, dtype=float) for s in spike_times] if spike_times is not None \
            else [np.zeros(0) for _ in range(voltage.shape[0])]
        self.name = name
        self.annotations = dict(annotations or {})
        self.sweep_annotations = [{"sweep": k, **a}
                                  for k, a in enumerate(sweep_annotations or [{} for _ in range(len(self))])]

    # -------------------------------------------------------------- repeated trials
    @property
    def stimuli(self) -> list:
        """Per sweep, the label of its stimulus (``None`` where unknown): sweeps with the same label are
        repeats of one current (frozen noise), which timing measures need."""
        return [a.get("stimulus") for a in self.sweep_annotations]

    def trials(self) -> dict:
        """``{stimulus: [sweep indices]}`` for the labelled sweeps, in order of first appearance."""
        out: dict = {}
        for k, label in enumerate(self.stimuli):
            if label is not None:
                out.setdefault(label, []).append(k)
        return out

    @property
    def has_repeats(self) -> bool:
        """Whether some stimulus was recorded at least twice."""
        return any(len(v) > 1 for v in self.trials().values())

    def with_stimuli(self, labels: Sequence) -> "Recording":
        """This recording with each sweep's stimulus label set (``None`` for unlabelled ones); repeats are
        checked (:meth:`check_repeats`)."""
        labels = list(labels)
        if len(labels) != len(self):
            raise ValueError(f"{len(labels)} stimulus labels for {len(self)} sweeps of {self.name}")
        out = self.select(range(len(self)))
        out.sweep_annotations = [{**a, "stimulus": lab} for a, lab in zip(out.sweep_annotations, labels)]
        out.check_repeats()
        return out

    def group_repeats(self, tolerance: float = 0.1) -> "Recording":
        """Label sweeps whose injected currents are the same (RMS difference below ``tolerance`` times the
        current's standard deviation) as repeats of one stimulus (``"stimulus k"``). Commands read from a
        protocol repeat exactly; measured currents differ by the recording's noise (a few percent for
        frozen noise): raise ``tolerance`` for a noisy current channel."""
        labels: list = []
        refs: list[int] = []
        cur = self.current
        for k in range(len(self)):
            match = next((j for j, r in enumerate(refs) if _same_current(cur[r], cur[k], tolerance)), None)
            if match is None:
                refs.append(k)
                match = len(refs) - 1
            labels.append(f"stimulus {match}")
        return self.with_stimuli(labels)

    def check_repeats(self, tolerance: float = 0.35) -> None:
        """Raise if sweeps labelled as repeats of one stimulus were driven by different currents (relative
        RMS difference above ``tolerance``), naming the recording, the stimulus and the sweeps."""
        if not self.has_current:
            return
        for label, sweeps in self.trials().items():
            for k in sweeps[1:]:
                if not _same_current(self.current[sweeps[0]], self.current[k], tolerance):
                    raise ValueError(
                        f"{self.name}: sweeps {self.sweep_number(sweeps[0])} and {self.sweep_number(k)} are "
                        f"labelled as repeats of {label!r} but their injected currents differ (relative RMS "
                        f"difference above {tolerance:g}); label them as different stimuli")

    def sweep_number(self, k: int) -> int:
        """The file's number of this Recording's sweep ``k`` (they differ after :meth:`select`)."""
        return int(self.sweep_annotations[k]["sweep"])

    # -------------------------------------------------------------- shape and selection
    def __len__(self) -> int:
        return int(self.voltage.shape[0])

    @property
    def n_samples(self) -> int:
        """Number of samples ``T`` in each sweep."""
        return int(self.voltage.shape[1])

    @property
    def t(self) -> torch.Tensor:
        """``[T]`` sample times within a sweep (s): ``0, dt, 2 dt, ...``."""
        return torch.arange(self.n_samples, dtype=torch.float64) * self.dt

    @property
    def duration(self) -> float:
        """Length of one sweep in seconds."""
        return self.n_samples * self.dt

    @property
    def sampling_rate(self) -> float:
        """Samples per second (Hz): ``1 / dt``."""
        return 1.0 / self.dt

    @property
    def has_current(self) -> bool:
        """Whether the recording holds the injected current (from the file, ``current=`` or ``protocol=``)."""
        return self._current is not None

    @property
    def current(self) -> torch.Tensor:
        """``[S, T]`` injected current (A); :class:`MissingCurrentError` when the recording has none."""
        if self._current is None:
            raise MissingCurrentError(
                f"{self.name} holds no injected current: pass current= (an array in amperes, [T] or "
                "[sweeps, T]) or protocol= (steps as (start s, stop s, amplitude A)) to ts.datasets.load")
        return self._current

    @property
    def spike_counts(self) -> np.ndarray:
        """``[S]`` number of spikes in each sweep."""
        return np.array([len(s) for s in self.spike_times], dtype=int)

    def select(self, sweeps: Sequence[int]) -> "Recording":
        """A Recording of the given sweeps (indices into this one), in that order."""
        idx = [int(i) for i in sweeps]
        for i in idx:
            if not -len(self) <= i < len(self):
                raise IndexError(f"{self.name} has {len(self)} sweeps; sweep {i} does not exist")
        index = torch.tensor(idx, dtype=torch.long)
        return Recording(
            self.voltage[index], self.dt, None if self._current is None else self._current[index],
            [self.spike_times[i] for i in idx], name=self.name, annotations=self.annotations,
            sweep_annotations=[self.sweep_annotations[i] for i in idx])

    def crop(self, t_start: float, t_stop: float) -> "Recording":
        """The part of every sweep in ``[t_start, t_stop)`` (seconds); time restarts at 0."""
        if not 0 <= t_start < t_stop <= self.duration + 1e-12:
            raise ValueError(f"crop window ({t_start} s, {t_stop} s) is not inside {self.name}'s sweeps "
                             f"of {self.duration:g} s")
        i0, i1 = int(round(t_start / self.dt)), int(round(t_stop / self.dt))
        spikes = [s[(s >= i0 * self.dt) & (s < i1 * self.dt)] - i0 * self.dt for s in self.spike_times]
        current = None if self._current is None else self._current[:, i0:i1]
        return Recording(self.voltage[:, i0:i1], self.dt, current,
                         spikes, name=self.name, annotations={**self.annotations, "crop_s": (t_start, t_stop)},
                         sweep_annotations=self.sweep_annotations)

    def resample(self, dt: float) -> "Recording":
        """The sweeps at a coarser sampling interval ``dt`` (s), an integer multiple of this one:
        voltage and current averaged over each new sample, spike times kept as they are."""
        factor = dt / self.dt
        k = int(round(factor))
        if k < 1 or abs(factor - k) > 1e-6:
            raise ValueError(f"resample needs dt a whole multiple of the recording's {self.dt * 1e3:g} ms; "
                             f"got {dt * 1e3:g} ms")
        if k == 1:
            return self
        m = self.n_samples // k

        def down(x):
            return x[:, :m * k].reshape(x.shape[0], m, k).mean(-1)

        return Recording(down(self.voltage), self.dt * k, None if self._current is None else down(self._current),
                         self.spike_times, name=self.name, annotations=self.annotations,
                         sweep_annotations=self.sweep_annotations)

    def __getitem__(self, i: int) -> "Recording":
        if isinstance(i, slice):
            return self.select(range(len(self))[i])
        return self.select([i])

    # -------------------------------------------------------------- conversion
    def to_neo(self):
        """A ``neo.Block``: a Segment per sweep with voltage, current and spikes, annotations kept."""
        block = neo.Block(name=self.name, **_neo_safe(self.annotations))
        for k in range(len(self)):
            ann = self.sweep_annotations[k]
            t0 = float(ann.get("t_start", 0.0)) * pq.s
            seg = neo.Segment(name=f"sweep {self.sweep_number(k)}",
                              **_neo_safe({a: v for a, v in ann.items() if a not in ("t_start", "sweep")}))
            seg.annotate(sweep=self.sweep_number(k))
            vm = neo.AnalogSignal(self.voltage[k].numpy()[:, None], units=pq.V, sampling_period=self.dt * pq.s,
                                  t_start=t0, name="voltage")
            seg.analogsignals.append(vm)
            if self._current is not None:
                seg.analogsignals.append(neo.AnalogSignal(
                    self._current[k].numpy()[:, None], units=pq.A, sampling_period=self.dt * pq.s, t_start=t0,
                    name="current"))
            seg.spiketrains.append(neo.SpikeTrain(self.spike_times[k] * pq.s + t0, t_start=t0,
                                                  t_stop=t0 + self.duration * pq.s, name="spikes"))
            block.segments.append(seg)
        return block

    def plot(self, sweeps: Sequence[int] | None = None, ax=None):
        """Voltage (mV) and current (pA) of some sweeps, spikes marked."""
        # matplotlib loads only when a figure is drawn
        import matplotlib.pyplot as plt

        sweeps = list(sweeps if sweeps is not None else range(len(self)))
        if ax is None:
            rows = 2 if self.has_current else 1
            fig, axes = plt.subplots(rows, 1, sharex=True, figsize=(9, 2.6 * rows), squeeze=False,
                                     gridspec_kw={"height_ratios": [3, 1][:rows]})
            axes = axes[:, 0]
        else:
            axes = np.atleast_1d(ax)
            fig = axes[0].figure
        t = self.t.numpy()
        for k in sweeps:
            line, = axes[0].plot(t, self.voltage[k].numpy() * 1e3, lw=0.6, label=f"sweep {k}")
            times = self.spike_times[k]
            axes[0].plot(times, np.full(len(times), 1e3 * float(self.voltage[k].max()) + 5), "|",
                         color=line.get_color())
            if self.has_current and len(axes) > 1:
                axes[1].plot(t, self.current[k].numpy() * 1e12, lw=0.8, color=line.get_color())
        axes[0].set_ylabel("membrane potential (mV)")
        if self.has_current and len(axes) > 1:
            axes[1].set_ylabel("injected current (pA)")
        axes[-1].set_xlabel("time in sweep (s)")
        axes[0].set_title(self.name)
        return fig

    def __repr__(self) -> str:
        return (f"Recording({self.name!r}, sweeps={len(self)}, samples={self.n_samples}, "
                f"dt={self.dt * 1e3:g} ms, current={'yes' if self.has_current else 'no'}, "
                f"spikes={int(self.spike_counts.sum())})")


def _same_current(a: torch.Tensor, b: torch.Tensor, tolerance: float) -> bool:
    """Whether two current traces are one stimulus: their RMS difference is below ``tolerance`` times the
    larger of their standard deviations (steps and noise alike; two flat traces must be equal)."""
    scale = float(torch.maximum(a.std(), b.std()))
    diff = float((a - b).pow(2).mean().sqrt())
    if scale == 0.0:
        return diff <= 1e-15 + 1e-6 * float(torch.maximum(a.abs().max(), b.abs().max()))
    return diff <= tolerance * scale


def _neo_safe(annotations: dict) -> dict:
    """Annotations neo accepts (it refuses some types, e.g. nested objects of unknown classes)."""
    out = {}
    for k, v in annotations.items():
        if isinstance(v, (str, int, float, bool, np.integer, np.floating, np.ndarray, list, tuple, dict)) \
                or v is None:
            out[str(k)] = v
        else:
            out[str(k)] = str(v)
    return out
