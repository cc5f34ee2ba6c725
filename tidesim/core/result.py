"""``SimulationResult``: what a run returns, the same whichever simulator ran it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from brian2.units.fundamentalunits import get_unit

from tidesim.core.model import NeuronModel
from tidesim.core.units import lab_unit, unit_name

__all__ = ["SimulationResult", "SpikeEvents", "spike_raster", "dims_to_quantities"]


@dataclass(frozen=True)
class SpikeEvents:
    """The spikes of a run step by step, in 4 bytes per spike: ``counts[i]`` spikes at step ``i``, their
    neurons in ``neurons`` (in step order, then neuron order)."""

    counts: np.ndarray  # [T] int64
    neurons: np.ndarray  # [number of spikes] int32 or int64

    def steps(self) -> np.ndarray:
        """The step of every spike (built on each call: 4 bytes per spike)."""
        return np.repeat(np.arange(len(self.counts), dtype=np.int32), self.counts)


def spike_raster(steps: np.ndarray, neurons: np.ndarray, n_steps: int, n: int, dtype: torch.dtype = torch.float64,
                 device: Any = "cpu") -> torch.Tensor:
    """``[n_steps, n]`` 0/1 spikes from the (step, neuron) pairs of spike events."""
    raster = torch.zeros(n_steps, n, dtype=dtype, device=device)
    raster[torch.from_numpy(np.asarray(steps)).long().to(raster.device),
           torch.from_numpy(np.asarray(neurons)).long().to(raster.device)] = 1
    return raster


def dims_to_quantities(dim) -> Any:
    """The ``quantities`` unit with Brian2 dimensions ``dim`` (for neo)."""
    # quantities (neo's units) load only when a result is exported
    import quantities as pq

    base = (pq.m, pq.kg, pq.s, pq.A, pq.K, pq.mol, pq.cd)
    unit = pq.dimensionless
    for q, power in zip(base, dim._dims):
        if power:
            unit = unit * q**power
    for name in ("V", "A", "S", "F", "ohm", "s", "Hz", "W", "C"):
        if pq.Quantity(1.0, name).simplified.dimensionality == unit.simplified.dimensionality:
            return getattr(pq, name)
    return unit


class SimulationResult:
    """Traces, spikes and metadata of one simulation (SI units throughout).

    Attributes
    ----------
    t : torch.Tensor
        ``[T]`` times in seconds of the recorded samples (the start of each step).
    states : dict[str, torch.Tensor]
        ``[T, n]`` recorded variables, in SI units (``res["v"]`` is ``res.states["v"]``).
    spikes : torch.Tensor
        ``[T, n]`` 0/1 spikes; in torch runs they carry the surrogate gradient. Runs without gradients
        on the compiled engine keep spikes as events (:attr:`spike_events`) and build this raster
        only when it is first read.
    """

    def __init__(
        self,
        model: NeuronModel,
        t: torch.Tensor,
        states: dict[str, torch.Tensor],
        spikes: torch.Tensor | None,
        dt: float,
        backend: str,
        params: dict[str, Any] | None = None,
        spike_trains: Sequence[np.ndarray] | None = None,
        final_state: dict[str, torch.Tensor] | None = None,
        engine: str | None = None,
        spike_events: SpikeEvents | None = None,
        n: int | None = None,
    ):
        if spikes is None and (spike_events is None or n is None):
            raise ValueError("a SimulationResult needs a spike raster, or spike events and n")
        self.model = model
        self.t = t
        self.states = states
        self._spikes = spikes
        self._events = spike_events
        self._pairs: tuple[np.ndarray, np.ndarray] | None = None
        self._shape = tuple(spikes.shape) if spikes is not None else (len(t), int(n))
        self.dt = float(dt)
        self.backend = backend
        #: the engine that produced it: "compiled", "eager" or "brian2" (set by the engine table)
        self.engine = engine if engine is not None else ("brian2" if backend == "brian2" else None)
        self.params = params or {}
        self.final_state = final_state or {}
        self._spike_trains = list(spike_trains) if spike_trains is not None else None

    @property
    def spikes(self) -> torch.Tensor:
        """``[T, n]`` 0/1 spikes (built from the events on first reading where the run kept events)."""
        if self._spikes is None:
            self._spikes = spike_raster(*self.spike_events, *self._shape, self.t.dtype, self.t.device)
        return self._spikes

    @property
    def spikes_are_events(self) -> bool:
        """Whether the spikes are held as events only (no raster built yet: nothing differentiates them)."""
        return self._spikes is None

    @property
    def spike_events(self) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, neurons)``: the step index and neuron of every spike, ordered by step, then neuron."""
        if self._pairs is None:
            if self._events is not None:
                self._pairs = (self._events.steps(), self._events.neurons)
            else:
                steps, neurons = np.nonzero(self._spikes.detach().cpu().numpy())
                self._pairs = (steps, neurons)
        return self._pairs

    @property
    def n(self) -> int:
        """Number of neurons."""
        return int(self._shape[1])

    @property
    def duration(self) -> float:
        """Simulated time in seconds."""
        return float(self._shape[0]) * self.dt

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.states:
            raise KeyError(f"'{name}' was not recorded; recorded: {', '.join(self.states) or 'nothing'}")
        return self.states[name]

    def __contains__(self, name: str) -> bool:
        return name in self.states

    @property
    def spike_trains(self) -> list[np.ndarray]:
        """Per neuron, a 1-D array of spike times in seconds."""
        if self._spike_trains is None:
            steps, neurons = self.spike_events
            t = self.t.detach().cpu().numpy()
            order = np.argsort(neurons, kind="stable")  # by neuron, in time within each
            bounds = np.searchsorted(neurons[order], np.arange(self.n + 1))
            times = t[steps[order]]
            self._spike_trains = [times[bounds[k]:bounds[k + 1]] for k in range(self.n)]
        return self._spike_trains

    @property
    def spike_counts(self) -> torch.Tensor:
        """``[n]`` number of spikes per neuron (differentiable in torch runs)."""
        if self._spikes is None:
            counts = np.bincount(self._events.neurons, minlength=self.n)
            return torch.from_numpy(counts).to(dtype=self.t.dtype, device=self.t.device)
        return self.spikes.sum(0)

    def to_neo(self):
        """A ``neo.Segment``: one AnalogSignal per variable (all neurons), one SpikeTrain per neuron."""
        # neo loads only when a result is exported
        import neo
        import quantities as pq

        seg = neo.Segment(name=f"{self.model.name} ({self.backend})")
        seg.annotate(model=self.model.name, backend=self.backend, engine=self.engine, dt=self.dt,
                     parameters={k: _plain(v) for k, v in self.params.items()})
        for name, values in self.states.items():
            dim = self.model.dims[name]
            unit = dims_to_quantities(dim)
            data = values.detach().cpu().numpy()
            sig = neo.AnalogSignal(data, units=unit, sampling_period=self.dt * pq.s, t_start=0 * pq.s, name=name)
            sig.annotate(variable=name, si_unit=unit_name(dim))
            seg.analogsignals.append(sig)
        for k, times in enumerate(self.spike_trains):
            st = neo.SpikeTrain(np.asarray(times) * pq.s, t_stop=self.duration * pq.s, name=f"neuron {k}")
            st.annotate(neuron=k)
            seg.spiketrains.append(st)
        return seg

    def plot(self, variables: Sequence[str] | None = None, neurons: Sequence[int] | None = None, ax=None):
        """Traces of ``variables`` (default: all recorded) for ``neurons`` (default: first 5)."""
        # matplotlib loads only when a figure is drawn
        import matplotlib.pyplot as plt
        variables = list(variables or self.states)
        neurons = list(neurons if neurons is not None else range(min(self.n, 5)))
        rows = len(variables) + 1
        if ax is None:
            fig, axes = plt.subplots(rows, 1, sharex=True, figsize=(8, 2 * rows), squeeze=False)
            axes = axes[:, 0]
        else:
            axes, fig = np.atleast_1d(ax), np.atleast_1d(ax)[0].figure
        t = self.t.detach().cpu().numpy()
        for a, name in zip(axes, variables):
            dim = self.model.dims[name]
            unit = get_unit(dim)
            scale, label = lab_unit(dim)
            for k in neurons:
                a.plot(t, self.states[name][:, k].detach().cpu().numpy() / scale, lw=0.8, label=f"neuron {k}")
            a.set_ylabel(f"{name} ({label if label else unit})")
        for k in neurons:
            times = self.spike_trains[k]
            axes[-1].plot(times, np.full(len(times), k), "|", color="k")
        axes[-1].set_ylabel("neuron")
        axes[-1].set_xlabel("time (s)")
        axes[0].set_title(f"{self.model.name}: {self.backend}")
        return fig

    def __repr__(self) -> str:
        what = self.model.name if self.model is not None else "no model"
        return (f"SimulationResult({what}, backend={self.backend}, engine={self.engine}, n={self.n}, "
                f"T={self._shape[0]}, dt={self.dt}, recorded={list(self.states)})")


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.ndim else float(value)
    return value
