"""Synaptic pathways of the torch network engine: which synapses an event touches (CSR by the
spiking side, one group per delay), and what ``on_pre``/``on_post`` and the synaptic equations do
to them. Everything is a tensor operation over the synapses of the neurons that spiked."""

from __future__ import annotations

from typing import Any

import torch

from tidesim.core.network import Projection
from tidesim.engines.schedule import NeuronStepper

__all__ = ["Pathway", "clock_update"]


class Pathway:
    """One direction of a projection: ``"pre"`` (spikes of the source ``delay`` steps ago, through
    ``on_pre``) or ``"post"`` (spikes of the target now, through ``on_post``)."""

    def __init__(self, proj: Projection, direction: str, delays: torch.Tensor, n_side: int):
        self.proj, self.direction = proj, direction
        self.statements = proj.bound.on_pre if direction == "pre" else proj.bound.on_post
        side = proj.i if direction == "pre" else proj.j
        self.groups = []
        for d in torch.unique(delays).tolist():
            ids = torch.nonzero(delays == d)[:, 0]
            ids = ids[torch.argsort(side[ids], stable=True)]
            counts = torch.bincount(side[ids], minlength=n_side)
            indptr = torch.zeros(n_side + 1, dtype=torch.long)
            indptr[1:] = torch.cumsum(counts, 0)
            self.groups.append((int(d), ids, indptr))

    @property
    def source(self) -> str:
        return self.proj.pre if self.direction == "pre" else self.proj.post

    @staticmethod
    def synapses_of(active: torch.Tensor, ids: torch.Tensor, indptr: torch.Tensor) -> torch.Tensor:
        """Synapse ids of the ``active`` neurons: per spike, not per synapse."""
        starts, ends = indptr[active], indptr[active + 1]
        counts = ends - starts
        total = int(counts.sum())
        if total == 0:
            return ids[:0]
        offsets = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
        return ids[offsets + torch.arange(total)]

    def run(self, k: int, hist: dict, new: dict, steppers: dict[str, NeuronStepper], vals: dict,
            consts: dict, t: torch.Tensor, dt: torch.Tensor) -> None:
        """Deliver the events of step ``k``: changes ``vals`` (synaptic variables) and ``new``
        (post-synaptic states before their reset) by reassignment."""
        if not self.statements:  # Brian2 makes no pathway for an empty on_pre/on_post
            return
        for d, ids, indptr in self.groups:
            if k - d < 0:
                continue
            s = hist[self.source][k - d]
            active = torch.nonzero(s.detach())[:, 0]
            if active.numel() == 0:
                continue
            syn = self.synapses_of(active, ids, indptr)
            if syn.numel():
                self._apply(syn, s, k, new, steppers, vals, consts, t, dt)

    def _apply(self, syn, s, k, new, steppers, vals, consts, t, dt) -> None:
        proj = self.proj
        i, j = proj.i[syn], proj.j[syn]
        env: dict[str, Any] = {name: v[syn] for name, v in vals.items()}
        env.update(consts)
        env.update(t=t, dt=dt)
        model = proj.synapse
        if model.event_update is not None:  # advance the event-driven variables to now
            out = model.event_update.callable()(*(env[a] for a in model.event_update.args))
            env.update(zip(model.event_driven, out))
            changed = list(model.event_driven)
        else:
            changed = []
        post_state = new.get(proj.post, {})
        post_st = steppers.get(proj.post)
        pre_st = steppers.get(proj.pre)
        for st in self.statements:
            args = []
            for a in st.function.args:
                if a in env:
                    args.append(env[a])
                elif a.endswith("_post"):
                    args.append(_gather(post_state, post_st.base_env, a[:-5], j))
                else:  # "_pre": names were checked when the synapse was bound
                    args.append(_gather(new.get(proj.pre, {}), pre_st.base_env if pre_st else {}, a[:-4], i))
            value = st.callable()(*args)[0]
            value = torch.broadcast_to(torch.as_tensor(value, dtype=s.dtype), (syn.numel(),))
            if st.kind == "post":
                # 1 in the forward pass; carries the surrogate gradient of the spike that caused it
                value = value * s[i if self.direction == "pre" else j]
                if st.target in post_st.model.flagged:
                    # Brian2 writes '(unless refractory)' variables only where not refractory
                    # (a conditional write), synaptic effects included
                    value = value * post_st.not_refractory(post_state, k)[j]
                sign = 1.0 if st.op == "+=" else -1.0
                post_state[st.target] = post_state[st.target].index_add(0, j, sign * value)
            else:  # a synaptic variable
                old = env[st.target]
                env[st.target] = {"=": value, "+=": old + value, "-=": old - value, "*=": old * value,
                                  "/=": old / value}[st.op]
                changed.append(st.target)
        if model.event_driven:
            env["lastupdate"] = t.expand(syn.numel())
            changed.append("lastupdate")
        for name in dict.fromkeys(changed):
            vals[name] = vals[name].index_put((syn,), torch.as_tensor(env[name], dtype=vals[name].dtype)
                                              .expand(syn.numel()))


def clock_update(proj: Projection, vals: dict, consts: dict, t: torch.Tensor, dt: torch.Tensor) -> None:
    """One step of the ``(clock-driven)`` synaptic equations, all synapses at once."""
    fs = proj.synapse.clock_update
    env = {**vals, **consts, "t": t, "dt": dt}
    out = fs.callable()(*(env[a] for a in fs.args))
    for name, value in zip(proj.synapse.clock_driven, out):
        vals[name] = torch.as_tensor(value, dtype=vals[name].dtype).expand(proj.n_synapses)


def _gather(state: dict, env: dict, name: str, idx: torch.Tensor) -> torch.Tensor:
    value = state[name] if name in state else env[name]
    value = torch.as_tensor(value)
    return value[idx] if value.ndim == 1 else value.expand(idx.numel())
