"""The torch engine of a :class:`~tidesim.Network`: populations step together, projections deliver
delayed spikes event by event (synapses of the neurons that spiked only).

One step, in Brian2's default schedule: synaptic variables are recorded and clock-driven synaptic
equations advance; every population records, updates and tests its threshold; every projection's
pre-synaptic pathway delivers the spikes due now (Brian2's ``on_pre``, order -1), then every
``on_post`` pathway runs (order +1); then spiking neurons are reset.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from tidesim.core.inputs import n_steps_for, record_names, resolve, seeded_generator
from tidesim.core.network import NetworkDescription, Population
from tidesim.core.result import SimulationResult
from tidesim.core.surrogate import get as get_surrogate
from tidesim.engines.pathways import Pathway, clock_update
from tidesim.engines.requests import NetworkRun
from tidesim.engines.schedule import NeuronStepper, initial_state

__all__ = ["run_network"]


def run_network(run: NetworkRun) -> dict[str, SimulationResult]:
    """Simulate the network in torch (see :meth:`tidesim.Network.run`).

    ``run.checkpoint``: recompute the forward pass in segments of this many steps during the backward
    pass instead of keeping every step's intermediate tensors (memory for time).
    """
    net, dt, dtype, checkpoint = run.net, run.dt, run.dtype, run.checkpoint
    inputs, record, syn_record = net.run_arguments(run.inputs, run.record)
    n_steps = n_steps_for(run.duration, dt)
    device = torch.device("cpu")
    gen = seeded_generator(run.seed)
    surrogate = get_surrogate(run.surrogate)
    grad = torch.is_grad_enabled() and (
        any(v.requires_grad for p in net.projections for v in p.values.values())
        or any(isinstance(v, torch.Tensor) and v.requires_grad
               for p in net.projections for v in p.constants.values()))
    steppers: dict[str, NeuronStepper] = {}
    states: dict[str, dict] = {}
    rasters: dict[str, torch.Tensor] = {}
    for name, pop in net.populations.items():
        if isinstance(pop, Population):
            res = resolve(pop.model, pop.n, n_steps, dt, pop.params, inputs.get(name), dtype, device)
            needs_grad = grad or torch.is_grad_enabled() and any(
                isinstance(v, torch.Tensor) and v.requires_grad for v in res.params.values())
            steppers[name] = NeuronStepper(pop.model, res, pop.n, dt, n_steps, dtype, device, surrogate,
                                           record_names(pop.model, record.get(name)), True, gen, needs_grad)
            states[name] = initial_state(pop.model, res, pop.n, dt, dtype, device, pop.initial)
        else:
            rasters[name] = pop.raster(n_steps, dt, dtype, gen)
    sim = _Sim(net, steppers, rasters, dt, dtype, syn_record)
    vals = [_initial_values(p, dtype) for p in net.projections]
    # Spikes of the last max-delay steps travel with the state (delayed delivery needs them).
    carry = (states, vals, [])
    outputs = []
    seg = int(checkpoint) if checkpoint else n_steps
    for k0 in range(0, n_steps, max(seg, 1)):
        k1 = min(n_steps, k0 + max(seg, 1))
        if checkpoint and torch.is_grad_enabled():
            gstate = gen.get_state()  # the recomputation must draw the same noise

            def segment(carry, k0=k0, k1=k1, gstate=gstate):
                gen.set_state(gstate)
                return sim.run(k0, k1, carry)

            carry, out = torch_checkpoint(segment, carry, use_reentrant=False)
        else:
            carry, out = sim.run(k0, k1, carry)
        outputs.append(out)
    states = carry[0]
    return _results(net, steppers, outputs, states, n_steps, dt, dtype, syn_record)


class _Sim:
    """The step loop over ``[k0, k1)``: pure in its carry (states, synaptic values, recent spikes)."""

    def __init__(self, net: NetworkDescription, steppers, rasters, dt: float, dtype, syn_record):
        self.net, self.steppers, self.rasters, self.syn_record = net, steppers, rasters, syn_record
        self.dt = torch.tensor(dt, dtype=dtype)
        self.dtype = dtype
        self.pre = [Pathway(p, "pre", net.delay_steps(p, dt), net.populations[p.pre].n) for p in net.projections]
        self.post = [Pathway(p, "post", torch.zeros(p.n_synapses, dtype=torch.long), net.populations[p.post].n)
                     for p in net.projections if p.synapse.on_post.strip()]
        self.max_delay = max([d for pw in self.pre for d, _, _ in pw.groups], default=0)
        self.consts = [dict(p.constants) for p in net.projections]

    def run(self, k0: int, k1: int, carry):
        states, vals, recent = carry
        states = {n: dict(s) for n, s in states.items()}
        vals = [dict(v) for v in vals]
        hist: dict[str, dict[int, torch.Tensor]] = {n: {} for n in self.net.populations}
        for k, spikes in recent:  # the spikes of earlier steps that delays still need
            for n, s in spikes.items():
                hist[n][k] = s
        spikes_out = {n: [] for n in self.net.populations}
        recs = {n: [] for n in self.steppers}
        syn_recs = {n: [] for n in self.syn_record}
        index = {p.name: m for m, p in enumerate(self.net.projections)}
        for k in range(k0, k1):
            t = self.steppers[next(iter(self.steppers))].t[k] if self.steppers else torch.tensor(
                k * float(self.dt), dtype=self.dtype)
            for name, vars_ in self.syn_record.items():  # recorded at the start of the step, as Brian2
                syn_recs[name].append([vals[index[name]][v] for v in vars_])
            for m, p in enumerate(self.net.projections):
                if p.synapse.clock_update is not None:
                    clock_update(p, vals[m], self.consts[m], t, self.dt)
            new, pending = {}, {}
            for name, st in self.steppers.items():
                new[name], s, r, pending[name] = st.advance(k, states[name])
                hist[name][k] = s
                recs[name].append(r)
            for name, raster in self.rasters.items():
                hist[name][k] = raster[k]
            for pw in self.pre:
                m = index[pw.proj.name]
                pw.run(k, hist, new, self.steppers, vals[m], self.consts[m], t, self.dt)
            for pw in self.post:
                m = index[pw.proj.name]
                pw.run(k, hist, new, self.steppers, vals[m], self.consts[m], t, self.dt)
            for name, st in self.steppers.items():
                states[name] = st.reset(new[name], pending[name])
            for name in hist:
                spikes_out[name].append(hist[name][k])
                hist[name].pop(k - self.max_delay, None)
        recent = [(k, {n: hist[n][k] for n in hist}) for k in range(max(k0, k1 - self.max_delay), k1)]
        return (states, vals, recent), (spikes_out, recs, syn_recs)


def _initial_values(proj, dtype) -> dict[str, torch.Tensor]:
    vals = {name: v if v.requires_grad else v.to(dtype) for name, v in proj.values.items()}
    if proj.synapse.event_driven:
        vals["lastupdate"] = torch.zeros(proj.n_synapses, dtype=dtype)
    return vals


def _results(net, steppers, outputs, states, n_steps, dt, dtype, syn_record) -> dict[str, SimulationResult]:
    t_axis = torch.arange(n_steps, dtype=dtype) * dt
    out: dict[str, SimulationResult] = {}
    for name, pop in net.populations.items():
        spikes_list = [s for seg in outputs for s in seg[0][name]]
        spikes = torch.stack(spikes_list) if spikes_list else torch.zeros(0, pop.n, dtype=dtype)
        if name in steppers:
            st = steppers[name]
            rows = [r for seg in outputs for r in seg[1][name]]
            cols = list(zip(*rows)) if rows and rows[0] else []
            records = {r: torch.stack(c) for r, c in zip(st.record, cols)}
            out[name] = SimulationResult(pop.model, t_axis, records, spikes, dt, "torch", params=dict(st.base_env),
                                         final_state=states[name])
        else:
            out[name] = SimulationResult(None, t_axis, {}, spikes, dt, "torch")
    projections = {p.name: p for p in net.projections}
    for name, vars_ in syn_record.items():
        rows = [r for seg in outputs for r in seg[2][name]]
        records = {v: torch.stack([torch.as_tensor(r[m]).expand(projections[name].n_synapses) for r in rows])
                   for m, v in enumerate(vars_)} if rows else {}
        out[name] = SimulationResult(None, t_axis, records, torch.zeros(n_steps, 0, dtype=dtype), dt, "torch")
    return out
