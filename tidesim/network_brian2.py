"""The Brian2 backend of a :class:`~tidesim.Network`: NeuronGroups, SpikeGeneratorGroups and
PoissonGroups, Synapses with the same connection indices, values and delays, run explicitly in
one ``brian2.Network`` with its own clock."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .brian2_backend import code_object_class, set_initial_states
from .inputs import resolve
from .integrator import record_names
from .network import Network, Population
from .result import SimulationResult
from .simulation import n_steps_for

__all__ = ["run_network_brian2"]


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    return np.asarray(x, dtype=float)


def run_network_brian2(net: Network, duration: float, dt: float,
                       inputs: Mapping[str, Mapping[str, Any]] | None = None,
                       record: Mapping[str, Sequence[str]] | None = None, seed: int | None = None,
                       target: str = "auto") -> dict[str, SimulationResult]:
    import brian2 as b2
    from brian2.units.fundamentalunits import Quantity, get_unit

    inputs, record = dict(inputs or {}), dict(record or {})
    codeobj, _ = code_object_class(target)
    n_steps = n_steps_for(duration, dt)
    clock = b2.Clock(dt=dt * b2.second)
    groups, monitors, objects = {}, {}, []
    namespace: dict[str, Any] = {}
    for k, (name, pop) in enumerate(net.populations.items()):
        if isinstance(pop, Population):
            m = pop.model
            res = resolve(m, pop.n, n_steps, dt, pop.params, inputs.get(name), torch.float64, torch.device("cpu"))
            refractory = False
            if m._refractory_kind == "time":
                refractory = m._refractory_value * b2.second
            elif m._refractory_kind is not None:
                refractory = m.refractory
            g = b2.NeuronGroup(pop.n, m.equations, threshold=m.threshold, reset=m.reset, refractory=refractory,
                               method=m.method, namespace={}, clock=clock, codeobj_class=codeobj, name=f"{name}*")
            g.set_states({p: np.broadcast_to(_np(v), (pop.n,)).copy() for p, v in res.params.items()}, units=False)
            for s_idx, (pname, series) in enumerate(sorted(res.series.items())):
                values = _np(torch.stack([torch.broadcast_to(v, (pop.n,)) for v in series]))
                ta = f"_ta_{k}_{s_idx}"
                namespace[ta] = b2.TimedArray(values * get_unit(m.dims[pname]), dt=dt * b2.second)
                g.run_regularly(f"{pname} = {ta}(t, i)", when="start", order=-1, codeobj_class=codeobj)
                g.set_states({pname: values[0]}, units=False)
            set_initial_states(g, m, pop.initial, pop.n)
            rec = record_names(m, record.get(name))
            if rec:
                monitors[(name, "state")] = b2.StateMonitor(g, list(rec), record=True, clock=clock,
                                                            codeobj_class=codeobj)
        else:
            parts = []
            if pop.times is not None:
                sg = b2.SpikeGeneratorGroup(pop.n, pop.indices, pop.times * b2.second, clock=clock,
                                            codeobj_class=codeobj, name=f"{name}_generator*")
                parts.append(sg)
            if pop.rates is not None:
                parts.append(b2.PoissonGroup(pop.n, np.broadcast_to(_np(pop.rates), (pop.n,)) * b2.Hz, clock=clock,
                                             codeobj_class=codeobj, name=f"{name}_poisson*"))
            if not parts:  # a silent source (e.g. the target of a plasticity protocol)
                parts.append(b2.SpikeGeneratorGroup(pop.n, np.zeros(0, dtype=int), np.zeros(0) * b2.second,
                                                    clock=clock, codeobj_class=codeobj, name=f"{name}_generator*"))
            if len(parts) != 1:
                raise NotImplementedError("the Brian2 backend runs a spike source with times or rates, not both")
            g = parts[0]
        groups[name] = g
        objects.append(g)
        if not (isinstance(pop, Population) and pop.model.threshold is None):  # nothing to monitor otherwise
            monitors[(name, "spikes")] = b2.SpikeMonitor(g, codeobj_class=codeobj)
    synapses = []
    for k, proj in enumerate(net.projections):
        syn = proj.synapse
        ns = {c: Quantity(float(_np(v)), dim=syn.constant_dims[c]) for c, v in proj.constants.items()}
        S = b2.Synapses(groups[proj.pre], groups[proj.post], model=syn.model or "", on_pre=syn.on_pre or None,
                        on_post=syn.on_post or None, namespace=ns, clock=clock, codeobj_class=codeobj,
                        method=syn.method or ("exact", "exponential_euler", "euler"), name=f"synapses_{k}*")
        S.connect(i=_np(proj.i).astype(int), j=_np(proj.j).astype(int))
        # Brian2 orders synapses as connected: the same order as proj.i / proj.j
        if syn.variables:
            S.set_states({v: _np(proj.values[v]) for v in syn.variables}, units=False)
        S.delay = np.broadcast_to(net.delay_steps(proj, dt).numpy() * dt, (proj.n_synapses,)).copy() * b2.second
        synapses.append(S)
        objects.append(S)
        if proj.name in record:
            names = list(record[proj.name]) if record[proj.name] is not None else list(syn.variables)
            monitors[(proj.name, "synapses")] = b2.StateMonitor(S, names, record=True, clock=clock,
                                                               codeobj_class=codeobj)
    if seed is not None:
        b2.seed(int(seed))
    network = b2.Network(*objects, *monitors.values())
    network.run(duration * b2.second, namespace=namespace)
    t_axis = torch.arange(n_steps, dtype=torch.float64) * dt
    out: dict[str, SimulationResult] = {}
    for name, pop in net.populations.items():
        smon = monitors.get((name, "spikes"))
        idx = np.asarray(smon.i[:], dtype=int) if smon is not None else np.zeros(0, dtype=int)
        times = np.asarray(smon.t_[:], dtype=float) if smon is not None else np.zeros(0)
        spikes = torch.zeros(n_steps, pop.n, dtype=torch.float64)
        steps = np.round(times / dt).astype(int)
        spikes[torch.from_numpy(steps), torch.from_numpy(idx)] = 1.0
        trains = [times[idx == n] for n in range(pop.n)]
        states = {}
        if (name, "state") in monitors:
            mon = monitors[(name, "state")]
            for var in mon.record_variables:
                states[var] = torch.from_numpy(np.ascontiguousarray(np.asarray(getattr(mon, var + "_")).T))
        model = pop.model if isinstance(pop, Population) else None
        out[name] = SimulationResult(model, t_axis, states, spikes, dt, "brian2", spike_trains=trains)
    for proj in net.projections:
        if (proj.name, "synapses") in monitors:
            mon = monitors[(proj.name, "synapses")]
            states = {var: torch.from_numpy(np.ascontiguousarray(np.asarray(getattr(mon, var + "_")).T))
                      for var in mon.record_variables}
            out[proj.name] = SimulationResult(None, t_axis, states, torch.zeros(n_steps, 0, dtype=torch.float64),
                                              dt, "brian2")
    return out
