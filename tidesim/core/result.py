"""``SimulationResult``: what a run returns, the same whichever simulator ran it."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from brian2.units.fundamentalunits import get_unit

from tidesim.core.model import NeuronModel
from tidesim.core.units import lab_unit, unit_name

__all__ = ["SimulationResult", "dims_to_quantities"]


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
        ``[T, n]`` 0/1 spikes; in torch runs they carry the surrogate gradient.
    """

    def __init__(
        self,
        model: NeuronModel,
        t: torch.Tensor,
        states: dict[str, torch.Tensor],
        spikes: torch.Tensor,
        dt: float,
        backend: str,
        params: dict[str, Any] | None = None,
        spike_trains: Sequence[np.ndarray] | None = None,
        final_state: dict[str, torch.Tensor] | None = None,
        engine: str | None = None,
    ):
        self.model = model
        self.t = t
        self.states = states
        self.spikes = spikes
        self.dt = float(dt)
        self.backend = backend
        #: the engine that produced it: "compiled", "eager" or "brian2" (set by the engine table)
        self.engine = engine if engine is not None else ("brian2" if backend == "brian2" else None)
        self.params = params or {}
        self.final_state = final_state or {}
        self._spike_trains = list(spike_trains) if spike_trains is not None else None

    @property
    def n(self) -> int:
        """Number of neurons."""
        return int(self.spikes.shape[1])

    @property
    def duration(self) -> float:
        """Simulated time in seconds."""
        return float(self.spikes.shape[0]) * self.dt

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
            s = self.spikes.detach().cpu().numpy()
            t = self.t.detach().cpu().numpy()
            self._spike_trains = [t[np.nonzero(s[:, k])[0]] for k in range(s.shape[1])]
        return self._spike_trains

    @property
    def spike_counts(self) -> torch.Tensor:
        """``[n]`` number of spikes per neuron (differentiable in torch runs)."""
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
                f"T={self.spikes.shape[0]}, dt={self.dt}, recorded={list(self.states)})")


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.ndim else float(value)
    return value
