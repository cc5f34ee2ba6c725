"""The compiled engine of a :class:`~tidesim.Network`: the whole time loop in generated C (forward only).

Same schedule and same numbers as the eager torch engine (:func:`tidesim.engines.network_eager.run_network`):
per step every population records, updates and tests its threshold; every projection delivers the
spikes of ``delay`` steps ago through its ``on_pre`` statements, synapse by synapse of the neurons
that spiked (CSR by pre-synaptic neuron, one CSR per distinct delay, in the eager engine's order),
including the conditional write to ``(unless refractory)`` variables; then spiking neurons are reset.
Spike sources (spike times and/or Poisson rates) are drawn exactly as the eager engine draws them,
so a seed gives the same spikes in both.

Anything it cannot run raises :class:`Unsupported` with the reason; the eager engine runs it.
"""

from __future__ import annotations

import ctypes
from typing import Any, Sequence

import numpy as np
import torch
from brian2 import second
from brian2.equations.equations import PARAMETER

from tidesim.codegen import build
from tidesim.codegen.c_network import NetworkSource, PopSpec, ProjSpec, generate_network, synaptic_statements
from tidesim.core.equations import parse_equations
from tidesim.core.errors import NumericalInstabilityError, Unsupported
from tidesim.core.inputs import n_steps_for, record_names, resolve, seeded_generator
from tidesim.core.network import NetworkDescription, Population, Projection, SpikeSource
from tidesim.core.result import SimulationResult, SpikeEvents
from tidesim.core.units import fmt
from tidesim.engines.neuron_compiled import grown_events, layout
from tidesim.engines.requests import NetworkRun
from tidesim.engines.schedule import NEVER, BoundModel, initial_state, refractory_steps

__all__ = ["run_network_compiled", "check_supported", "connectivity_bytes"]

_P, _I, _D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double


def check_supported(net: NetworkDescription, dtype: torch.dtype = torch.float32) -> None:
    """Raise :class:`Unsupported` if the structure of ``net`` is beyond the compiled engine (cheap: no
    simulation is set up). Gradients are checked by :func:`run_network_compiled` itself."""
    if dtype not in (torch.float32, torch.float64):
        raise Unsupported(f"dtype {dtype}: the compiled engine runs float32 or float64")
    if not build.available():
        raise Unsupported("no C compiler ($CC, gcc or cc)")
    for name, pop in net.populations.items():
        if isinstance(pop, Population) and pop.model.stochastic:
            raise Unsupported(f"population {name!r}: random numbers (noise, rand()) are drawn by torch")
    for proj in net.projections:
        syn = proj.synapse
        if isinstance(net.populations[proj.post], SpikeSource):
            raise Unsupported(f"{proj.name}: synapses onto a spike source (they can only be plastic)")
        if getattr(syn, "on_post", "").strip():
            raise Unsupported(f"{proj.name}: on_post statements (post-synaptic spikes acting on synapses)")
        if syn.model.strip():
            for eq in parse_equations(syn.model).values():
                if eq.type != PARAMETER or eq.flags:
                    raise Unsupported(f"{proj.name}: synaptic variable '{eq.varname}' is not a plain parameter "
                                      "(synaptic equations are not compiled)")
        synaptic_statements(proj)


def _grad_reason(net: NetworkDescription, resolved: dict, states0: dict) -> str | None:
    if not torch.is_grad_enabled():
        return None
    for proj in net.projections:
        for var, value in {**proj.values, **_constants(proj)}.items():
            if isinstance(value, torch.Tensor) and value.requires_grad:
                return f"{proj.name}: synaptic variable or constant '{var}' requires grad"
    for name, res in resolved.items():
        for what, tensors in (("parameter", res.params), ("input", res.stacked), ("initial value", states0[name])):
            for key, value in tensors.items():
                if isinstance(value, torch.Tensor) and value.requires_grad:
                    return f"population {name!r}: {what} '{key}' requires grad"
    return None


def _constants(proj: Projection) -> dict[str, Any]:
    """The projection's synaptic constants (per projection when the network keeps them)."""
    given = getattr(proj, "constants", None)
    if given is not None:
        return dict(given)
    return {c: proj.synapse.parameters[c] for c in proj.synapse.constant_dims}


