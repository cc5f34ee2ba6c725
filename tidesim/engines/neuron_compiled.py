"""Running the generated C kernels: build with the system C compiler, call through ctypes, and wrap
forward and adjoint in one ``torch.autograd.Function``.

This is the fast path of the torch backend on the CPU (the time loop runs in compiled code, so a
step costs nanoseconds per neuron instead of tens of microseconds of Python). It gives the same
numbers as the step-by-step torch path, which stays in use for CUDA, noise, custom surrogates and
functions without a printable derivative. Kernels are compiled once per model and parameter
layout (about a second) and cached on disk.
"""

from __future__ import annotations

import ctypes
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from brian2 import second

from tidesim.codegen import build
from tidesim.codegen.c_forward import generate
from tidesim.codegen.c_neuron import KernelSource, NoDerivative
from tidesim.core.errors import NumericalInstabilityError, Unsupported
from tidesim.core.inputs import ResolvedInputs, check_memory
from tidesim.core.model import NeuronModel
from tidesim.core.result import SimulationResult, SpikeEvents
from tidesim.core.surrogate import Surrogate, atan, fast_sigmoid, sigmoid, straight_through, triangular
from tidesim.core.units import fmt, to_numpy
from tidesim.engines.requests import NeuronRun, RunConfig, neuron_result
from tidesim.engines.schedule import NEVER, BoundModel, initial_state, refractory_steps

__all__ = ["check", "run_compiled", "kernel_for", "layout", "surrogate_code", "threads_for", "NEURONS_PER_THREAD",
           "grown_events"]

_P = ctypes.c_void_p
_I = ctypes.c_int64
_D = ctypes.c_double


#: Neurons per thread below which more threads do not pay for themselves.
NEURONS_PER_THREAD = 10_000


def _load(source: str) -> ctypes.CDLL:
    lib = build.load(source, "neuron", native=True)
    # n, k0, k1, i0, i1, dt, S, last, nrs, ref_steps, ref_stride, P, R, spikes, row_buf, step_counts, ev_idx,
    # ev_count, ev_cap, traj, nr_traj, bad (see tidesim.codegen.c_forward.FORWARD_ARGS)
    for name in ("tidesim_forward", "tidesim_forward_traj"):
        if hasattr(lib, name):
            getattr(lib, name).restype = ctypes.c_int64
            getattr(lib, name).argtypes = [_I, _I, _I, _I, _I, _D, _P, _P, _P, _P, _I, _P, _P, _P, _P, _P, _P, _P,
                                           _I, _P, _P, _P]
    if hasattr(lib, "tidesim_backward"):
        lib.tidesim_backward.restype = None
        # n, i0, i1, dt, traj, nr_traj, spikes, P, lam, gs_in, gs_rs, zrow, GR, gr_rs, G, tbptt, detach, sg_a,
        # scale
        lib.tidesim_backward.argtypes = [_I, _I, _I, _D, _P, _P, _P, _P, _P, _P, _I, _P, _P, _P, _P, _I,
                                         ctypes.c_int, _D, _D]
    return lib


def kernel_for(model: NeuronModel, modes: dict[str, str], dtype: torch.dtype, adjoint: bool,
               grad_params: tuple[str, ...] = (), records: tuple[int, ...] = (), surrogate: int = 0):
    """Generated source and loaded library for ``model`` with this parameter layout, record set and (for
    the adjoint) surrogate kind."""
    real = {torch.float64: "double", torch.float32: "float"}[dtype]
    src = _sources(model, tuple(sorted(modes.items())), real, adjoint, tuple(grad_params), tuple(records),
                   surrogate if adjoint else 0)
    return src, _load(src.source)


def _sources(model, modes_items, real, adjoint, grad_params, records, surrogate) -> KernelSource:
    # generated sources belong to the model (like its generated torch code)
    cache = model.__dict__.setdefault("_kernel_sources", {})
    key = (modes_items, real, adjoint, grad_params, records, surrogate)
    if key not in cache:
        cache[key] = generate(model, dict(modes_items), real, adjoint, grad_params, records, surrogate)
    return cache[key]


_SURROGATES = {fast_sigmoid: (0, "slope"), sigmoid: (1, "slope"), atan: (2, "alpha"),
               triangular: (3, "width"), straight_through: (4, None)}


