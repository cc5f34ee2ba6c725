"""The torch engine of a :class:`~tidesim.Network`: populations step together, projections deliver
delayed spikes event by event (synapses of the neurons that spiked only)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from .inputs import resolve
from .integrator import RunConfig, _Stepper, initial_state, record_names
from .network import Network, Population, Projection
from .result import SimulationResult
from .simulation import n_steps_for
from .surrogate import get as get_surrogate

__all__ = ["run_network"]


class _Delivery:
    """One projection's synapses grouped by delay, each group sorted by source (CSR by pre)."""

    def __init__(self, proj: Projection, delays: torch.Tensor, n_pre: int):
        self.proj = proj
        self.groups = []
        for d in torch.unique(delays).tolist():
            ids = torch.nonzero(delays == d)[:, 0]
            order = torch.argsort(proj.i[ids], stable=True)
            ids = ids[order]
            counts = torch.bincount(proj.i[ids], minlength=n_pre)
            indptr = torch.zeros(n_pre + 1, dtype=torch.long)
            indptr[1:] = torch.cumsum(counts, 0)
            self.groups.append((int(d), ids, indptr))

    @staticmethod
    def synapses_of(active: torch.Tensor, ids: torch.Tensor, indptr: torch.Tensor) -> torch.Tensor:
        """Synapse ids of the ``active`` sources: per spike, not per synapse."""
        starts, ends = indptr[active], indptr[active + 1]
        counts = ends - starts
        total = int(counts.sum())
        if total == 0:
            return ids[:0]
        offsets = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
        return ids[offsets + torch.arange(total)]


def run_network(net: Network, duration: float, dt: float, inputs: Mapping[str, Mapping[str, Any]] | None = None,
                record: Mapping[str, Sequence[str]] | None = None, dtype: torch.dtype = torch.float64,
                surrogate: Any = None, seed: int | None = None) -> dict[str, SimulationResult]:
    inputs, record = dict(inputs or {}), dict(record or {})
    for what, given in (("inputs", inputs), ("record", record)):
        unknown = [k for k in given if k not in net.populations]
        if unknown:
            raise KeyError(f"{what} names population {', '.join(map(repr, unknown))}; {net.name} has "
                           f"{', '.join(net.populations)}")
    n_steps = n_steps_for(duration, dt)
    device = torch.device("cpu")
    gen = torch.Generator()
    if seed is not None:
        gen.manual_seed(int(seed))
    else:
        gen.seed()
    surrogate = get_surrogate(surrogate)
    grad = torch.is_grad_enabled() and any(v.requires_grad for p in net.projections for v in p.values.values())
    steppers: dict[str, _Stepper] = {}
    states: dict[str, dict] = {}
    rasters: dict[str, torch.Tensor] = {}
    for name, pop in net.populations.items():
        if isinstance(pop, Population):
            res = resolve(pop.model, pop.n, n_steps, dt, pop.params, inputs.get(name), dtype, device)
            cfg = RunConfig(n=pop.n, dt=dt, n_steps=n_steps, dtype=dtype, device=device, surrogate=surrogate,
                            record=record_names(pop.model, record.get(name)), engine="eager")
            st = _Stepper(pop.model, res, cfg, gen)
            st.needs_grad = grad or torch.is_grad_enabled() and any(
                isinstance(v, torch.Tensor) and v.requires_grad for v in res.params.values())
            steppers[name] = st
            states[name] = initial_state(pop.model, res, cfg, pop.initial)
        else:
            rasters[name] = pop.raster(n_steps, dt, dtype, gen)
    deliveries = [_Delivery(p, net.delay_steps(p, dt), net.populations[p.pre].n) for p in net.projections]
    values = [dict(p.values) for p in net.projections]
    spikes_hist: dict[str, list[torch.Tensor]] = {name: [] for name in net.populations}
    recs: dict[str, list] = {name: [] for name in steppers}
    t_axis = torch.arange(n_steps, dtype=dtype) * dt
    for k in range(n_steps):
        new, pending = {}, {}
        for name, st in steppers.items():
            new[name], s, r, pending[name] = st.advance(k, states[name])
            spikes_hist[name].append(s)
            recs[name].append(r)
        for name, raster in rasters.items():
            spikes_hist[name].append(raster[k])
        for delivery, vals in zip(deliveries, values):
            _deliver(delivery, vals, k, spikes_hist, new, steppers, t_axis[k], dt)
        for name, st in steppers.items():
            states[name] = st.reset(new[name], pending[name])
    out: dict[str, SimulationResult] = {}
    for name, pop in net.populations.items():
        spikes = torch.stack(spikes_hist[name]) if n_steps else torch.zeros(0, pop.n, dtype=dtype)
        if name in steppers:
            st = steppers[name]
            cols = list(zip(*recs[name])) if recs[name] and recs[name][0] else []
            records = {r: torch.stack(c) for r, c in zip(st.cfg.record, cols)}
            out[name] = SimulationResult(pop.model, t_axis, records, spikes, dt, "torch", params=dict(st.base_env),
                                         final_state=states[name])
        else:
            out[name] = SimulationResult(None, t_axis, {}, spikes, dt, "torch")
    return out