def _load(source: str) -> ctypes.CDLL:
    # vectorising the neuron loop needs the host's vector instructions (build.NATIVE_FLAGS)
    lib = build.load(source, "net", native=True)
    lib.tidesim_network.restype = ctypes.c_int64
    lib.tidesim_network.argtypes = [_I, _I, _D, _P, _P, _P, _P]
    return lib


def _structure_key(net: NetworkDescription, specs: list[PopSpec], real: str) -> tuple:
    pops = tuple((s.name, id(s.model), tuple(sorted(s.modes.items()))) for s in specs)
    projs = tuple((p.name, p.pre, p.post, id(p.synapse), p.synapse.on_pre) for p in net.projections)
    return real, pops, projs


def _source_for(net: NetworkDescription, specs: list[PopSpec], sources: list[str], real: str
                ) -> tuple[NetworkSource, list]:
    # generated sources belong to the network (sympy's CSE is the slow part, ~0.1 s)
    cache = net.__dict__.setdefault("_compiled_sources", {})
    key = _structure_key(net, specs, real)
    if key not in cache:
        projs = []
        for proj in net.projections:
            stmts = synaptic_statements(proj)
            used = set().union(*[{s.name for s in st.expr.free_symbols} for st in stmts]) if stmts else set()
            projs.append(ProjSpec(proj.name, proj.pre, proj.pre in sources, proj.post, stmts,
                                  [v for v in proj.synapse.variables if v in used],
                                  sorted(c for c in proj.synapse.constant_dims if c in used)))
        cache[key] = (generate_network(specs, sources, projs, real), projs)
    return cache[key]


