"""One step of a neuron population in Brian2's default schedule: the functional core every torch
engine runs (the single-population integrator, the network engine and ``ts.nn.Neurons``).

A step is: refractoriness, state update (equations marked ``(unless refractory)`` are written only
while not refractory), threshold (tested only while not refractory), and, after whatever a caller
runs in between (synaptic propagation in a network), the reset of the neurons that spiked. Values
are recorded at the start of a step, as a Brian2 ``StateMonitor`` does.

:func:`advance` and :func:`reset` are pure functions of (functions, environment, state) apart from
the random generator that noise draws from; :class:`NeuronStepper` holds what stays fixed during
one run (parameters, inputs per step, the refractory period in steps) around them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from tidesim.codegen.torch_source import FunctionSource, make_namespace
from tidesim.core.errors import ModelError, ShapeError
from tidesim.core.inputs import ResolvedInputs, as_tensor
from tidesim.core.model import NeuronModel
from tidesim.core.surrogate import Surrogate

__all__ = ["BoundModel", "Pending", "advance", "reset", "refractory_steps", "initial_state", "NeuronStepper",
           "NEVER"]

NEVER = -(2**40)  # step index of "no spike yet" (Brian2 starts lastspike at -10^4 s)


class BoundModel:
    """A model's generated functions bound to one run's dtype, device, shape and random generator:
    each attribute is ``(function, argument names)`` or ``None``."""

    def __init__(self, model: NeuronModel, dtype: torch.dtype, device: torch.device, shape: tuple[int, ...],
                 generator: torch.Generator | None = None):
        ns = make_namespace(dtype, device, shape, generator)

        def bind(src: FunctionSource | None):
            return None if src is None else (src.bind(src.compile(), ns), src.args)

        self.update = bind(model.update_function)
        self.threshold = bind(model.threshold_function)
        self.reset = bind(model.reset_function)
        self.subexpressions = bind(model.subexpression_function)
        self.refractory = bind(model.refractory_function)


def call(fn_args: tuple[Callable, tuple[str, ...]], env: Mapping[str, Any]) -> tuple:
    """Call a bound function with its arguments taken from ``env`` by name."""
    fn, args = fn_args
    return fn(*[env[a] for a in args])


def refractory_steps(model: NeuronModel, fns: BoundModel, env: Mapping[str, Any], dt: float
                     ) -> int | torch.Tensor | None:
    """The refractory period in whole steps: one number (a time), one per neuron (an expression of
    the parameters, evaluated once) or ``None`` (none, or a condition tested every step)."""
    if model.refractory_kind == "time":
        return int((model.refractory_period + 1e-3 * dt) / dt)
    if model.refractory_kind == "time_expr":
        ref = torch.as_tensor(call(fns.refractory, env)[0])
        return torch.floor((ref.detach() + 1e-3 * dt) / dt).long()
    return None


@dataclass
class Pending:
    """What the reset of a step needs from its first part: the environment the threshold saw, the
    exact spike condition and the spikes (carrying the surrogate gradient)."""

    env: dict
    cond: torch.Tensor
    spikes: torch.Tensor


def _not_refractory(model: NeuronModel, fns: BoundModel, env: dict, state: Mapping[str, torch.Tensor], i: int,
                    ref_steps: int | torch.Tensor | None) -> torch.Tensor | None:
    kind = model.refractory_kind
    if kind in ("time", "time_expr"):
        return (i - state["_last"]) >= ref_steps
    if kind == "condition":
        return state["_nr"] | ~torch.as_tensor(call(fns.refractory, env)[0])
    return None


def advance(model: NeuronModel, fns: BoundModel, env: dict, state: Mapping[str, torch.Tensor], i: int,
            ref_steps: int | torch.Tensor | None, surrogate: Surrogate, shape: tuple[int, ...]
            ) -> tuple[dict, torch.Tensor, Pending | None]:
    """Refractoriness, update and threshold of step ``i`` (``env`` holds parameters, inputs, ``t`` and
    the state). Returns the new, not yet reset state, the spikes and what :func:`reset` needs."""
    nr = _not_refractory(model, fns, env, state, i, ref_steps)
    env["not_refractory"] = nr
    new = {}
    for name, value in zip(model.state_names, call(fns.update, env)):
        new[name] = torch.where(nr, value, state[name]) if name in model.flagged else value
    dtype, device = env["dt"].dtype, env["dt"].device
    spikes = torch.zeros(shape, dtype=dtype, device=device)
    pending = None
    kind = model.refractory_kind
    if fns.threshold is not None:
        env.update(new)
        cond, margin = call(fns.threshold, env)
        cond = torch.broadcast_to(torch.as_tensor(cond, device=device), shape)
        if not isinstance(margin, torch.Tensor):
            margin = torch.zeros(shape, dtype=dtype, device=device)
        margin = torch.broadcast_to(margin, shape)
        if nr is not None:
            cond = cond & nr
        spikes = surrogate(margin / model.threshold_scale, cond)
        if nr is not None:  # refractory neurons cannot spike: no surrogate gradient either
            spikes = spikes * nr
        if kind in ("time", "time_expr"):
            new["_last"] = torch.where(cond, i, state["_last"])
        elif kind == "condition":
            new["_nr"] = nr & ~cond
        pending = Pending(env, cond, spikes)
    elif kind == "condition":
        new["_nr"] = nr
    for key in ("_last", "_nr"):
        if key in state and key not in new:
            new[key] = state[key]
    return new, spikes, pending


def reset(model: NeuronModel, fns: BoundModel, new: dict, pending: Pending | None, detach_reset: bool,
          needs_grad: bool) -> dict:
    """Reset the neurons that spiked (``pending`` from :func:`advance`); ``new`` may have been changed
    in between (synaptic effects on the post-synaptic population)."""
    if pending is None or fns.reset is None:
        return new
    if not (needs_grad or bool(pending.cond.any())):
        return new
    env = pending.env
    env.update(new)
    env["_s"] = pending.spikes.detach() if detach_reset else pending.spikes
    new = dict(new)
    new.update(zip(model.reset_function.targets, call(fns.reset, env)))
    return new


def initial_state(model: NeuronModel, res: ResolvedInputs, n: int, dt: float, dtype: torch.dtype,
                  device: torch.device, initial: Mapping[str, Any] | None) -> dict[str, torch.Tensor]:
    """State tensors at t = 0: model defaults, overridden by ``initial`` (values or expressions), and
    the refractoriness bookkeeping (``_last`` spike step, or ``_nr`` for a condition)."""
    initial = model.check_initial(initial or {})
    values = {**model.initial, **initial}
    env = dict(res.params)
    env.update(t=torch.zeros((), dtype=dtype, device=device), dt=torch.tensor(dt, dtype=dtype, device=device),
               N=n, i=torch.arange(n, device=device))
    for name, series in res.series.items():
        env[name] = series[0]
    state = {}
    for name in model.state_names:  # in order: an expression may use states set before it
        value = values.get(name, 0.0)
        if isinstance(value, str):
            fs = model.expression_function(value, f"initial_{name}")
            fn = fs.bind(fs.compile(), make_namespace(dtype, device, (n,)))
            missing = [a for a in fs.args if a not in env]
            if missing:
                raise ModelError(f"initial value of '{name}' ('{value}') uses {', '.join(missing)}, "
                                 "which has no value yet (states are set in the order of the equations)")
            value = fn(*[env[a] for a in fs.args])[0]
        tensor = as_tensor(value, dtype, device)
        if tensor.ndim > 1 or (tensor.ndim == 1 and tensor.shape[0] not in (1, n)):
            raise ShapeError(f"initial value of '{name}' has shape {tuple(tensor.shape)}; expected a "
                             f"scalar or [n] = [{n}]")
        state[name] = tensor.expand(n).clone() if tensor.ndim == 0 or tensor.shape[0] == 1 else tensor
        env[name] = state[name]
    if model.refractory_kind in ("time", "time_expr"):
        state["_last"] = torch.full((n,), NEVER, dtype=torch.long, device=device)
    elif model.refractory_kind == "condition":
        state["_nr"] = torch.ones(n, dtype=torch.bool, device=device)
    return state


class NeuronStepper:
    """Steps ``i0..i1`` of one population's run: the schedule around the fixed parts of the run
    (parameters, per-step inputs, the refractory period in steps). ``series`` may be swapped by a
    caller that recomputes segments (checkpointing)."""

    def __init__(self, model: NeuronModel, res: ResolvedInputs, n: int, dt: float, n_steps: int,
                 dtype: torch.dtype, device: torch.device, surrogate: Surrogate, record: tuple[str, ...],
                 detach_reset: bool, generator: torch.Generator | None, needs_grad: bool):
        self.model, self.n, self.dt, self.dtype, self.device = model, n, dt, dtype, device
        self.surrogate, self.record, self.detach_reset = surrogate, record, detach_reset
        self.generator, self.needs_grad = generator, needs_grad
        self.fns = BoundModel(model, dtype, device, (n,), generator)
        self.base_env = dict(res.params)
        self.base_env.update(dt=torch.tensor(dt, dtype=dtype, device=device), N=n,
                             i=torch.arange(n, device=device))
        self.t = (torch.arange(n_steps, dtype=dtype, device=device) * dt).unbind(0)
        self.ref_steps = refractory_steps(model, self.fns, self.base_env, dt)
        self.record_subexpr = [r for r in record if r in model.subexpression_names]
        self.series = dict(res.series)

    def env_at(self, i: int, state: Mapping[str, torch.Tensor]) -> dict:
        """Parameters, step ``i``'s inputs and time, and the state, by name."""
        env = dict(self.base_env)
        env["t"] = self.t[i]
        for name, values in self.series.items():
            env[name] = values[i]
        env.update(state)
        return env

    def recorded(self, env: Mapping[str, Any]) -> list[torch.Tensor]:
        """The recorded variables' values (``[n]`` each) at the start of a step."""
        if self.record_subexpr:
            env = {**env, **dict(zip(self.model.subexpression_names, call(self.fns.subexpressions, env)))}
        out = []
        for name in self.record:
            value = torch.as_tensor(env[name], dtype=self.dtype, device=self.device)
            out.append(value.expand(self.n) if value.ndim == 0 else value)
        return out

    def advance(self, i: int, state: Mapping[str, torch.Tensor]):
        """Record, update and test the threshold: the part of a step before synaptic propagation.
        Returns the new (not yet reset) state, spikes, recorded values and what the reset needs."""
        env = self.env_at(i, state)
        recorded = self.recorded(env)
        new, spikes, pending = advance(self.model, self.fns, env, state, i, self.ref_steps, self.surrogate,
                                       (self.n,))
        return new, spikes, recorded, pending

    def reset(self, new: dict, pending: Pending | None) -> dict:
        """The step's last part: reset the neurons that spiked."""
        return reset(self.model, self.fns, new, pending, self.detach_reset, self.needs_grad)

    def not_refractory(self, state: Mapping[str, torch.Tensor], k: int) -> torch.Tensor:
        """After step ``k``'s threshold: False for neurons refractory now (those that just spiked too)."""
        kind = self.model.refractory_kind
        if kind in ("time", "time_expr"):
            return (k - state["_last"]) >= self.ref_steps
        if kind == "condition":
            return state["_nr"]
        return torch.ones(self.n, dtype=torch.bool, device=self.device)

    def step(self, i: int, state: Mapping[str, torch.Tensor]) -> tuple[dict, torch.Tensor, list[torch.Tensor]]:
        """One whole step of a population on its own."""
        new, spikes, recorded, pending = self.advance(i, state)
        return self.reset(new, pending), spikes, recorded

    def run(self, i0: int, i1: int, state: dict, tbptt: int | None = None
            ) -> tuple[dict, torch.Tensor, list[torch.Tensor]]:
        """Steps ``i0..i1``: final state, spikes ``[i1 - i0, n]`` and records (``tbptt``: detach the
        state every that many steps)."""
        spikes, recs = [], []
        for i in range(i0, i1):
            state, s, r = self.step(i, state)
            spikes.append(s)
            recs.append(r)
            if tbptt and (i + 1) % tbptt == 0:
                state = {k: v.detach() for k, v in state.items()}
        stacked = [torch.stack(col) for col in zip(*recs)] if recs and recs[0] else []
        return state, torch.stack(spikes), stacked
