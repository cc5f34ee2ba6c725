"""``ts.simulate``: one call, either simulator."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from tidesim.core.errors import InputError
from tidesim.core.inputs import (
    check_dtype,
    check_memory,
    check_run_length,
    check_time,
    infer_n,
    n_steps_for,
    record_names,
    resolve,
    seeded_generator,
)
from tidesim.core.model import NeuronModel
from tidesim.core.network import NetworkDescription
from tidesim.core.result import SimulationResult
from tidesim.core.surrogate import Surrogate
from tidesim.core.surrogate import get as get_surrogate
from tidesim.engines import table
from tidesim.engines.requests import NetworkRun, NeuronRun, RunConfig

__all__ = ["simulate", "simulate_network"]


def simulate(
    model: NeuronModel,
    duration: Any,
    n: int | None = None,
    dt: Any = 1e-4,
    params: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    record: Sequence[str] | None = None,
    backend: str = "torch",
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    initial: Mapping[str, Any] | None = None,
    surrogate: str | Surrogate | None = None,
    detach_reset: bool = True,
    tbptt: int | None = None,
    checkpoint: int | bool | None = None,
    seed: int | None = None,
    progress: bool = False,
    target: str = "auto",
    engine: str = "auto",
    threads: int | None = None,
) -> SimulationResult:
    """Simulate ``n`` neurons of ``model`` for ``duration``.

    Parameters
    ----------
    model
        A :class:`~tidesim.NeuronModel` (e.g. ``ts.models.get("adex")``).
    duration, dt
        Seconds (floats) or Brian2 quantities. Default ``dt`` is 0.1 ms.
    n
        Number of neurons; default: the length of per-neuron parameters, else 1.
    params
        Parameter values overriding the model's defaults: scalars (SI or quantities) or ``[n]``
        tensors, which may require grad.
    inputs
        Time-varying parameters (e.g. ``{"I": 0.5e-9}``): a scalar, ``[T]``, ``[T, n]`` or a
        callable of time in seconds.
    record
        Variables to record (default every state; ``[]`` keeps spikes only).
    backend
        ``"torch"`` (differentiable) or ``"brian2"`` (the reference simulator).
    dtype, device
        Torch dtype (float64 by default, float32 for speed) and device (``"cuda"``).
    initial
        Initial values overriding the model's (numbers, quantities, expressions, ``[n]`` tensors).
    surrogate, detach_reset
        Spike surrogate gradient (name or :mod:`tidesim.core.surrogate` instance; default fast sigmoid
        of slope 25 per mV of distance to threshold). The reset is differentiable in its own terms
        (``w += b`` gives ``dw/db``); ``detach_reset=False`` also passes the spike's surrogate
        gradient through the reset. Detaching is the default, as in snnTorch: the full reset
        multiplies the gradient by ``(V_reset - v)/threshold_scale`` at every spike, which
        explodes over long spike trains (Zenke & Vogels 2021, Neural Comput. 33:899).
    tbptt
        Detach the state every ``tbptt`` steps (truncated backpropagation through time).
    checkpoint
        Recompute segments of this many steps in the backward pass (``True``: sqrt(T)).
    seed
        Seed of the noise generator (for equations with ``xi``).
    progress
        Show a tqdm progress bar.
    target
        Brian2 code target (``"cython"``, ``"numpy"``, ``"auto"``): brian2 backend only.
    engine
        torch backend only: ``"compiled"`` runs the time loop in generated C (CPU; forward and
        adjoint kernels), ``"eager"`` steps in torch (any device, noise, custom surrogates),
        ``"auto"`` (default) picks compiled where it can run.
    threads
        Compiled engine, runs without gradients: threads over neurons (default: torch's thread count,
        with at least 10,000 neurons per thread). Neurons are independent, so results do not depend on it.
    """
    dt_s = check_time(dt, "dt")
    duration_s = check_time(duration, "duration")
    check_run_length(duration_s, dt_s)
    steps = n_steps_for(duration_s, dt_s)
    n = _population_size(n, params, inputs)
    dtype = check_dtype(dtype)
    if backend not in ("torch", "brian2"):
        raise ValueError(f"unknown backend {backend!r}; use 'torch' or 'brian2'")
    if backend == "brian2":  # the reference runs float64 on the CPU whatever the torch run uses
        dtype, device, engine = torch.float64, "cpu", "brian2"
    elif engine not in ("auto", "compiled", "eager"):
        raise ValueError(f"unknown engine {engine!r}; use 'auto', 'compiled' or 'eager'")
    device = torch.device(device)
    if checkpoint is True:
        checkpoint = max(1, int(np.ceil(np.sqrt(steps))))
    for name, value in (("tbptt", tbptt), ("checkpoint", checkpoint)):
        if value is not None and value is not False and int(value) < 1:
            raise ValueError(f"{name} must be a positive number of steps, got {value}")
    recorded = record_names(model, record)
    # what every engine allocates; each engine adds its own (spike raster, stored states) before it runs
    check_memory(n, steps, len(recorded), dtype, device, model.name, raster=False)
    res = resolve(model, n, steps, dt_s, params, inputs, dtype, device)
    cfg = RunConfig(n=n, dt=dt_s, n_steps=steps, dtype=dtype, device=device,
                    surrogate=get_surrogate(surrogate), record=recorded,
                    detach_reset=detach_reset, tbptt=int(tbptt) if tbptt else None,
                    checkpoint=int(checkpoint) if checkpoint else None, threads=_threads(threads))
    initial = dict(initial or {})
    model.check_initial(initial)
    bar = _progress_bar(steps, model.name) if progress else None
    request = NeuronRun(model, res, cfg, seeded_generator(seed, device), initial,
                        progress=bar.update if bar else None, seed=seed, target=target)
    try:
        return table.run("neuron", engine, request)
    finally:
        if bar is not None:
            bar.close()


def _positive_whole(value: Any, name: str, of: str = "") -> int:
    """``value`` as an int, or an InputError naming the argument (and, in ``of``, what it counts)."""
    try:
        whole = not isinstance(value, bool) and float(value).is_integer() and int(value) >= 1
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole:
        raise InputError(f"{name} must be a positive whole number{of}, got {value!r}")
    return int(value)


def _threads(threads: Any) -> int | None:
    return None if threads is None else _positive_whole(threads, "threads")


def _population_size(n: Any, params: Mapping[str, Any] | None, inputs: Mapping[str, Any] | None) -> int:
    """``n`` as given (a positive whole number of neurons), else the size per-neuron values imply."""
    if n is None:
        return infer_n(params, inputs)
    return _positive_whole(n, "n", " of neurons")


def simulate_network(net: NetworkDescription, duration: Any, dt: Any = 1e-4,
                     inputs: Mapping[str, Mapping[str, Any]] | None = None,
                     record: Mapping[str, Sequence[str]] | None = None, dtype: torch.dtype = torch.float64,
                     surrogate: Any = None, seed: int | None = None, backend: str = "torch", target: str = "auto",
                     checkpoint: int | None = None, engine: str = "auto") -> dict[str, SimulationResult]:
    """Simulate a network description (see :meth:`tidesim.Network.run`, which calls this)."""
    if backend not in ("torch", "brian2"):
        raise ValueError(f"backend must be 'torch' or 'brian2', got {backend!r}")
    if backend == "brian2":
        engine = "brian2"
    elif engine not in ("auto", "compiled", "eager"):
        raise ValueError(f"engine must be 'auto', 'compiled' or 'eager', got {engine!r}")
    inputs, record, _ = net.run_arguments(inputs, record)
    if checkpoint is not None and int(checkpoint) < 1:
        raise ValueError(f"checkpoint must be a positive number of steps, got {checkpoint}")
    duration_s, dt_s = check_time(duration, "duration"), check_time(dt, "dt")
    check_run_length(duration_s, dt_s)
    request = NetworkRun(net, duration_s, dt_s, inputs, record, check_dtype(dtype),
                         get_surrogate(surrogate), seed, target, int(checkpoint) if checkpoint else None)
    return table.run("network", engine, request)


def _progress_bar(total: int, name: str) -> Any:
    return tqdm(total=total, desc=f"simulating {name}", unit="step")