def _csr(net: NetworkDescription, proj: Projection, dt: float, n_pre: int
         ) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Synapses grouped by delay (ascending), each group sorted stably by source: the eager engine's
    order. Returns (delays per group, indptr [groups * n_pre + 1], synapse order)."""
    delays = net.delay_steps(proj, dt)
    uniq, group = torch.unique(delays, return_inverse=True)
    key = group * n_pre + proj.i
    order = torch.argsort(key, stable=True)
    indptr = torch.zeros(len(uniq) * n_pre + 1, dtype=torch.long)
    indptr[1:] = torch.cumsum(torch.bincount(key, minlength=len(uniq) * n_pre), 0)
    return uniq.numpy().astype(np.int64), indptr.numpy(), order


def connectivity_bytes(net: NetworkDescription, dt: float = 1e-4) -> dict[str, int]:
    """Bytes of the connectivity: ``"network"``, what ``net`` holds (``i``/``j`` index tensors, synaptic
    values, per-synapse delays); ``"compiled"``, what the compiled engine adds while it runs (int32 targets
    in CSR order, an int64 indptr per delay group and source, values in CSR order). Temporaries of the
    set-up (the sort order, delays in steps) are not counted."""
    held = sum(p.i.element_size() * p.i.numel() + p.j.element_size() * p.j.numel()
               + sum(v.untyped_storage().nbytes() for v in p.values.values())
               + (np.asarray(p.delay).nbytes if np.ndim(p.delay) else 0) for p in net.projections)
    run = 0
    for p in net.projections:
        n_pre = net.populations[p.pre].n
        groups = len(torch.unique(net.delay_steps(p, dt)))
        run += 4 * p.n_synapses + 8 * (groups * n_pre + 1) + 8 * groups
        statements = synaptic_statements(p)
        used = {s.name for st in statements for s in st.expr.free_symbols}
        run += sum(p.values[v].element_size() * p.n_synapses for v in p.synapse.variables if v in used)
        run += 8 * p.n_synapses if any(st.two_pass for st in statements) else 0  # scratch of two-pass statements
    return {"network": held, "compiled": run}


def _ref_steps(model, res, n: int, dt: float, dtype) -> np.ndarray:
    """Refractory period in steps: one value (a time) or one per neuron (an expression)."""
    env = {**res.params, "dt": torch.tensor(dt, dtype=dtype), "N": n, "i": torch.arange(n)}
    ref = refractory_steps(model, BoundModel(model, dtype, torch.device("cpu"), (n,)), env, dt)
    if ref is None:
        return np.zeros(1, dtype=np.int64)
    if isinstance(ref, int):
        return np.array([ref], dtype=np.int64)
    return np.ascontiguousarray(ref.expand(n).numpy())


def _ptrs(arrays: Sequence[np.ndarray | None]) -> ctypes.Array:
    return (ctypes.c_void_p * max(len(arrays), 1))(*[None if a is None else a.ctypes.data for a in arrays])


class _Arguments:
    """The kernel's argument tables by name (arrays, sizes, constants); what they point to stays alive here."""

    def __init__(self, T: int, dtype: torch.dtype):
        self.T, self.dtype = T, dtype
        self.np_real = np.float64 if dtype == torch.float64 else np.float32
        self.arrays: dict[str, Any] = {}
        self.ints: dict[str, int] = {}
        self.consts: dict[str, float] = {}

    def projection(self, q: int, proj: Projection, spec: ProjSpec, n_pre: int, dt: float,
                   net: NetworkDescription) -> int:
        """CSR arrays, values and constants of projection ``q``; returns its longest delay (steps)."""
        gdelay, indptr, order = _csr(net, proj, dt, n_pre)
        self.arrays[f"gdelay{q}"], self.arrays[f"indptr{q}"] = gdelay, indptr
        self.arrays[f"target{q}"] = proj.j[order].numpy().astype(np.int32)
        if any(st.two_pass for st in spec.statements):
            self.arrays[f"tmp{q}"] = np.zeros(max(proj.n_synapses, 1), dtype=np.float64)
        for v in spec.variables:
            self.arrays[f"values{q}_{v}"] = proj.values[v].detach().to(self.dtype)[order].numpy()
        constants = _constants(proj)
        self.consts.update({f"{q}_{c}": float(constants[c]) for c in spec.constants})
        self.ints[f"npre{q}"], self.ints[f"groups{q}"] = n_pre, len(gdelay)
        return int(gdelay.max()) if len(gdelay) else 0

    def source(self, s: int, raster: torch.Tensor) -> None:
        """A spike source's spikes as CSR by step."""
        steps, units = torch.nonzero(raster, as_tuple=True)  # row-major: by step, then unit
        sptr = np.zeros(self.T + 1, dtype=np.int64)
        sptr[1:] = np.cumsum(np.bincount(steps.numpy(), minlength=self.T))
        self.arrays[f"sptr{s}"], self.arrays[f"sidx{s}"] = sptr, units.numpy().astype(np.int32)

    def population(self, p: int, model, n: int, state0: dict, params: list[torch.Tensor], record: Sequence[str],
                   ref_steps: np.ndarray, ring: int) -> dict[str, Any]:
        """States (two buffers: the kernel swaps them every step), parameters, records, spikes,
        refractoriness and the spike ring of population ``p``; returns what the results need."""
        T, NS = self.T, len(model.state_names)
        states = [state0[s].detach().to(self.dtype).numpy().copy() for s in model.state_names]  # contiguous
        spare = [np.empty_like(a) for a in states]
        slots = {s: j for j, s in enumerate(model.state_names + model.subexpression_names)}
        records = {r: np.zeros(T * n, dtype=self.np_real) for r in record if r in slots}
        rec = [None] * (NS + len(model.subexpression_names))
        for r, arr in records.items():
            rec[slots[r]] = arr
        params = [np.ascontiguousarray(t.detach().numpy()) for t in params]
        tables = [_ptrs(states), _ptrs(spare), _ptrs(params), _ptrs(rec)]
        # spikes as events: the neurons of each step (grown when the kernel asks) and their number per step
        out = {"records": records, "ev": np.empty(max(1024, 4 * n), dtype=np.int32),
               "evc": np.array([0, max(1024, 4 * n)], dtype=np.int64), "evn": np.zeros(T, dtype=np.int64),
               "last": np.full(n, NEVER, dtype=np.int64), "nrs": np.ones(n, dtype=np.uint8),
               "table": tables[0], "buffers": states + spare, "keep": (tables, params)}
        self.arrays.update({f"S{p}": tables[0], f"Sn{p}": tables[1], f"P{p}": tables[2], f"R{p}": tables[3],
                            f"ev{p}": out["ev"], f"evc{p}": out["evc"], f"evn{p}": out["evn"],
                            f"flag{p}": np.zeros(n, dtype=np.uint8),
                            f"ring{p}": np.zeros(ring * n, dtype=np.int32), f"ring_n{p}": np.zeros(ring, np.int64),
                            f"last{p}": out["last"], f"ref{p}": ref_steps, f"nrs{p}": out["nrs"]})
        self.ints.update({f"n{p}": n, f"ring{p}": ring})
        return out

    def call(self, lib: ctypes.CDLL, src: NetworkSource, dt: float) -> np.ndarray | None:
        """Run all steps; ``None``, or ``bad`` (step, neuron, state, value, before, population)."""
        def address(a: Any) -> int:
            return ctypes.addressof(a) if isinstance(a, ctypes.Array) else a.ctypes.data

        ints = np.array([self.ints[k] for k in src.ints] or [0], dtype=np.int64)
        consts = np.array([self.consts[k] for k in src.constants] or [0.0], dtype=np.float64)
        i = 0
        while True:
            A = (ctypes.c_void_p * max(len(src.pointers), 1))(*[address(self.arrays[k]) for k in src.pointers])
            bad = np.zeros(6, dtype=np.float64)
            code = lib.tidesim_network(i, self.T, dt, ctypes.addressof(A), ints.ctypes.data, consts.ctypes.data,
                                       bad.ctypes.data)
            if code != 2:
                return bad if code else None
            i = int(bad[0])  # an event buffer is full: grow them to what the run so far projects, go on
            for key in [k for k in self.arrays if k.startswith("evc")]:
                p = key[3:]
                self.arrays[f"ev{p}"] = grown_events(self.arrays[f"ev{p}"], int(self.arrays[key][0]), i, self.T,
                                                     2 * self.ints[f"n{p}"])
                self.arrays[key][1] = len(self.arrays[f"ev{p}"])

    def events(self, p: int) -> SpikeEvents:
        """Population ``p``'s spikes as events."""
        count = int(self.arrays[f"evc{p}"][0])
        return SpikeEvents(self.arrays[f"evn{p}"], self.arrays[f"ev{p}"][:count].copy())


