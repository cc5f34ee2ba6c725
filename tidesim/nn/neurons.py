"""``Neurons``: an ``nn.Module`` population layer built from any :class:`~tidesim.NeuronModel`.

A layer step is one step of the model in Brian2's order (state update with the layer input as the
model's input parameter, threshold, reset), on tensors of any shape ``[batch, *shape]``. The
functional core is :meth:`Neurons.step` (state in, state out); the module adds parameters (some
learnable), optional carried state for online use (``stateful=True``), and a time loop over a
sequence with truncated BPTT and gradient checkpointing.

The membrane a layer returns is the value the threshold saw (after the update, before the reset),
as snnTorch returns it.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from tidesim.codegen.build import available as compiler_available
from tidesim.codegen.torch_source import make_namespace
from tidesim.core.errors import ModelError, ShapeError
from tidesim.core.model import NeuronModel
from tidesim.core.surrogate import get as get_surrogate
from tidesim.core.units import to_si
from tidesim.engines import schedule
from tidesim.engines.neuron_compiled import surrogate_code
from tidesim.engines.simulate import simulate

__all__ = ["Neurons"]


class Neurons(nn.Module):
    """A layer of neurons of ``model``.

    Parameters
    ----------
    model
        The neuron model (its equations, threshold and reset; no noise, no refractoriness).
    input
        The model parameter the layer's input drives (e.g. ``"I"`` in amperes, ``"x"``).
    dt
        Time step (s).
    params
        Parameter overrides (SI floats, quantities or tensors broadcasting to the layer shape).
    learn
        Names of parameters to train (``nn.Parameter``), e.g. ``("beta", "theta")``.
    surrogate
        Surrogate gradient of the spikes (``ts.surrogate``; ``fast_sigmoid(learnable=True)`` trains
        its slope with the layer).
    detach_reset
        Whether the reset passes no gradient through the spike (snnTorch's default).
    stateful
        Keep the state between calls of :meth:`forward` (online use); ``reset_state()`` clears it.
    engine
        How :meth:`run` steps through a sequence on the CPU: ``"auto"`` (the compiled C loop where
        the model and surrogate allow), ``"compiled"``, or ``"eager"`` (torch step by step).
    record
        The state the layer reports as its membrane (default: the threshold's variable).
    """

    def __init__(self, model: NeuronModel, input: str = "I", dt: float = 1e-3,
                 params: Mapping[str, Any] | None = None, learn: Iterable[str] = (), surrogate: Any = None,
                 detach_reset: bool = True, stateful: bool = False, record: str | None = None,
                 engine: str = "auto"):
        super().__init__()
        if model.refractory_kind is not None:
            raise ModelError(f"{model.name}: layers do not model refractoriness; drop it from the model")
        if model.stochastic:
            raise ModelError(f"{model.name}: layers do not model noise (xi); drop it from the model")
        if input not in model.parameter_names:
            raise ModelError(f"{model.name} has no parameter {input!r} for the layer input; its parameters are "
                             f"{', '.join(model.parameter_names)}")
        self.model, self.input, self.dt = model, input, float(dt)
        self.detach_reset, self.stateful = detach_reset, stateful
        if engine not in ("auto", "compiled", "eager"):
            raise ValueError(f"engine must be 'auto', 'compiled' or 'eager', got {engine!r}")
        self.engine = engine
        self.surrogate = get_surrogate(surrogate)
        if self.surrogate.learnable:  # trained with the layer
            self.register_parameter("surrogate_shape", self.surrogate.shape_param)
        given = dict(params or {})
        unknown = [k for k in list(given) + list(learn) if k not in model.parameter_names]
        if unknown:
            raise ModelError(f"{model.name} has no parameter {', '.join(map(repr, unknown))}; its parameters are "
                             f"{', '.join(model.parameter_names)}")
        for name in model.parameter_names:
            if name == input:
                continue
            value = given.get(name, model.parameters.get(name))
            if value is None:
                raise ModelError(f"{model.name}: parameter {name!r} has no value; give it in params=")
            if not isinstance(value, torch.Tensor):
                value = torch.tensor(float(to_si(value, f"parameter {name!r}", model.dims[name])))
            value = value.detach().clone().to(torch.get_default_dtype()) if not value.requires_grad else value
            if name in learn:
                self.register_parameter(name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)
        self.param_names = [n for n in model.parameter_names if n != input]
        states = list(model.state_names)
        self.record = record or _threshold_variable(model, states)
        self.state: dict[str, torch.Tensor] | None = None
        self._fns: dict[tuple, schedule.BoundModel] = {}

    # ------------------------------------------------------------------ the functional core
    def _functions(self, dtype, device) -> schedule.BoundModel:
        key = (dtype, device)
        if key not in self._fns:
            self._fns[key] = schedule.BoundModel(self.model, dtype, device, (1,))
        return self._fns[key]

    def initial_state(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The model's initial values, shaped like the input ``x`` ``[batch, *shape]``."""
        env = self._env(x)
        state = {}
        for name in self.model.state_names:
            value = self.model.initial.get(name, 0.0)
            if isinstance(value, str):
                fs = self.model.expression_function(value, f"initial_{name}")
                fn = fs.bind(fs.compile(), make_namespace(x.dtype, x.device, (1,)))
                value = fn(*[{**env, **state}[a] for a in fs.args])[0]
            state[name] = torch.as_tensor(value, dtype=x.dtype, device=x.device).expand_as(x).clone()
        return state

    def _env(self, x: torch.Tensor) -> dict:
        env = {n: self._param(n, x.dtype) for n in self.param_names}
        env.update(dt=torch.tensor(self.dt, dtype=x.dtype, device=x.device), t=torch.zeros((), dtype=x.dtype))
        env[self.input] = x
        return env

    def step(self, x: torch.Tensor, state: Mapping[str, torch.Tensor]):
        """One step: ``(spikes, membrane, new_state)`` from input ``x`` and ``state``."""
        fns = self._functions(x.dtype, x.device)
        env = self._env(x)
        env.update(state)
        new, spikes, pending = schedule.advance(self.model, fns, env, state, 0, None, self.surrogate, x.shape)
        membrane = torch.broadcast_to(new[self.record], x.shape)
        new = schedule.reset(self.model, fns, new, pending, self.detach_reset, needs_grad=True)
        return spikes, membrane, {k: torch.broadcast_to(v, x.shape) for k, v in new.items()}

    # ------------------------------------------------------------------ module interface
    def forward(self, x: torch.Tensor, state: Mapping[str, torch.Tensor] | None = None):
        """One step. Functional: ``spk, mem, state = layer(x, state)``; with ``stateful=True`` the
        layer keeps its state between calls and ``layer(x)`` returns ``spk, mem``."""
        if state is None:
            state = self.state if self.stateful and self.state is not None and self.state[
                self.record].shape == x.shape else self.initial_state(x)
        spikes, mem, new = self.step(x, state)
        if self.stateful:
            self.state = new
            return spikes, mem
        return spikes, mem, new

    def reset_state(self) -> None:
        """Forget the carried state (a new sequence starts)."""
        self.state = None

    def detach_state(self) -> None:
        """Cut the carried state from the graph (truncated BPTT)."""
        if self.state is not None:
            self.state = {k: v.detach() for k, v in self.state.items()}

    def run(self, x: torch.Tensor, state: Mapping[str, torch.Tensor] | None = None, tbptt: int | None = None,
            checkpoint: int | None = None, membranes: bool = True):
        """The whole sequence ``x`` ``[T, batch, *shape]``: returns ``spikes, membranes`` (both
        ``[T, ...]``) and the final state. ``tbptt=K`` cuts the state's gradient every K steps;
        ``checkpoint=K`` recomputes K-step segments in the backward pass (less memory);
        ``membranes=False`` lets a layer skip returning them (None)."""
        if x.ndim < 2:
            raise ShapeError(f"a sequence must be [T, batch, ...]; got shape {tuple(x.shape)}")
        state = dict(state) if state is not None else self.initial_state(x[0])
        if self.engine != "eager" and _compilable(self, x):
            return self._run_compiled(x, state, tbptt, checkpoint)
        spikes, mems = [], []
        T = x.shape[0]
        seg = int(checkpoint or tbptt or T) or T
        for k0 in range(0, T, seg):
            xs = x[k0:k0 + seg]
            if checkpoint and torch.is_grad_enabled():
                s, m, state = torch_checkpoint(self._segment, xs, state, use_reentrant=False)
            else:
                s, m, state = self._segment(xs, state)
            spikes.append(s)
            mems.append(m)
            if tbptt and (k0 + seg) % tbptt == 0:
                state = {k: v.detach() for k, v in state.items()}
        return torch.cat(spikes), torch.cat(mems), state

    def _run_compiled(self, x: torch.Tensor, state: dict, tbptt: int | None, checkpoint: int | None):
        """The sequence in tidesim's compiled engine (C time loop, adjoint backward): the same
        numbers as stepping, with memory of one state trajectory (or segment starts)."""
        T, shape = x.shape[0], x.shape[1:]
        n = int(torch.Size(shape).numel())
        params = {}
        for name in self.param_names:
            value = self._param(name, x.dtype)
            params[name] = value.expand(shape).reshape(n) if value.ndim else value
        res = simulate(self.model, duration=T * self.dt, dt=self.dt, n=n, params=params,
                       inputs={self.input: x.reshape(T, n)}, record=[self.record],
                       initial={k: v.reshape(n) for k, v in state.items()}, surrogate=self.surrogate,
                       detach_reset=self.detach_reset, tbptt=tbptt, checkpoint=checkpoint, engine="compiled",
                       dtype=x.dtype)
        final = {k: v.reshape(shape) for k, v in res.final_state.items() if k in self.model.state_names}
        # the monitor records at the start of a step: the membrane after step t is the record of t+1
        mem = torch.cat([res[self.record][1:], final[self.record].reshape(1, n)]).reshape(T, *shape)
        return res.spikes.reshape(T, *shape), mem, final

    def _param(self, name: str, dtype) -> torch.Tensor:
        return getattr(self, name).to(dtype)

    def _segment(self, xs: torch.Tensor, state):
        spikes, mems = [], []
        for x in xs.unbind(0):
            s, m, state = self.step(x, state)
            spikes.append(s)
            mems.append(m)
        return torch.stack(spikes), torch.stack(mems), state

    def extra_repr(self) -> str:
        return f"model={self.model.name}, input={self.input}, dt={self.dt}, surrogate={self.surrogate!r}"


def _compilable(layer: Neurons, x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and compiler_available()
            and not layer.surrogate.learnable and surrogate_code(layer.surrogate) is not None)


def _threshold_variable(model: NeuronModel, states: list[str]) -> str:
    used = set(model.threshold_function.args) if model.threshold_function is not None else set()
    for name in states:
        if name in used:
            return name
    return states[0]

