"""The Brian2 backend of a :class:`~tidesim.Network`: NeuronGroups, SpikeGeneratorGroups and
PoissonGroups, Synapses with the same connection indices, values and delays, run explicitly in
one ``brian2.Network`` with its own clock."""

from __future__ import annotations

from typing import Any

import brian2 as b2
import numpy as np
import torch
from brian2.units.fundamentalunits import Quantity, get_unit

from tidesim.core.errors import Unsupported
from tidesim.core.inputs import n_steps_for, record_names, resolve
from tidesim.core.network import NetworkDescription, Population, Projection, SpikeSource
from tidesim.core.result import SimulationResult
from tidesim.core.units import to_numpy
from tidesim.engines.neuron_brian2 import brian2_refractory, code_object_class, ieee_arithmetic, set_initial_states
from tidesim.engines.requests import NetworkRun

__all__ = ["run_network_brian2"]


class _Build:
    """One Brian2 network under construction: its clock, code target, objects, monitors and namespace."""

    def __init__(self, dt: float, n_steps: int, codeobj: type):
        self.dt, self.n_steps, self.codeobj = dt, n_steps, codeobj
        self.clock = b2.Clock(dt=dt * b2.second)
        self.groups: dict[str, Any] = {}
        self.monitors: dict[tuple[str, str], Any] = {}
        self.objects: list[Any] = []
        self.namespace: dict[str, Any] = {}

    def population(self, k: int, name: str, pop: Population, inputs: Any, record: Any) -> Any:
        """A NeuronGroup with the population's parameters, inputs (TimedArrays) and initial values."""
        m, dt, codeobj = pop.model, self.dt, self.codeobj
        res = resolve(m, pop.n, self.n_steps, dt, pop.params, inputs, torch.float64, torch.device("cpu"))
        g = b2.NeuronGroup(pop.n, m.equations, threshold=m.threshold, reset=m.reset,
                           refractory=brian2_refractory(m), method=m.method, namespace={}, clock=self.clock,
                           codeobj_class=codeobj, name=f"{name}*")
        g.set_states({p: np.broadcast_to(to_numpy(v), (pop.n,)).copy() for p, v in res.params.items()},
                     units=False)
        for s_idx, (pname, series) in enumerate(sorted(res.series.items())):
            values = to_numpy(torch.stack([torch.broadcast_to(v, (pop.n,)) for v in series]))
            ta = f"_ta_{k}_{s_idx}"
            self.namespace[ta] = b2.TimedArray(values * get_unit(m.dims[pname]), dt=dt * b2.second)
            g.run_regularly(f"{pname} = {ta}(t, i)", when="start", order=-1, codeobj_class=codeobj)
            g.set_states({pname: values[0]}, units=False)
        set_initial_states(g, m, pop.initial, pop.n)
        rec = record_names(m, record)
        if rec:
            self.monitors[(name, "state")] = b2.StateMonitor(g, list(rec), record=True, clock=self.clock,
                                                             codeobj_class=codeobj)
        return g

    def source(self, name: str, pop: SpikeSource) -> Any:
        """A SpikeGeneratorGroup (spike times) or a PoissonGroup (rates)."""
        clock, codeobj = self.clock, self.codeobj
        if pop.times is not None and pop.rates is not None:
            raise Unsupported("the Brian2 engine runs a spike source with times or rates, not both")
        if pop.rates is not None:
            return b2.PoissonGroup(pop.n, np.broadcast_to(to_numpy(pop.rates), (pop.n,)) * b2.Hz, clock=clock,
                                   codeobj_class=codeobj, name=f"{name}_poisson*")
        indices = pop.indices if pop.times is not None else np.zeros(0, dtype=int)
        times = pop.times if pop.times is not None else np.zeros(0)  # silent: a protocol's target, say
        return b2.SpikeGeneratorGroup(pop.n, indices, times * b2.second, clock=clock, codeobj_class=codeobj,
                                      name=f"{name}_generator*")

    def synapses(self, k: int, net: NetworkDescription, proj: Projection, record: Any) -> None:
        """Synapses with the projection's indices (Brian2 keeps them in connection order), values and delays."""
        syn = proj.synapse
        ns = {c: Quantity(float(to_numpy(v)), dim=syn.constant_dims[c]) for c, v in proj.constants.items()}
        S = b2.Synapses(self.groups[proj.pre], self.groups[proj.post], model=syn.model or "",
                        on_pre=syn.on_pre or None, on_post=syn.on_post or None, namespace=ns, clock=self.clock,
                        codeobj_class=self.codeobj, method=syn.method or ("exact", "exponential_euler", "euler"),
                        name=f"synapses_{k}*")
        S.connect(i=to_numpy(proj.i).astype(int), j=to_numpy(proj.j).astype(int))
        if syn.variables:
            S.set_states({v: to_numpy(proj.values[v]) for v in syn.variables}, units=False)
        steps = net.delay_steps(proj, self.dt).numpy()
        S.delay = np.broadcast_to(steps * self.dt, (proj.n_synapses,)).copy() * b2.second
        self.objects.append(S)
        if proj.name in record:
            names = list(record[proj.name]) if record[proj.name] is not None else list(syn.variables)
            self.monitors[(proj.name, "synapses")] = b2.StateMonitor(S, names, record=True, clock=self.clock,
                                                                    codeobj_class=self.codeobj)


def run_network_brian2(run: NetworkRun) -> dict[str, SimulationResult]:
    """Build the network in Brian2 (NeuronGroups, SpikeGeneratorGroups, PoissonGroups, Synapses with the
    same indices, values and delays), run it explicitly, and return results as the torch engines do."""
    net, dt = run.net, run.dt
    inputs, record, _ = net.run_arguments(run.inputs, run.record)
    codeobj, _ = code_object_class(run.target)
    n_steps = n_steps_for(run.duration, dt)
    build = _Build(dt, n_steps, codeobj)
    for k, (name, pop) in enumerate(net.populations.items()):
        if isinstance(pop, Population):
            g = build.population(k, name, pop, inputs.get(name), record.get(name))
        else:
            g = build.source(name, pop)
        build.groups[name] = g
        build.objects.append(g)
        if not (isinstance(pop, Population) and pop.model.threshold is None):  # nothing to monitor otherwise
            build.monitors[(name, "spikes")] = b2.SpikeMonitor(g, codeobj_class=codeobj)
    for k, proj in enumerate(net.projections):
        build.synapses(k, net, proj, record)
    if run.seed is not None:
        b2.seed(int(run.seed))
    network = b2.Network(*build.objects, *build.monitors.values())
    with ieee_arithmetic():
        network.run(run.duration * b2.second, namespace=build.namespace)
    return _results(net, build.monitors, n_steps, dt)


def _results(net: NetworkDescription, monitors: dict, n_steps: int, dt: float) -> dict[str, SimulationResult]:
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