def run_network_compiled(run: NetworkRun) -> dict[str, SimulationResult]:
    """Simulate the network in generated C; returns ``{population: SimulationResult}`` as
    :func:`tidesim.engines.network_eager.run_network` does (same schedule, same spikes, traces equal to
    rounding in float64). ``record`` may name a projection: its synaptic variables, constant here, as
    ``[T, n_synapses]``; ``seed`` seeds the Poisson sources.

    Raises :class:`~tidesim.Unsupported` for what it does not run: gradients, noise, on_post, statements
    that write synaptic variables, synaptic equations, functions without a C implementation.
    """
    net, dt, dtype = run.net, run.dt, run.dtype
    inputs, record, syn_record = net.run_arguments(run.inputs, run.record)
    projections = {p.name: p for p in net.projections}
    check_supported(net, dtype)
    T = n_steps_for(run.duration, dt)
    cpu = torch.device("cpu")
    gen = seeded_generator(run.seed)
    resolved, cfgs, states0, specs, layouts, rasters = {}, {}, {}, [], {}, {}
    for name, pop in net.populations.items():  # the eager engine's order: Poisson draws match
        if isinstance(pop, SpikeSource):
            rasters[name] = pop.raster(T, dt, dtype, gen)
            continue
        res = resolve(pop.model, pop.n, T, dt, pop.params, inputs.get(name), dtype, cpu)
        cfgs[name] = record_names(pop.model, record.get(name))
        resolved[name] = res
        states0[name] = initial_state(pop.model, res, pop.n, dt, dtype, cpu, pop.initial)
        layouts[name] = layout(pop.model, res, pop.n, dtype)
        specs.append(PopSpec(name, pop.model, layouts[name].modes))
    why = _grad_reason(net, resolved, states0)
    if why:
        raise Unsupported(f"gradients are not compiled for networks ({why}); use the eager engine")
    src, projs = _source_for(net, specs, list(rasters), "double" if dtype == torch.float64 else "float")
    lib = _load(src.source)

    args = _Arguments(T, dtype)
    ring = {spec.name: 1 for spec in specs}  # steps of spike lists each population keeps
    for q, (proj, spec) in enumerate(zip(net.projections, projs)):
        longest = args.projection(q, proj, spec, net.populations[proj.pre].n, dt, net)
        if proj.pre in ring:
            ring[proj.pre] = max(ring[proj.pre], longest + 1)
    for s, raster in enumerate(rasters.values()):
        args.source(s, raster)
    runs = {}
    for p, spec in enumerate(specs):
        pop = net.populations[spec.name]
        runs[spec.name] = args.population(p, spec.model, pop.n, states0[spec.name], layouts[spec.name].params,
                                          cfgs[spec.name],
                                          _ref_steps(spec.model, resolved[spec.name], pop.n, dt, dtype),
                                          ring[spec.name])
    bad = args.call(lib, src, dt)
    for p, spec in enumerate(specs):
        runs[spec.name]["events"] = args.events(p)
    if bad is not None:
        i, k, j, p = int(bad[0]), int(bad[1]), int(bad[2]), int(bad[5])
        model = specs[p].model
        var = model.state_names[j]
        raise NumericalInstabilityError(
            f"{specs[p].name} ({model.name}): state variable '{var}' of neuron {k} became {bad[3]} in the step "
            f"from t = {fmt(i * dt, second.dim)} to {fmt((i + 1) * dt, second.dim)} (step {i}); it was "
            f"{fmt(float(bad[4]), model.dims[var])} before. Try a smaller dt, another integration method, "
            "or check that neuron's parameters and synaptic weights.", variable=var, neuron=k, step=i)
    out = _results(net, T, dt, dtype, cfgs, resolved, runs, rasters)
    t_axis = torch.arange(T, dtype=dtype) * dt
    for name, names in syn_record.items():  # constant here: no statement writes a synaptic variable
        proj = projections[name]
        records = {v: proj.values[v].detach().to(dtype).expand(T, proj.n_synapses) for v in names}
        out[name] = SimulationResult(None, t_axis, records, torch.zeros(T, 0, dtype=dtype), dt, "torch")
    return out