def _deliver(delivery: _Delivery, vals: dict, k: int, hist: dict, new: dict, steppers: dict, t, dt: float) -> None:
    proj = delivery.proj
    post_state = new[proj.post]
    post_env = steppers[proj.post].base_env
    pre_st = steppers.get(proj.pre)
    for d, ids, indptr in delivery.groups:
        if k - d < 0:
            continue
        s = hist[proj.pre][k - d]
        active = torch.nonzero(s.detach())[:, 0]
        if active.numel() == 0:
            continue
        syn = delivery.synapses_of(active, ids, indptr)
        if syn.numel() == 0:
            continue
        i, j = proj.i[syn], proj.j[syn]
        env = {name: v[syn] for name, v in vals.items()}
        env.update(t=t, dt=torch.tensor(dt, dtype=s.dtype))
        env.update({k2: v for k2, v in proj.synapse.parameters.items() if k2 not in vals})
        for st in proj.bound.on_pre:
            fs = st.function
            args = []
            for a in fs.args:
                if a in env:
                    args.append(env[a])
                elif a.endswith("_post"):
                    args.append(_gather(post_state, post_env, a[:-5], j))
                elif a.endswith("_pre"):
                    pre_state = new.get(proj.pre, {})
                    args.append(_gather(pre_state, pre_st.base_env if pre_st else {}, a[:-4], i))
                else:  # pragma: no cover - names were checked when the synapse was bound
                    raise KeyError(a)
            value = st.callable()(*args)[0]
            value = torch.broadcast_to(torch.as_tensor(value, dtype=s.dtype), (syn.numel(),))
            if st.kind == "post":
                value = value * s[i]  # 1 in the forward pass; carries the surrogate gradient
                if st.target in steppers[proj.post].flagged:
                    # Brian2 writes '(unless refractory)' variables only where not refractory
                    # (a conditional write), synaptic effects included
                    value = value * _not_refractory(steppers[proj.post], post_state, k)[j]
                sign = 1.0 if st.op == "+=" else -1.0
                post_state[st.target] = post_state[st.target].index_add(0, j, sign * value)
            else:  # a synaptic variable
                old = env[st.target]
                newv = {"=": value, "+=": old + value, "-=": old - value, "*=": old * value,
                        "/=": old / value}[st.op]
                env[st.target] = newv
                vals[st.target] = vals[st.target].index_put((syn,), newv)


def _not_refractory(st: _Stepper, state: dict, k: int) -> torch.Tensor:
    """After this step's threshold: False for neurons refractory now (those that just spiked too)."""
    if st.kind in ("time", "time_expr"):
        return (k - state["_last"]) >= st.ref_steps
    if st.kind == "condition":
        return state["_nr"]
    return torch.ones(st.cfg.n, dtype=torch.bool)


def _gather(state: dict, env: dict, name: str, idx: torch.Tensor) -> torch.Tensor:
    value = state[name] if name in state else env[name]
    value = torch.as_tensor(value)
    return value[idx] if value.ndim == 1 else value.expand(idx.numel())

