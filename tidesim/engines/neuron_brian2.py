"""The Brian2 backend: the same model, run by Brian2 itself, as the reference.

Per-neuron parameters become NeuronGroup variables, time-varying inputs become TimedArrays
written into their parameter at the start of each step (before the StateMonitor records, so both
backends record the same input). Every run is explicit: its own Clock, Network and namespace,
never Brian2's magic ``run()`` or global clock.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

import brian2 as b2
import numpy as np
import torch
from brian2.codegen.runtime.numpy_rt import NumpyCodeObject
from brian2.units.fundamentalunits import get_unit

from tidesim.codegen.build import cache_dir
from tidesim.core.errors import BackendError
from tidesim.core.result import SimulationResult
from tidesim.core.units import to_numpy
from tidesim.engines.requests import NeuronRun

__all__ = ["run_brian2", "code_object_class", "set_initial_states", "brian2_refractory", "ieee_arithmetic"]


@contextlib.contextmanager
def ieee_arithmetic() -> Iterator[None]:
    """Brian2's compiled targets built without ``-ffast-math`` for the duration of a reference run.

    Brian2 compiles cython code with ``-ffast-math`` by default, which lets the compiler reorder sums
    and fuse multiply-adds: its results then depend on the compiler and CPU, and differ from its own
    numpy target in the last bits (in chaotic regimes, whole spikes later). A reference must be
    reproducible, so tidesim's Brian2 runs use IEEE arithmetic (as the numpy target does), with their
    own cython cache (``$TIDESIM_CACHE/brian2-cython``; Brian2's cache key ignores compiler flags).
    Brian2's preferences are restored afterwards.
    """
    prefs = b2.prefs
    saved = (list(prefs.codegen.cpp.extra_compile_args_gcc), prefs.codegen.runtime.cython.cache_dir)
    strict = [a for a in saved[0] if a not in ("-ffast-math", "-fno-finite-math-only")] + ["-ffp-contract=off"]
    prefs.codegen.cpp.extra_compile_args_gcc = strict
    prefs.codegen.runtime.cython.cache_dir = str(cache_dir().parent / "brian2-cython")
    try:
        yield
    finally:
        prefs.codegen.cpp.extra_compile_args_gcc, prefs.codegen.runtime.cython.cache_dir = saved


def code_object_class(target: str) -> tuple[type, str]:
    """Brian2 code-object class for ``target`` ('cython', 'numpy' or 'auto' = cython if it works)."""
    if target == "numpy":
        return NumpyCodeObject, "numpy"
    if target not in ("cython", "auto"):
        raise ValueError(f"unknown Brian2 target {target!r}; use 'cython', 'numpy' or 'auto'")
    try:  # Cython is optional for Brian2: without it the numpy target runs
        from brian2.codegen.runtime.cython_rt import CythonCodeObject

        if CythonCodeObject.is_available():
            return CythonCodeObject, "cython"
    except ImportError:  # pragma: no cover - depends on the machine
        pass
    if target == "cython":
        raise BackendError("Brian2's cython target is not available here (Cython or a C compiler missing)")
    warnings.warn("Brian2's cython target is not available; running the numpy target (slower)", stacklevel=3)
    return NumpyCodeObject, "numpy"


def brian2_refractory(model) -> Any:
    """The model's refractoriness as a NeuronGroup takes it: a time, an expression, or False."""
    if model.refractory_kind == "time":
        return model.refractory_period * b2.second
    if model.refractory_kind is None:
        return False
    return model.refractory


def set_initial_states(group, model, initial, n: int) -> None:
    """Write the model's initial values (numbers, tensors or Brian2 expressions), overridden by
    ``initial``, into a NeuronGroup of ``n`` neurons."""
    values = {**model.initial, **model.check_initial(initial or {})}
    for name in model.state_names:
        value = values.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            setattr(group, name, value)
        else:
            arr = to_numpy(torch.as_tensor(value, dtype=torch.float64)) if isinstance(value, torch.Tensor) \
                else np.asarray(value, dtype=float)
            group.set_states({name: np.broadcast_to(arr, (n,)).copy()}, units=False)


def _build_and_run(model, duration, n, dt, res, record, initial, codeobj_class, seed):
    clock = b2.Clock(dt=dt * b2.second)
    group = b2.NeuronGroup(
        n, model.equations, threshold=model.threshold, reset=model.reset, refractory=brian2_refractory(model),
        method=model.method, namespace={}, clock=clock, codeobj_class=codeobj_class, name="tidesim_group*",
    )
    group.set_states({k: np.broadcast_to(to_numpy(v), (n,)).copy() for k, v in res.params.items()}, units=False)
    namespace: dict[str, Any] = {}
    for k, (name, series) in enumerate(sorted(res.series.items())):
        values = to_numpy(torch.stack([torch.broadcast_to(v, (n,)) for v in series]))
        unit = get_unit(model.dims[name])
        ta_name = f"_tidesim_input_{k}"
        namespace[ta_name] = b2.TimedArray(values * unit, dt=dt * b2.second, name=f"tidesim_ta_{k}*")
        group.run_regularly(f"{name} = {ta_name}(t, i)", when="start", order=-1, codeobj_class=codeobj_class)
        # The first step's value is also needed by initial-value expressions.
        group.set_states({name: values[0]}, units=False)
    set_initial_states(group, model, initial, n)
    objects = [group]
    state_mon = None
    if record:
        state_mon = b2.StateMonitor(group, list(record), record=True, clock=clock, codeobj_class=codeobj_class)
        objects.append(state_mon)
    spike_mon = b2.SpikeMonitor(group, codeobj_class=codeobj_class) if model.threshold else None
    if spike_mon is not None:
        objects.append(spike_mon)
    if seed is not None:
        b2.seed(int(seed))
    net = b2.Network(*objects)
    net.run(duration * b2.second, namespace=namespace)
    return state_mon, spike_mon


def run_brian2(run: NeuronRun) -> SimulationResult:
    """Run the request in Brian2: the same model, parameters, inputs and initial values."""
    model, res, cfg = run.model, run.inputs, run.config
    n, dt, steps, record, initial, seed = cfg.n, cfg.dt, cfg.n_steps, cfg.record, run.initial, run.seed
    duration = steps * dt
    target = run.target
    codeobj_class, used = code_object_class(target)
    try:
        with ieee_arithmetic():
            state_mon, spike_mon = _build_and_run(model, duration, n, dt, res, record, initial, codeobj_class,
                                                  seed)
    except Exception as exc:  # Brian2 raises many kinds; cython build failures fall back to numpy
        if used == "cython" and target == "auto" and _looks_like_build_failure(exc):
            warnings.warn(f"Brian2's cython build failed ({exc}); running the numpy target", stacklevel=2)
            codeobj_class, used = code_object_class("numpy")
            with ieee_arithmetic():
                state_mon, spike_mon = _build_and_run(model, duration, n, dt, res, record, initial,
                                                      codeobj_class, seed)
        else:
            raise BackendError(f"Brian2 could not run {model.name}: {type(exc).__name__}: {exc}") from exc
    t = torch.arange(steps, dtype=torch.float64) * dt
    states = {}
    for name in record:
        data = np.asarray(getattr(state_mon, name + "_"))  # [n, T], SI
        states[name] = torch.from_numpy(np.ascontiguousarray(data.T))
    spikes = torch.zeros(steps, n, dtype=torch.float64)
    trains = [np.zeros(0) for _ in range(n)]
    if spike_mon is not None:
        idx = np.asarray(spike_mon.i[:], dtype=int)
        times = np.asarray(spike_mon.t_[:], dtype=float)
        steps_of = np.round(times / dt).astype(int)
        spikes[torch.from_numpy(steps_of), torch.from_numpy(idx)] = 1.0
        trains = [times[idx == k] for k in range(n)]
    used_params = {**res.params, **{k: torch.stack(v) for k, v in res.series.items()}}
    result = SimulationResult(model, t, states, spikes, dt, "brian2", params=used_params, spike_trains=trains)
    result.target = used
    return result


def _looks_like_build_failure(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(word in text for word in ("compil", "cython", "distutils", "gcc", "setuptools", "build"))