def surrogate_code(s: Surrogate) -> tuple[int, float] | None:
    spec = _SURROGATES.get(type(s))
    if spec is None:
        return None
    kind, attr = spec
    return kind, float(getattr(s, attr)) if attr else 0.0


def check(model: NeuronModel, cfg: RunConfig, needs_grad: bool) -> None:
    """Raise :class:`~tidesim.Unsupported` with the reason if the compiled engine cannot run this."""
    if cfg.device.type != "cpu":
        raise Unsupported("not on the CPU")
    if cfg.dtype not in (torch.float64, torch.float32):
        raise Unsupported(f"dtype {cfg.dtype}: the compiled engine runs float32 or float64")
    if model.stochastic:
        raise Unsupported("random numbers (noise xi, rand(), randn()) are drawn by torch")
    if not build.available():
        raise Unsupported("no C compiler ($CC, gcc or cc)")
    if needs_grad and surrogate_code(cfg.surrogate) is None:
        raise Unsupported("custom surrogate")
    if needs_grad and cfg.surrogate.learnable:
        raise Unsupported("learnable surrogate slope")


@dataclass
class Layout:
    params: list[torch.Tensor]  # in model.parameter_names order, contiguous [1], [n], [T] or [T, n]
    modes: dict[str, str]


def layout(model: NeuronModel, res: ResolvedInputs, n: int, dtype) -> Layout:
    """Each parameter's values as the kernels read them, and its layout (see ``PARAM_MODES``)."""
    params, modes = [], {}
    for p in model.parameter_names:
        if p in res.stacked:
            value = res.stacked[p]
            modes[p] = "time" if value.ndim == 1 else "time_neuron"
        else:
            value = res.params[p]
            modes[p] = "scalar" if value.ndim == 0 else "neuron"
            value = value.reshape(1) if value.ndim == 0 else value
        params.append(value.to(dtype))
    return Layout(params, modes)


def _ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


def _ptrs(arrays) -> ctypes.Array:
    return (ctypes.c_void_p * max(len(arrays), 1))(*[_ptr(a) for a in arrays])


def _rows(g: torch.Tensor | None, dtype, n: int) -> tuple[torch.Tensor | None, int]:
    """A ``[T, n]`` gradient as contiguous rows the adjoint reads with unit stride, and the stride between
    steps: one row for every step where the gradient does not change with time (``spikes.sum()``'s is an
    expanded scalar: no [T, n] copy), else the whole array (copied if it is not contiguous)."""
    if g is None:
        return None, 0
    g = g.detach().to(device="cpu", dtype=dtype)
    if g.stride(0) == 0:  # the same row at every step
        return g[0].expand(n).contiguous(), 0
    return g.contiguous(), n


def grown_events(buffer: np.ndarray, count: int, at_step: int, n_steps: int, room: int) -> np.ndarray:
    """A larger event buffer holding the first ``count`` events: room for the count the run so far
    projects at its end (+15%), at least ``room`` more than now and 25% more than before."""
    projected = int(1.15 * count * n_steps / max(at_step, 1)) + room
    grown = np.empty(max(projected, count + room, int(1.25 * len(buffer))), dtype=buffer.dtype)
    grown[:count] = buffer[:count]
    return grown


class _Events:
    """Spikes of one range of neurons: the neurons of each step (int32) and per-step counts, in a buffer
    that grows when the kernel asks (to the count the run so far projects, not by doubling)."""

    def __init__(self, capacity: int, n_steps: int):
        self.idx = np.empty(capacity, dtype=np.int32)
        self.step_counts = np.zeros(n_steps, dtype=np.int64)
        self.count = np.zeros(1, dtype=np.int64)

    def grow(self, at_step: int, n_steps: int, room: int) -> None:
        self.idx = grown_events(self.idx, int(self.count[0]), at_step, n_steps, room)

    def neurons(self) -> np.ndarray:
        c = int(self.count[0])
        return self.idx[:c] if c >= 0.8 * len(self.idx) else self.idx[:c].copy()  # no large idle tail