def _results(net: NetworkDescription, T: int, dt: float, dtype: torch.dtype, cfgs: dict, resolved: dict,
             runs: dict, rasters: dict) -> dict[str, SimulationResult]:
    t_axis = torch.arange(T, dtype=dtype) * dt
    out: dict[str, SimulationResult] = {}
    for name, pop in net.populations.items():
        if name in rasters:
            out[name] = SimulationResult(None, t_axis, {}, rasters[name], dt, "torch")
            continue
        model, n, res, run = pop.model, pop.n, resolved[name], runs[name]
        records = {}
        for r in cfgs[name]:
            if r in run["records"]:
                records[r] = torch.from_numpy(run["records"][r].reshape(T, n))
            elif r in res.stacked:
                v = res.stacked[r].detach()
                records[r] = v.expand(T, n) if v.ndim == 2 else v[:, None].expand(T, n)
            else:
                records[r] = res.params[r].detach().expand(T, n)
        # the kernel swaps state buffers every step: the table says which holds the final states
        by_address = {a.ctypes.data: a for a in run["buffers"]}
        final = {s: torch.from_numpy(by_address[run["table"][j]]) for j, s in enumerate(model.state_names)}
        if model.refractory_kind in ("time", "time_expr"):
            final["_last"] = torch.from_numpy(run["last"])
        elif model.refractory_kind == "condition":
            final["_nr"] = torch.from_numpy(run["nrs"].astype(bool))
        params = {**res.params, "dt": torch.tensor(dt, dtype=dtype), "N": n, "i": torch.arange(n)}
        out[name] = SimulationResult(model, t_axis, records, None, dt, "torch", params=params, final_state=final,
                                     spike_events=run["events"], n=n)
    return out
