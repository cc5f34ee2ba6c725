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
from dataclasses import dataclass

import numpy as np
import torch
from brian2 import second

from tidesim.codegen import build
from tidesim.codegen.c_neuron import KernelSource, NoDerivative, generate
from tidesim.core.errors import NumericalInstabilityError, Unsupported
from tidesim.core.inputs import ResolvedInputs
from tidesim.core.model import NeuronModel
from tidesim.core.result import SimulationResult
from tidesim.core.surrogate import Surrogate, atan, fast_sigmoid, sigmoid, straight_through, triangular
from tidesim.core.units import fmt, to_numpy
from tidesim.engines.requests import NeuronRun, RunConfig, neuron_result
from tidesim.engines.schedule import NEVER, BoundModel, initial_state, refractory_steps

__all__ = ["check", "run_compiled", "kernel_for", "layout", "surrogate_code"]

_P = ctypes.c_void_p
_I = ctypes.c_int64
_D = ctypes.c_double


def _load(source: str) -> ctypes.CDLL:
    lib = build.load(source, "neuron")
    lib.tidesim_forward.restype = ctypes.c_int64
    lib.tidesim_forward.argtypes = [_I, _I, _I, _D, _P, _P, _P, _P, _I, _P, _P, _P, _P, _P, _P]
    if hasattr(lib, "tidesim_backward"):
        lib.tidesim_backward.restype = None
        lib.tidesim_backward.argtypes = [_I, _I, _I, _D, _P, _P, _P, _P, _P, _P, _P, _P, _P, _P, _I,
                                         ctypes.c_int, ctypes.c_int, _D, _D]
    return lib


def kernel_for(model: NeuronModel, modes: dict[str, str], dtype: torch.dtype, adjoint: bool,
               grad_params: tuple[str, ...] = ()):
    """Generated source and loaded library for ``model`` with this parameter layout."""
    real = {torch.float64: "double", torch.float32: "float"}[dtype]
    src = _sources(model, tuple(sorted(modes.items())), real, adjoint, tuple(grad_params))
    return src, _load(src.source)


def _sources(model, modes_items, real, adjoint, grad_params) -> KernelSource:
    # generated sources belong to the model (like its generated torch code)
    cache = model.__dict__.setdefault("_kernel_sources", {})
    key = (modes_items, real, adjoint, grad_params)
    if key not in cache:
        cache[key] = generate(model, dict(modes_items), real, adjoint, grad_params)
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


def _strided(g: torch.Tensor | None, dtype) -> tuple[torch.Tensor | None, np.ndarray]:
    """A [T, n] gradient as (tensor, element strides) without copying it (kept alive by the caller)."""
    if g is None:
        return None, np.zeros(2, dtype=np.int64)
    g = g.detach()
    if g.dtype != dtype or g.device.type != "cpu":
        g = g.to(device="cpu", dtype=dtype)
    return g, np.array(g.stride(), dtype=np.int64)


class _Runner:
    """Everything about one compiled run that is not a tensor."""

    def __init__(self, model, res, cfg, layout, lib, src, ref_steps, record_ids, needs_grad):
        self.model, self.res, self.cfg, self.layout = model, res, cfg, layout
        self.lib, self.src, self.needs_grad = lib, src, needs_grad
        self.ref_steps, self.record_ids = ref_steps, record_ids
        self.np_dtype = np.float64 if cfg.dtype == torch.float64 else np.float32
        self.n, self.T, self.NS = cfg.n, cfg.n_steps, len(model.state_names)
        self.kind = model.refractory_kind

    def fresh_refractory(self):
        last = np.full(self.n, NEVER, dtype=np.int64) if self.kind in ("time", "time_expr") else None
        nrs = np.ones(self.n, dtype=np.uint8) if self.kind == "condition" else None
        return last, nrs

    def forward(self, states, last, nrs, params, i0, i1, records=None, spikes=None, traj=None, nr_traj=None):
        n, NS = self.n, self.NS
        slots = NS + len(self.model.subexpression_names)
        rec = [None] * slots
        if records is not None:
            for slot, arr in records.items():
                rec[slot] = arr[i0 * n:]
        bad = np.zeros(5, dtype=np.float64)
        code = self.lib.tidesim_forward(
            n, i0, i1, self.cfg.dt, _ptrs(states), _ptr(last), _ptr(nrs), _ptr(self.ref_steps),
            0 if self.ref_steps is None or self.ref_steps.size == 1 else 1, _ptrs(params), _ptrs(rec),
            _ptr(spikes[i0 * n:]), _ptr(traj), _ptr(nr_traj), bad.ctypes.data)
        if code:
            i, k, j = int(bad[0]), int(bad[1]), int(bad[2])
            name = self.model.state_names[j]
            dt = self.cfg.dt
            raise NumericalInstabilityError(
                f"{self.model.name}: state variable '{name}' of neuron {k} became {bad[3]} in the step "
                f"from t = {fmt(i * dt, second.dim)} to {fmt((i + 1) * dt, second.dim)} (step {i}); it was "
                f"{fmt(float(bad[4]), self.model.dims[name])} before. Try a smaller dt, another "
                "integration method, or check that neuron's parameters.", variable=name, neuron=k, step=i)