class _Runner:
    """Everything about one compiled run that is not a tensor."""

    def __init__(self, model, res, cfg, layout, lib, src, ref_steps, record_ids, needs_grad):
        self.model, self.res, self.cfg, self.layout = model, res, cfg, layout
        self.lib, self.src, self.needs_grad = lib, src, needs_grad
        self.ref_steps, self.record_ids = ref_steps, record_ids
        self.np_dtype = np.float64 if cfg.dtype == torch.float64 else np.float32
        self.n, self.T, self.NS = cfg.n, cfg.n_steps, len(model.state_names)
        self.kind = model.refractory_kind
        self.row_buf = np.zeros(self.n, dtype=np.uint8)
        self.start = None  # the run's initial (states, last, nrs): a blow-up is re-run from it

    def fresh_refractory(self):
        last = np.full(self.n, NEVER, dtype=np.int64) if self.kind in ("time", "time_expr") else None
        nrs = np.ones(self.n, dtype=np.uint8) if self.kind == "condition" else None
        return last, nrs

    def keep_start(self, states, last, nrs) -> None:
        self.start = ([s.copy() for s in states], None if last is None else last.copy(),
                      None if nrs is None else nrs.copy())

    def forward(self, states, last, nrs, params, i0, i1, records=None, spikes=None, traj=None, nr_traj=None,
                k0=0, k1=None, events: _Events | None = None):
        """Steps ``i0`` to ``i1`` of neurons ``k0`` to ``k1``; raises on a non-finite state."""
        n = self.n
        k1 = n if k1 is None else k1
        slots = self.NS + len(self.model.subexpression_names)
        i = i0
        while i < i1:
            rec = [None] * slots
            for slot, arr in (records or {}).items():
                rec[slot] = arr[i * n:]
            bad = np.zeros(4, dtype=np.float64)
            # without an event buffer (a raster run) the kernel is given none: it checks ev_count for NULL
            ev = (None, None, None, 0) if events is None else (events.step_counts, events.idx, events.count,
                                                                len(events.idx))
            kernel = self.lib.tidesim_forward if traj is None else self.lib.tidesim_forward_traj
            code = kernel(
                n, k0, k1, i, i1, self.cfg.dt, _ptrs(states), _ptr(last), _ptr(nrs), _ptr(self.ref_steps),
                0 if self.ref_steps is None or self.ref_steps.size == 1 else 1, _ptrs(params), _ptrs(rec),
                None if spikes is None else _ptr(spikes[i * n:]), _ptr(self.row_buf), _ptr(ev[0]), _ptr(ev[1]),
                _ptr(ev[2]), ev[3], _ptr(traj), _ptr(nr_traj), bad.ctypes.data)
            if code == 0:
                return
            if code == 2:  # the event buffer is full: grow it and go on from that step
                i = int(bad[0])
                events.grow(i, i1, 2 * (k1 - k0))
                continue
            self._blow_up(int(bad[0]), int(bad[1]), int(bad[2]), float(bad[3]), params, records, spikes)

    def _blow_up(self, i: int, k: int, j: int, value: float, params, records, spikes) -> None:
        name = self.model.state_names[j]
        before = self._value_before(i, k, j, params, records, spikes)
        dt = self.cfg.dt
        raise NumericalInstabilityError(
            f"{self.model.name}: state variable '{name}' of neuron {k} became {value} in the step "
            f"from t = {fmt(i * dt, second.dim)} to {fmt((i + 1) * dt, second.dim)} (step {i}); it was "
            f"{fmt(before, self.model.dims[name])} before. Try a smaller dt, another "
            "integration method, or check that neuron's parameters.", variable=name, neuron=k, step=i)

    def _value_before(self, i: int, k: int, j: int, params, records, spikes) -> float:
        """Neuron ``k``'s state ``j`` at the start of step ``i``, re-run from the run's start (the kernel
        overwrote it). The run is deterministic: the re-run writes the same values into the records and
        raster, for this neuron only."""
        if self.start is None or (self.needs_grad and spikes is None):
            return float("nan")
        states, last, nrs = ([s.copy() for s in self.start[0]], *(None if a is None else a.copy()
                                                                    for a in self.start[1:]))
        events = None if self.needs_grad else _Events(i + 2, max(i, 1))
        self.start, saved = None, self.start  # no second re-run from inside this one
        try:
            self.forward(states, last, nrs, params, 0, i, records, spikes, k0=k, k1=k + 1, events=events)
        finally:
            self.start = saved
        return float(states[j][k])

    def run_events(self, states, last, nrs, params, records, threads: int) -> SpikeEvents:
        """The whole run without gradients: its spikes as events; neurons split into ``threads`` ranges
        run at once (ctypes releases the GIL)."""
        bounds = np.linspace(0, self.n, max(1, threads) + 1).round().astype(int)
        ranges = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

        def one(k0k1):
            events = _Events(max(1024, 4 * (k0k1[1] - k0k1[0])), self.T)
            self.forward(states, last, nrs, params, 0, self.T, records, k0=k0k1[0], k1=k0k1[1], events=events)
            return events

        if len(ranges) == 1:
            part = one(ranges[0])
            return SpikeEvents(part.step_counts, part.neurons())
        with ThreadPoolExecutor(len(ranges)) as pool:
            futures = [pool.submit(one, r) for r in ranges]
            failed = [e for e in (f.exception() for f in futures) if e is not None]
            if failed:  # the earliest blow-up, as a single-threaded run reports it
                raise min(failed, key=lambda e: (getattr(e, "step", None) or 0, getattr(e, "neuron", 0) or 0))
            return _merge([f.result() for f in futures], self.T)


