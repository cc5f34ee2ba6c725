"""Parameters and inputs in, tensors out: units stripped, shapes checked, names checked.

Everything a user passes to ``simulate`` goes through here, so that a bad value is reported once,
in the user's names and units, before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from brian2 import second

from tidesim.core.errors import (
    InputError,
    InsufficientMemoryError,
    MissingParameterError,
    ShapeError,
    UnknownIdentifierError,
)
from tidesim.core.model import NeuronModel
from tidesim.core.units import si_float, to_si

__all__ = ["ResolvedInputs", "resolve", "infer_n", "as_tensor", "checked_tensor", "check_parameters", "check_time",
           "check_dtype", "check_run_length", "check_memory", "available_memory", "n_steps_for", "record_names",
           "seeded_generator"]

_EPSILON_DT = 1e-4  # Brian2's Clock.epsilon_dt


def check_time(value: Any, name: str) -> float:
    """A positive, finite time in seconds (a number or a Brian2 quantity of time)."""
    value = si_float(value, name, second.dim)
    if value <= 0:
        raise InputError(f"{name} must be a positive time, got {value} s")
    return value


def check_dtype(dtype: Any) -> torch.dtype:
    """float32 or float64: half precision loses membrane dynamics silently (bfloat16 keeps 3 digits)."""
    if dtype not in (torch.float32, torch.float64):
        raise InputError(f"dtype {dtype} is not supported: simulations run in torch.float64 (comparisons, fits) "
                         "or torch.float32 (speed); half precision and integer types give wrong dynamics")
    return dtype


def check_run_length(duration: float, dt: float) -> None:
    """A run must take more than one step: a ``dt`` as long as the run is almost always a unit slip."""
    if dt >= duration:
        raise InputError(f"dt ({dt:g} s) is not shorter than the duration ({duration:g} s): the run would be a "
                         "single step. Check the units (dt is usually 0.01-0.1 ms, e.g. dt=0.1*ms)")


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a new allocation on ``device`` (None where it cannot be told)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].strip().split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def check_memory(n: int, n_steps: int, n_recorded: int, dtype: torch.dtype, device: torch.device,
                 where: str, raster: bool = True, trajectory: int = 0) -> None:
    """Refuse a run whose ``[T, n]`` arrays would not fit in the memory left: ``n_recorded`` recorded
    variables, the spike raster (``raster``) and ``trajectory`` stored states (a backward pass's)."""
    arrays = n_recorded + (1 if raster else 0) + trajectory
    need = n_steps * n * arrays * torch.finfo(dtype).bits // 8
    free = available_memory(device)
    if free is not None and need > 0.8 * free:
        what = [f"{n_recorded} recorded variable(s)"] + (["a spike raster"] if raster else []) + \
            ([f"{trajectory} stored state(s) for the backward pass"] if trajectory else [])
        way_out = "checkpoint=True stores only segment starts for the backward pass; " if trajectory else ""
        raise InsufficientMemoryError(
            f"{where}: {n} neurons x {n_steps} steps with {', '.join(what)} need about {need / 2**30:.1f} GiB, "
            f"and {device.type} has {free / 2**30:.1f} GiB free. {way_out}Record fewer variables (record=[] "
            "keeps spikes only), simulate fewer neurons or a shorter run, or split it into runs that continue "
            "from each other's final state")


def n_steps_for(duration: float, dt: float) -> int:
    """Number of steps Brian2 takes for ``duration`` at ``dt`` (rounding up inexact ends)."""
    steps = int(np.round(duration / dt))
    if steps * dt == duration or abs(steps * dt - duration) / dt <= _EPSILON_DT:
        return steps
    return int(np.ceil(duration / dt))


def seeded_generator(seed: int | None, device: str | torch.device = "cpu") -> torch.Generator:
    """A simulation's own random generator: seeded by ``seed``, else freshly from the OS (the global
    RNG is never touched: a run's configuration travels with it)."""
    generator = torch.Generator(device=device)
    if seed is not None:
        generator.manual_seed(int(seed))
    else:
        generator.seed()
    return generator


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


def checked_tensor(value: Any, what: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An SI value as a finite tensor; ``what`` names it (e.g. ``"parameter 'a'"``) in every refusal."""
    if value is None:
        raise InputError(f"{what} is None: give a number or a quantity")
    if isinstance(value, (str, bytes)):
        raise InputError(f"{what} is the text {value!r}: give a number or a quantity (e.g. 2*nS), not a string")
    if isinstance(value, torch.Tensor) and value.device.type == "meta":
        raise InputError(f"{what} is a tensor on the 'meta' device, which holds no values")
    try:
        out = as_tensor(value, dtype, device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"{what} cannot be read as numbers ({type(value).__name__}: {exc})") from None
    bad = ~torch.isfinite(out.detach())
    if bool(bad.any()):
        first = tuple(int(i) for i in torch.nonzero(bad)[0]) if out.ndim else ()
        at = f" at index {first[0] if len(first) == 1 else first}" if first else ""
        raise InputError(f"{what} is {float(out.detach().reshape(-1)[bad.reshape(-1)][0])}{at}: "
                         "every value must be a finite number")
    return out


def as_tensor(value: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``value`` as a tensor of ``dtype`` on ``device``, keeping autograd history."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype=dtype, device=device)
    return torch.as_tensor(np.asarray(value, dtype=float), dtype=dtype, device=device)


@dataclass
class ResolvedInputs:
    """Tensors ready for the integrator.

    ``params`` hold scalars or ``[n]`` tensors; ``series`` hold per-step values (a list of T
    tensors, each scalar or ``[n]``); ``constants`` are inputs that do not change in time.
    """

    params: dict[str, torch.Tensor]
    series: dict[str, list[torch.Tensor]]
    n: int
    n_steps: int
    stacked: dict[str, torch.Tensor]  # the series as [T] or [T, n] tensors


def _shape_error(kind: str, name: str, shape, expected: str) -> ShapeError:
    return ShapeError(f"{kind} '{name}' has shape {tuple(shape)}; expected {expected}")


def _per_neuron(name: str, value: torch.Tensor, n: int) -> torch.Tensor:
    if value.ndim == 0:
        return value
    if value.ndim == 1 and value.shape[0] in (1, n):
        return value if value.shape[0] == n else value[0]
    raise _shape_error("parameter", name, value.shape, f"a scalar or [n] = [{n}]")


def infer_n(params: Mapping[str, Any] | None, inputs: Mapping[str, Any] | None) -> int:
    """Population size implied by per-neuron parameters (1 if none are per neuron)."""
    sizes = set()
    for value in (params or {}).values():
        shape = np.shape(value) if not isinstance(value, torch.Tensor) else tuple(value.shape)
        if len(shape) == 1 and shape[0] > 1:
            sizes.add(shape[0])
    for value in (inputs or {}).values():
        shape = np.shape(value) if not isinstance(value, torch.Tensor) else tuple(value.shape)
        if len(shape) == 2 and shape[1] > 1:
            sizes.add(shape[1])
    if len(sizes) > 1:
        raise ShapeError(f"parameters and inputs imply different population sizes {sorted(sizes)}; pass n=")
    return sizes.pop() if sizes else 1


def _evaluate_callable(name: str, fn: Callable, t: torch.Tensor) -> Any:
    try:
        out = fn(t)
        if isinstance(out, torch.Tensor) and out.ndim >= 1 and out.shape[0] == t.shape[0]:
            return out
    except (TypeError, ValueError, RuntimeError):
        pass
    # The callable takes one time at a time: evaluate it step by step.
    values = [fn(float(ti)) for ti in t]
    first = values[0]
    if isinstance(first, torch.Tensor):
        return torch.stack([torch.as_tensor(v, dtype=t.dtype) for v in values])
    return np.asarray([np.asarray(to_si(v, name), dtype=float) for v in values])


def _time_series(name: str, value: torch.Tensor, n: int, n_steps: int) -> list[torch.Tensor] | torch.Tensor:
    expected = f"a scalar, [T] = [{n_steps}] or [T, n] = [{n_steps}, {n}]"
    if value.ndim == 0:
        return value
    if value.ndim == 1:
        if value.shape[0] != n_steps:
            raise _shape_error("input", name, value.shape, expected)
        return list(value.unbind(0))  # unbind, not x[t]: keeps backward linear in T
    if value.ndim == 2 and value.shape[0] == n_steps and value.shape[1] in (1, n):
        return list(value.unbind(0)) if value.shape[1] == n else list(value[:, 0].unbind(0))
    raise _shape_error("input", name, value.shape, expected)


def resolve(
    model: NeuronModel,
    n: int,
    n_steps: int,
    dt: float,
    params: Mapping[str, Any] | None,
    inputs: Mapping[str, Any] | None,
    dtype: torch.dtype,
    device: torch.device,
) -> ResolvedInputs:
    """Check names, units and shapes of ``params`` and ``inputs``; return integrator tensors."""
    params = dict(params or {})
    inputs = dict(inputs or {})
    for kind, given in (("params", params), ("inputs", inputs)):
        unknown = [k for k in given if k not in model.parameter_names]
        if unknown:
            raise UnknownIdentifierError(
                f"{kind} names {', '.join(repr(u) for u in unknown)}, which "
                f"{'is' if len(unknown) == 1 else 'are'} not parameters of {model.name}; its "
                f"parameters are {', '.join(model.parameter_names)}"
            )
    both = set(params) & set(inputs)
    if both:
        raise ValueError(f"{', '.join(sorted(both))} given both in params and in inputs")
    resolved: dict[str, torch.Tensor] = {}
    series: dict[str, list[torch.Tensor]] = {}
    stacked: dict[str, torch.Tensor] = {}
    t = torch.arange(n_steps, dtype=dtype, device=device) * dt
    for name in model.parameter_names:
        dim = model.dims[name]
        if name in inputs:
            value = inputs[name]
            if callable(value) and not isinstance(value, torch.Tensor):
                value = _evaluate_callable(name, value, t)
            value = checked_tensor(to_si(value, f"input '{name}'", dim), f"input '{name}'", dtype, device)
            ts = _time_series(name, value, n, n_steps)
            if isinstance(ts, list):
                series[name] = ts
                stacked[name] = value if value.ndim == 1 or value.shape[1] == n else value[:, 0]
            else:
                resolved[name] = ts
            continue
        if name in params:
            value = params[name]
        elif name in model.parameters:
            value = model.parameters[name]
        else:
            raise MissingParameterError(
                f"parameter '{name}' of {model.name} (unit {model.unit_of(name)}) has no value: give "
                f"it in params={{'{name}': ...}} or inputs={{'{name}': ...}}"
            )
        value = checked_tensor(to_si(value, f"parameter '{name}'", dim), f"parameter '{name}'", dtype, device)
        resolved[name] = _per_neuron(name, value, n)
    return ResolvedInputs(resolved, series, n, n_steps, stacked)


def check_parameters(model: NeuronModel, params: Mapping[str, Any] | None, n: int, where: str) -> dict[str, Any]:
    """Check names, units and shapes of parameter values for ``n`` neurons of ``model`` (``where``
    names them in errors, e.g. ``"population 'exc'"``); returns them in SI (tensors stay tensors)."""
    out = {}
    for name, value in dict(params or {}).items():
        if name not in model.parameter_names:
            raise UnknownIdentifierError(
                f"{where}: {model.name} has no parameter {name!r}; its parameters are "
                f"{', '.join(model.parameter_names)}")
        value = to_si(value, f"{where}: parameter '{name}'", model.dims[name])
        checked_tensor(value, f"{where}: parameter '{name}'", torch.float64, torch.device("cpu"))
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else np.shape(value)
        if len(shape) > 1 or (len(shape) == 1 and shape[0] not in (1, n)):
            raise ShapeError(f"{where}: parameter '{name}' has shape {shape}; expected a scalar or [n] = [{n}]")
        out[name] = value
    return out