class _CompiledRun(torch.autograd.Function):
    @staticmethod
    def forward(ctx, runner: _Runner, *tensors):
        r = runner
        NS, n, T = r.NS, r.n, r.T
        states = [to_numpy(x, r.np_dtype).copy() for x in tensors[:NS]]
        params = [to_numpy(p, r.np_dtype) for p in tensors[NS:]]
        last, nrs = r.fresh_refractory()
        spikes = np.zeros(T * n, dtype=r.np_dtype)
        records = {slot: np.zeros(T * n, dtype=r.np_dtype) for slot in r.record_ids}
        ctx.runner, ctx.params = r, params
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
        gs, gs_st = _strided(g_spikes, r.cfg.dtype)
        slots = NS + len(r.model.subexpression_names)
        gr = [None] * slots
        gr_st = np.zeros(2 * slots, dtype=np.int64)
        for slot, g in zip(r.record_ids, g_records):
            gr[slot], gr_st[2 * slot:2 * slot + 2] = _strided(g, r.cfg.dtype)
        G = []
        for j, p in enumerate(r.model.parameter_names):
            mode = r.layout.modes[p]
            size = n if mode in ("scalar", "neuron") else (T if mode == "time" else T * n)
            G.append(np.zeros(size, dtype=r.np_dtype) if ctx.needs_input_grad[1 + NS + j] else None)
        kind, a = surrogate_code(r.cfg.surrogate)
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
                r.forward(st, last, nrs, ctx.params, i0, i1, None, scratch, traj, nr_traj)
            else:
                traj, nr_traj = ctx.traj, ctx.nr_traj
            r.lib.tidesim_backward(
                n, i0, i1, r.cfg.dt, _ptr(traj), _ptr(nr_traj), _ptr(ctx.spikes[i0 * n:]), _ptrs(ctx.params),
                _ptrs(lam), None if gs is None else gs.data_ptr(), gs_st.ctypes.data,
                (ctypes.c_void_p * len(gr))(*[None if g is None else g.data_ptr() for g in gr]),
                gr_st.ctypes.data, _ptrs(G), tbptt, detach, kind, a, r.model.threshold_scale)
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


def run_compiled(run: NeuronRun) -> SimulationResult:
    """Run the whole simulation in the compiled kernels (refuses with :class:`~tidesim.Unsupported`)."""
    model, res, cfg = run.model, run.inputs, run.config
    needs_grad = run.needs_grad
    check(model, cfg, needs_grad)
    state0 = initial_state(model, res, cfg.n, cfg.dt, cfg.dtype, cfg.device, run.initial)
    needs_grad = needs_grad or (torch.is_grad_enabled() and any(v.requires_grad for v in state0.values()))
    lay = layout(model, res, cfg.n, cfg.dtype)
    grad_params = tuple(p for p, t in zip(model.parameter_names, lay.params) if t.requires_grad)
    try:
        src, lib = kernel_for(model, lay.modes, cfg.dtype, adjoint=needs_grad, grad_params=grad_params)
    except NoDerivative as exc:
        raise Unsupported(f"{exc} (the adjoint kernel needs a derivative it can print)") from None
    NS = len(model.state_names)
    ref = refractory_steps(model, BoundModel(model, cfg.dtype, cfg.device, (cfg.n,)),
                           {**res.params, "dt": torch.tensor(cfg.dt, dtype=cfg.dtype), "N": cfg.n,
                            "i": torch.arange(cfg.n)}, cfg.dt)
    ref_steps = None if ref is None else np.ascontiguousarray(
        np.broadcast_to(to_numpy(torch.as_tensor(ref), np.int64), (1,) if isinstance(ref, int) else (cfg.n,)))
    slot_of = {name: j for j, name in enumerate(model.state_names)}
    slot_of.update({name: NS + m for m, name in enumerate(model.subexpression_names)})
    record_ids = [slot_of[name] for name in cfg.record if name in slot_of]
    runner = _Runner(model, res, cfg, lay, lib, src, ref_steps, record_ids, needs_grad)
    tensors = [state0[s] for s in model.state_names] + lay.params
    if needs_grad:
        outs = _CompiledRun.apply(runner, *tensors)
    else:
        with torch.no_grad():
            outs = _CompiledRun.forward(_NoCtx(), runner, *tensors)
    recs = dict(zip([n for n in cfg.record if n in slot_of], outs[1:1 + len(record_ids)]))
    finals = dict(zip(model.state_names, outs[1 + len(record_ids):]))
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
    return neuron_result(run, records, outs[0], finals)


class _NoCtx:
    """Stands in for autograd's ctx when no gradient is needed."""

    needs_input_grad = ()
