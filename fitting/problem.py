"""A fitting problem: many parameter points x all sweeps, simulated as one batch."""

from __future__ import annotations

from typing import Any, Mapping

import torch

from tidesim.engines.simulate import simulate
from tidesim.fitting.data import FitData
from tidesim.fitting.errors import FitError
from tidesim.fitting.losses import ModelOutput
from tidesim.fitting.parameters import ParameterSpace

__all__ = ["Problem", "check_io"]


def check_io(model, input: str, voltage: str) -> None:
    """The model has the parameter the recorded current drives and the state compared with the recorded
    voltage."""
    for what, name in (("input", input), ("voltage", voltage)):
        known = model.parameter_names if what == "input" else model.state_names
        if name not in known:
            raise FitError(f"{model.name} has no {'parameter' if what == 'input' else 'state'} {name!r} "
                           f"to use as the {what}; it has {', '.join(known)}")


class Problem:
    """The model, the data it is compared with, and how parameters reach the simulator.

    Neuron ``b * S + s`` of a batch is parameter point ``b`` driven by sweep ``s``'s recorded
    current, starting from that sweep's first recorded voltage.
    """

    def __init__(self, model, data: FitData, space: ParameterSpace | list[str], input: str = "I",
                 voltage: str = "v", engine: str = "auto", surrogate: Any = None, detach_reset: bool = True,
                 initial: Mapping[str, Any] | None = None):
        check_io(model, input, voltage)
        self.names = list(space.names if isinstance(space, ParameterSpace) else space)
        if input in self.names:
            raise FitError(f"{input!r} is the input driven by the recorded current; it cannot also be fitted")
        self.model, self.data, self.space = model, data, space
        self.input, self.voltage = input, voltage
        self.engine, self.surrogate, self.detach_reset = engine, surrogate, detach_reset
        self.initial = dict(initial or {})

    def simulate(self, x: torch.Tensor, record_all: bool = False, seed: int | None = None) -> ModelOutput:
        """Simulate the ``[B, d]`` SI parameter points on every sweep (differentiable in ``x``; ``seed``
        seeds a stochastic model's draws)."""
        d = self.data
        B, S = int(x.shape[0]), d.n_sweeps
        params = {name: x[:, j].repeat_interleave(S) for j, name in enumerate(self.names)}
        v0 = d.voltage[0]
        # start where each sweep starts (a sweep without a recorded voltage starts at the model's initial value)
        initial = {self.voltage: v0.repeat(B)} if bool(torch.isfinite(v0).all()) else {}
        initial.update(self.initial)
        res = simulate(self.model, duration=d.n_steps * d.dt, dt=d.dt, n=B * S, params=params,
                       inputs={self.input: d.current.repeat(1, B)},
                       record=None if record_all else [self.voltage], initial=initial,
                       surrogate=self.surrogate, engine=self.engine,
                       detach_reset=self.detach_reset, seed=seed)
        T = d.n_steps
        if res.spikes_are_events:  # nothing to differentiate: the losses read the events
            out = ModelOutput(res[self.voltage].reshape(T, B, S), None, d.dt, events=res.spike_events)
        else:
            out = ModelOutput(res[self.voltage].reshape(T, B, S), res.spikes.reshape(T, B, S), d.dt)
        out.result = res  # the full SimulationResult, for predictions and plots
        return out