def _merge(parts: list[_Events], n_steps: int, block: int = 256) -> SpikeEvents:
    """Events of neuron ranges (in neuron order) as one step-ordered list, placed block of steps by block
    of steps (positions are computed for one block at a time)."""
    counts = np.sum([p.step_counts for p in parts], axis=0)
    start = np.cumsum(counts) - counts
    neurons = np.empty(int(counts.sum()), dtype=np.int32)
    before = np.zeros(n_steps, dtype=np.int64)  # earlier ranges' spikes at each step
    for p in parts:
        local = np.cumsum(p.step_counts) - p.step_counts
        base = start + before - local
        for s0 in range(0, n_steps, block):
            s1 = min(n_steps, s0 + block)
            a, b = int(local[s0]), int(local[s1 - 1] + p.step_counts[s1 - 1])
            if b > a:
                neurons[np.repeat(base[s0:s1], p.step_counts[s0:s1]) + np.arange(a, b)] = p.idx[a:b]
        before += p.step_counts
    return SpikeEvents(counts, neurons)



class _CompiledRun(torch.autograd.Function):
    @staticmethod
    def forward(ctx, runner: _Runner, *tensors):
        r = runner
        NS, n, T = r.NS, r.n, r.T
        states = [to_numpy(x, r.np_dtype).copy() for x in tensors[:NS]]
        params = [to_numpy(p, r.np_dtype) for p in tensors[NS:]]
        last, nrs = r.fresh_refractory()
        r.keep_start(states, last, nrs)
        spikes = np.zeros(T * n, dtype=r.np_dtype)
        records = {slot: np.empty(T * n, dtype=r.np_dtype) for slot in r.record_ids}
        ctx.runner, ctx.params, ctx.records = r, params, records
        ctx.snapshots, ctx.traj, ctx.nr_traj = [], None, None
        if r.needs_grad and r.cfg.checkpoint:
            K = r.cfg.checkpoint
            for i0 in range(0, T, K):
                ctx.snapshots.append(([s.copy() for s in states], None if last is None else last.copy(),
                                      None if nrs is None else nrs.copy()))
                r.forward(states, last, nrs, params, i0, min(T, i0 + K), records, spikes)
        else:
            if r.needs_grad:
                ctx.traj = np.zeros(T * NS * n, dtype=r.np_dtype)
                ctx.nr_traj = np.ones(T * n, dtype=np.uint8)
            r.forward(states, last, nrs, params, 0, T, records, spikes, ctx.traj, ctx.nr_traj)
        ctx.spikes = spikes
        out_spikes = torch.from_numpy(spikes.reshape(T, n))
        outs = [torch.from_numpy(records[s].reshape(T, n)) for s in r.record_ids]
        finals = [torch.from_numpy(s) for s in states]
        return (out_spikes, *outs, *finals)

    @staticmethod
    def backward(ctx, g_spikes, *grads):
        r = ctx.runner
        NS, n, T = r.NS, r.n, r.T
        n_rec = len(r.record_ids)
        g_records, g_finals = grads[:n_rec], grads[n_rec:]
        lam = [(to_numpy(g, r.np_dtype).copy() if g is not None else np.zeros(n, dtype=r.np_dtype))
               for g in g_finals]
        gs, gs_rs = _rows(g_spikes, r.cfg.dtype, n)
        gr = [None] * (NS + len(r.model.subexpression_names))
        gr_rs = np.zeros(max(len(gr), 1), dtype=np.int64)
        for slot, g in zip(r.record_ids, g_records):
            gr[slot], gr_rs[slot] = _rows(g, r.cfg.dtype, n)
        zrow = np.zeros(n, dtype=r.np_dtype)  # what the kernel reads for an absent gradient
        G = []
        for j, p in enumerate(r.model.parameter_names):
            mode = r.layout.modes[p]
            size = n if mode in ("scalar", "neuron") else (T if mode == "time" else T * n)
            G.append(np.zeros(size, dtype=r.np_dtype) if ctx.needs_input_grad[1 + NS + j] else None)
        _, a = surrogate_code(r.cfg.surrogate)  # its kind is written into the kernel
        tbptt = r.cfg.tbptt or 0
        detach = 1 if r.cfg.detach_reset else 0
        if ctx.snapshots:
            K = r.cfg.checkpoint
            segments = [(i0, min(T, i0 + K)) for i0 in range(0, T, K)]
        else:
            segments = [(0, T)]
        for seg_index in reversed(range(len(segments))):
            i0, i1 = segments[seg_index]
            if ctx.snapshots:  # recompute this segment's trajectory from its start
                st, last, nrs = ctx.snapshots[seg_index]
                st = [s.copy() for s in st]
                last = None if last is None else last.copy()
                nrs = None if nrs is None else nrs.copy()
                traj = np.zeros((i1 - i0) * NS * n, dtype=r.np_dtype)
                nr_traj = np.ones((i1 - i0) * n, dtype=np.uint8)
                scratch = np.zeros(T * n, dtype=r.np_dtype)
                # the kernel writes its records again (the same values): it has no variant without them
                r.forward(st, last, nrs, ctx.params, i0, i1, ctx.records, scratch, traj, nr_traj)
            else:
                traj, nr_traj = ctx.traj, ctx.nr_traj
            r.lib.tidesim_backward(
                n, i0, i1, r.cfg.dt, _ptr(traj), _ptr(nr_traj), _ptr(ctx.spikes[i0 * n:]), _ptrs(ctx.params),
                _ptrs(lam), None if gs is None else gs.data_ptr(), gs_rs, _ptr(zrow),
                (ctypes.c_void_p * len(gr))(*[None if g is None else g.data_ptr() for g in gr]),
                gr_rs.ctypes.data, _ptrs(G), tbptt, detach, a, r.model.threshold_scale)
        out = [None]
        for j in range(NS):
            out.append(torch.from_numpy(lam[j]).to(r.cfg.dtype) if ctx.needs_input_grad[1 + j] else None)
        for p, g in zip(r.model.parameter_names, G):
            if g is None:
                out.append(None)
                continue
            mode = r.layout.modes[p]
            g = torch.from_numpy(g).to(r.cfg.dtype)
            if mode == "scalar":
                g = g.sum().reshape(1)
            elif mode == "time_neuron":
                g = g.reshape(T, n)
            out.append(g)
        return tuple(out)


