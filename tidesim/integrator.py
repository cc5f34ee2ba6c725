"""The differentiable integrator: the functional core (state and parameters in, new state out).

One time step follows Brian2's default schedule: refractoriness is updated, the state updater
runs (equations marked ``(unless refractory)`` are only written while not refractory), the
threshold is tested (only while not refractory), then spiking neurons are reset. Values are
recorded at the start of each step, as a Brian2 ``StateMonitor`` does.

Memory control for long runs: ``tbptt=K`` detaches the state every K steps (truncated BPTT);
``checkpoint=K`` recomputes K-step segments in the backward pass instead of storing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from brian2 import second

from .codegen import make_namespace
from .errors import (
    ModelError,
    NumericalInstabilityError,
    ShapeError,
    SimulationError,
    UnknownIdentifierError,
)
from .inputs import ResolvedInputs, as_tensor
from .model import NeuronModel
from .surrogate import Surrogate
from .units import fmt

__all__ = ["RunConfig", "RunOutput", "integrate"]

_NEVER = -(2**40)  # step index of "no spike yet" (Brian2 starts lastspike at -10^4 s)


@dataclass(frozen=True)
class RunConfig:
    """Everything that shapes one run; it travels with the run (no global settings)."""

    n: int
    dt: float
    n_steps: int
    dtype: torch.dtype
    device: torch.device
    surrogate: Surrogate
    record: tuple[str, ...]
    detach_reset: bool = True
    tbptt: int | None = None
    checkpoint: int | None = None
    chunk: int = 1000
    engine: str = "auto"  # "compiled" (C kernels), "eager" (torch step by step) or "auto"


@dataclass
class RunOutput:
    records: dict[str, torch.Tensor]
    spikes: torch.Tensor
    final_state: dict[str, torch.Tensor] = field(default_factory=dict)


class _SegmentCheckpoint(torch.autograd.Function):
    """Runs a segment without a graph; in backward, runs it again with one and differentiates.

    Like torch's reentrant checkpoint (nothing of the segment is kept), but it works with
    ``torch.autograd.grad`` as well as ``backward``. Everything to differentiate must be an input.
    """

    @staticmethod
    def forward(ctx, run, *inputs):
        ctx.run = run
        ctx.save_for_backward(*inputs)
        with torch.no_grad():
            outs = run(*inputs)
        ctx.mark_non_differentiable(*[o for o in outs if not o.is_floating_point()])
        return outs

    @staticmethod
    def backward(ctx, *grads):
        inputs = [x.detach().requires_grad_(x.requires_grad) for x in ctx.saved_tensors]
        with torch.enable_grad():
            outs = ctx.run(*inputs)
        pairs = [(o, g) for o, g in zip(outs, grads) if g is not None and o.requires_grad]
        wanted = [x for x in inputs if x.requires_grad]
        found = torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs], allow_unused=True) \
            if pairs and wanted else [None] * len(wanted)
        it = iter(found)
        return (None, *[next(it) if x.requires_grad else None for x in inputs])


class _Bound:
    """A model's generated functions bound to one run's dtype, device and random generator."""

    def __init__(self, model: NeuronModel, cfg: RunConfig, generator: torch.Generator):
        ns = make_namespace(cfg.dtype, cfg.device, (cfg.n,), generator)

        def bind(src):
            return None if src is None else (src.bind(src.compile(), ns), src.args)

        self.update = bind(model.update_function)
        self.threshold = bind(model.threshold_function)
        self.reset = bind(model.reset_function)
        self.subexpressions = bind(model.subexpression_function)
        kind = model._refractory_kind
        self.refractory = bind(model._refractory_value) if kind in ("time_expr", "condition") else None


def _call(fn_args, env):
    fn, args = fn_args
    return fn(*[env[a] for a in args])


class _Stepper:
    """Runs steps ``i0..i1`` of one simulation; pure apart from the random generator."""

    def __init__(self, model: NeuronModel, res: ResolvedInputs, cfg: RunConfig, generator):
        self.model, self.res, self.cfg, self.gen = model, res, cfg, generator
        self.fns = _Bound(model, cfg, generator)
        self.kind = model._refractory_kind
        self.states = list(model.state_names)
        self.flagged = set(model.flagged)
        dt = torch.tensor(cfg.dt, dtype=cfg.dtype, device=cfg.device)
        self.base_env = dict(res.params)
        self.base_env.update(dt=dt, N=cfg.n, i=torch.arange(cfg.n, device=cfg.device))
        self.t = (torch.arange(cfg.n_steps, dtype=cfg.dtype, device=cfg.device) * cfg.dt).unbind(0)
        self.ref_steps = None
        if self.kind == "time":
            self.ref_steps = int((model._refractory_value + 1e-3 * cfg.dt) / cfg.dt)
        elif self.kind == "time_expr":
            ref = torch.as_tensor(_call(self.fns.refractory, self.base_env)[0])
            self.ref_steps = torch.floor((ref.detach() + 1e-3 * cfg.dt) / cfg.dt).long()
        self.record_subexpr = [r for r in cfg.record if r in model.subexpression_names]
        self.series = dict(res.series)  # per-step input values; segments may swap in their own
        self.needs_grad = False
        self.reset_targets = model.reset_function.targets if model.reset_function else ()

    def env_at(self, i: int, state: dict) -> dict:
        env = dict(self.base_env)
        env["t"] = self.t[i]
        for name, values in self.series.items():
            env[name] = values[i]
        env.update(state)
        return env

    def _record(self, env: dict) -> list[torch.Tensor]:
        if self.record_subexpr:
            sub = dict(zip(self.model.subexpression_names, _call(self.fns.subexpressions, env)))
            env = {**env, **sub}
        n = self.cfg.n
        out = []
        for name in self.cfg.record:
            value = torch.as_tensor(env[name], dtype=self.cfg.dtype, device=self.cfg.device)
            out.append(value.expand(n) if value.ndim == 0 else value)
        return out

    def step(self, i: int, state: dict) -> tuple[dict, torch.Tensor, list[torch.Tensor]]:
        new, spikes, recorded, pending = self.advance(i, state)
        return self.reset(new, pending), spikes, recorded

    def advance(self, i: int, state: dict):
        """Record, update and test the threshold: the part of a step before synaptic propagation.
        Returns the new (not yet reset) state, spikes, recorded values and what the reset needs."""
        env = self.env_at(i, state)
        recorded = self._record(env)
        nr = None
        if self.kind in ("time", "time_expr"):
            nr = (i - state["_last"]) >= self.ref_steps
        elif self.kind == "condition":
            nr = state["_nr"] | ~torch.as_tensor(_call(self.fns.refractory, env)[0])
        env["not_refractory"] = nr
        new_values = _call(self.fns.update, env)
        new = {}
        for name, value in zip(self.states, new_values):
            if name in self.flagged:
                value = torch.where(nr, value, state[name])
            new[name] = value
        spikes = torch.zeros(self.cfg.n, dtype=self.cfg.dtype, device=self.cfg.device)
        pending = None
        if self.fns.threshold is not None:
            env.update(new)
            cond, margin = _call(self.fns.threshold, env)
            shape = (self.cfg.n,)
            cond = torch.broadcast_to(torch.as_tensor(cond, device=self.cfg.device), shape)
            if not isinstance(margin, torch.Tensor):
                margin = torch.zeros(shape, dtype=self.cfg.dtype, device=self.cfg.device)
            margin = torch.broadcast_to(margin, shape)
            if nr is not None:
                cond = cond & nr
            spikes = self.cfg.surrogate(margin / self.model.threshold_scale, cond)
            if nr is not None:  # refractory neurons cannot spike: no surrogate gradient either
                spikes = spikes * nr
            if self.kind in ("time", "time_expr"):
                new["_last"] = torch.where(cond, i, state["_last"])
            elif self.kind == "condition":
                new["_nr"] = nr & ~cond
            pending = (env, cond, spikes)
        elif self.kind == "condition":
            new["_nr"] = nr
        for key in ("_last", "_nr"):
            if key in state and key not in new:
                new[key] = state[key]
        return new, spikes, recorded, pending

    def reset(self, new: dict, pending) -> dict:
        """Reset the neurons that spiked (``pending`` from :meth:`advance`); ``new`` may have been
        changed in between (synaptic effects on the post-synaptic population)."""
        if pending is None or self.fns.reset is None:
            return new
        env, cond, spikes = pending
        if not (self.needs_grad or bool(cond.any())):
            return new
        env.update(new)
        env["_s"] = spikes.detach() if self.cfg.detach_reset else spikes
        fn, args = self.fns.reset
        new = dict(new)
        new.update(zip(self.reset_targets, fn(*[env[a] for a in args])))
        return new

    def run(self, i0: int, i1: int, state: dict) -> tuple[dict, torch.Tensor, list[torch.Tensor]]:
        spikes, recs = [], []
        for i in range(i0, i1):
            state, s, r = self.step(i, state)
            spikes.append(s)
            recs.append(r)
            if self.cfg.tbptt and (i + 1) % self.cfg.tbptt == 0:
                state = {k: v.detach() for k, v in state.items()}
        stacked = [torch.stack(col) for col in zip(*recs)] if recs and recs[0] else []
        return state, torch.stack(spikes), stacked


def initial_state(model: NeuronModel, res: ResolvedInputs, cfg: RunConfig, initial: dict | None) -> dict:
    """State tensors at t = 0: model defaults, overridden by ``initial`` (values or expressions)."""
    initial = model._check_initial(initial or {})
    values = {**model.initial, **initial}
    env = dict(res.params)
    env.update(t=torch.zeros((), dtype=cfg.dtype, device=cfg.device),
               dt=torch.tensor(cfg.dt, dtype=cfg.dtype, device=cfg.device),
               N=cfg.n, i=torch.arange(cfg.n, device=cfg.device))
    for name, series in res.series.items():
        env[name] = series[0]
    state = {}
    for name in model.state_names:  # in order: an expression may use states set before it
        value = values.get(name, 0.0)
        if isinstance(value, str):
            fs = model.expression_function(value, f"initial_{name}")
            fn = fs.bind(fs.compile(), make_namespace(cfg.dtype, cfg.device, (cfg.n,)))
            missing = [a for a in fs.args if a not in env]
            if missing:
                raise ModelError(f"initial value of '{name}' ('{value}') uses {', '.join(missing)}, "
                                 "which has no value yet (states are set in the order of the equations)")
            value = fn(*[env[a] for a in fs.args])[0]
        tensor = as_tensor(value, cfg.dtype, cfg.device)
        if tensor.ndim > 1 or (tensor.ndim == 1 and tensor.shape[0] not in (1, cfg.n)):
            raise ShapeError(f"initial value of '{name}' has shape {tuple(tensor.shape)}; expected a "
                             f"scalar or [n] = [{cfg.n}]")
        state[name] = tensor.expand(cfg.n).clone() if tensor.ndim == 0 or tensor.shape[0] == 1 else tensor
        env[name] = state[name]
    if model._refractory_kind in ("time", "time_expr"):
        state["_last"] = torch.full((cfg.n,), _NEVER, dtype=torch.long, device=cfg.device)
    elif model._refractory_kind == "condition":
        state["_nr"] = torch.ones(cfg.n, dtype=torch.bool, device=cfg.device)
    return state


def _locate_nonfinite(stepper: _Stepper, i0: int, i1: int, state: dict, gen_state) -> None:
    """Re-run a chunk without gradients, step by step, and raise at the first NaN/inf."""
    if gen_state is not None:
        stepper.gen.set_state(gen_state)
    model, dt = stepper.model, stepper.cfg.dt
    with torch.no_grad():
        state = {k: v.detach() for k, v in state.items()}
        for i in range(i0, i1):
            prev = state
            state, _, _ = stepper.step(i, state)
            for name in stepper.states:
                bad = ~torch.isfinite(state[name])
                if bool(bad.any()):
                    k = int(torch.nonzero(bad)[0, 0])
                    raise NumericalInstabilityError(
                        f"{model.name}: state variable '{name}' of neuron {k} became "
                        f"{float(state[name][k])} in the step from t = {fmt(i * dt, second.dim)} to "
                        f"{fmt((i + 1) * dt, second.dim)} (step {i}); it was "
                        f"{fmt(float(prev[name][k]), model.dims[name])} before. Try a smaller dt, "
                        "another integration method, or check that neuron's parameters.",
                        variable=name, neuron=k, step=i)
    raise NumericalInstabilityError(  # pragma: no cover - the re-run finds it
        f"{model.name}: a state became NaN or infinite between steps {i0} and {i1}")


def integrate(
    model: NeuronModel,
    res: ResolvedInputs,
    cfg: RunConfig,
    generator: torch.Generator,
    initial: dict | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunOutput:
    """Run ``cfg.n_steps`` steps; returns records ``[T, n]``, spikes ``[T, n]`` and the final state."""
    state = initial_state(model, res, cfg, initial)
    needs_grad = torch.is_grad_enabled() and (
        any(p.requires_grad for p in res.params.values() if isinstance(p, torch.Tensor))
        or any(v.requires_grad for v in res.stacked.values())
        or any(v.requires_grad for v in state.values()))
    if cfg.engine != "eager":
        from . import compiled

        why_not = compiled.eligible(model, cfg, needs_grad)
        if why_not is None:
            out = compiled.integrate_compiled(model, res, cfg, state, needs_grad)
            if out is not None:
                records, spikes, finals = out
                if progress is not None:
                    progress(cfg.n_steps)
                return RunOutput(records, spikes, finals)
            why_not = "a function without a derivative the adjoint kernel can print"
        if cfg.engine == "compiled":
            raise SimulationError(f"the compiled engine cannot run {model.name}: {why_not}")
    stepper = _Stepper(model, res, cfg, generator)
    stepper.needs_grad = needs_grad
    seg = cfg.checkpoint if (cfg.checkpoint and stepper.needs_grad) else cfg.chunk
    spikes_parts: list[torch.Tensor] = []
    rec_parts: list[list[torch.Tensor]] = []
    keys = list(state)
    # Reentrant checkpointing keeps no graph at all inside a segment, so everything a segment
    # differentiates must be an explicit input: the states, the parameters and the inputs.
    pnames = [k for k, v in res.params.items() if isinstance(v, torch.Tensor) and v.requires_grad]
    snames = [k for k, v in res.stacked.items() if v.requires_grad]
    for i0 in range(0, cfg.n_steps, seg):
        i1 = min(i0 + seg, cfg.n_steps)
        start = state
        gen_state = generator.get_state() if model.noise_names else None
        if cfg.checkpoint and stepper.needs_grad:
            def segment(*flat, _i0=i0, _i1=i1, _gs=gen_state):
                if _gs is not None:  # same noise when the segment is recomputed in backward
                    stepper.gen.set_state(_gs)
                nk, npar = len(keys), len(pnames)
                stepper.base_env.update(zip(pnames, flat[nk:nk + npar]))
                for name, values in zip(snames, flat[nk + npar:]):
                    stepper.series[name] = [None] * _i0 + list(values.unbind(0))
                st, sp, rc = stepper.run(_i0, _i1, dict(zip(keys, flat[:nk])))
                return (*[st[k] for k in keys], sp, *rc)

            inputs = [state[k] for k in keys] + [res.params[k] for k in pnames] + \
                [res.stacked[k][i0:i1] for k in snames]
            out = _SegmentCheckpoint.apply(segment, *inputs)
            state = dict(zip(keys, out[: len(keys)]))
            spikes, recs = out[len(keys)], list(out[len(keys) + 1:])
        else:
            state, spikes, recs = stepper.run(i0, i1, state)
        if not all(bool(torch.isfinite(state[k]).all()) for k in stepper.states):
            _locate_nonfinite(stepper, i0, i1, start, gen_state)
        spikes_parts.append(spikes)
        rec_parts.append(recs)
        if progress is not None:
            progress(i1 - i0)
    spikes = torch.cat(spikes_parts) if spikes_parts else torch.zeros(0, cfg.n, dtype=cfg.dtype)
    records = {}
    for k, name in enumerate(cfg.record):
        records[name] = torch.cat([part[k] for part in rec_parts])
    return RunOutput(records, spikes, state)


def record_names(model: NeuronModel, record: Sequence[str] | None) -> tuple[str, ...]:
    """Validate ``record``: default all states; ``[]`` keeps spikes only."""
    if record is None:
        return tuple(model.state_names)
    if isinstance(record, str):
        record = [record]
    allowed = model.state_names + model.subexpression_names + model.parameter_names
    unknown = [r for r in record if r not in allowed]
    if unknown:
        raise UnknownIdentifierError(
            f"cannot record {', '.join(repr(u) for u in unknown)}: {model.name} has states "
            f"{', '.join(model.state_names)}"
            + (f", subexpressions {', '.join(model.subexpression_names)}" if model.subexpression_names else "")
            + f" and parameters {', '.join(model.parameter_names)}"
        )
    return tuple(record)