def threads_for(n: int, threads: int | None) -> int:
    """Threads over neurons: as asked, else torch's thread count with at least
    :data:`NEURONS_PER_THREAD` neurons each."""
    if threads is not None:
        return max(1, min(int(threads), n))
    return max(1, min(torch.get_num_threads(), n // NEURONS_PER_THREAD))


def _prepare_run(run: NeuronRun) -> tuple[_Runner, list[torch.Tensor], dict[str, int]]:
    model, res, cfg = run.model, run.inputs, run.config
    needs_grad = run.needs_grad
    check(model, cfg, needs_grad)
    state0 = initial_state(model, res, cfg.n, cfg.dt, cfg.dtype, cfg.device, run.initial)
    needs_grad = needs_grad or (torch.is_grad_enabled() and any(v.requires_grad for v in state0.values()))
    check(model, cfg, needs_grad)  # again: initial values may be what requires the gradient
    NS = len(model.state_names)
    check_memory(cfg.n, cfg.n_steps, len(cfg.record), cfg.dtype, cfg.device, model.name, raster=needs_grad,
                 trajectory=NS if needs_grad and not cfg.checkpoint else 0)
    lay = layout(model, res, cfg.n, cfg.dtype)
    grad_params = tuple(p for p, t in zip(model.parameter_names, lay.params) if t.requires_grad)
    slot_of = {name: j for j, name in enumerate(model.state_names)}
    slot_of.update({name: NS + m for m, name in enumerate(model.subexpression_names)})
    record_ids = [slot_of[name] for name in cfg.record if name in slot_of]
    try:
        src, lib = kernel_for(model, lay.modes, cfg.dtype, adjoint=needs_grad, grad_params=grad_params,
                              records=tuple(sorted(set(record_ids))),
                              surrogate=surrogate_code(cfg.surrogate)[0] if needs_grad else 0)
    except NoDerivative as exc:
        raise Unsupported(f"{exc} (the adjoint kernel needs a derivative it can print)") from None
    ref = refractory_steps(model, BoundModel(model, cfg.dtype, cfg.device, (cfg.n,)),
                           {**res.params, "dt": torch.tensor(cfg.dt, dtype=cfg.dtype), "N": cfg.n,
                            "i": torch.arange(cfg.n)}, cfg.dt)
    ref_steps = None if ref is None else np.ascontiguousarray(
        np.broadcast_to(to_numpy(torch.as_tensor(ref), np.int64), (1,) if isinstance(ref, int) else (cfg.n,)))
    runner = _Runner(model, res, cfg, lay, lib, src, ref_steps, record_ids, needs_grad)
    return runner, [state0[s] for s in model.state_names] + lay.params, slot_of


def _run_without_gradient(runner: _Runner, tensors: list[torch.Tensor]):
    """Records, spike events and final states of a run nobody differentiates."""
    r = runner
    states = [to_numpy(x, r.np_dtype).copy() for x in tensors[:r.NS]]
    params = [to_numpy(p, r.np_dtype) for p in tensors[r.NS:]]
    last, nrs = r.fresh_refractory()
    r.keep_start(states, last, nrs)
    records = {slot: np.empty(r.T * r.n, dtype=r.np_dtype) for slot in r.record_ids}
    events = r.run_events(states, last, nrs, params, records, threads_for(r.n, r.cfg.threads))
    outs = [torch.from_numpy(records[s].reshape(r.T, r.n)) for s in r.record_ids]
    return events, outs, [torch.from_numpy(s) for s in states]


def run_compiled(run: NeuronRun) -> SimulationResult:
    """Run the whole simulation in the compiled kernels (refuses with :class:`~tidesim.Unsupported`).
    Without gradients the spikes come back as events (no ``[T, n]`` raster is allocated)."""
    model, res, cfg = run.model, run.inputs, run.config
    runner, tensors, slot_of = _prepare_run(run)
    events = None
    if runner.needs_grad:
        outs = _CompiledRun.apply(runner, *tensors)
        spikes, rec_outs, finals = outs[0], outs[1:1 + len(runner.record_ids)], outs[1 + len(runner.record_ids):]
    else:
        events, rec_outs, finals = _run_without_gradient(runner, tensors)
        spikes = None
    recs = dict(zip([n for n in cfg.record if n in slot_of], rec_outs))
    records = {}
    for name in cfg.record:
        if name in recs:
            records[name] = recs[name]
        elif name in res.stacked:
            records[name] = res.stacked[name].to(cfg.dtype).expand(cfg.n_steps, cfg.n) \
                if res.stacked[name].ndim == 2 else res.stacked[name][:, None].expand(cfg.n_steps, cfg.n)
        else:
            records[name] = res.params[name].expand(cfg.n_steps, cfg.n)
    if run.progress is not None:
        run.progress(cfg.n_steps)
    return neuron_result(run, records, spikes, dict(zip(model.state_names, finals)), events)
