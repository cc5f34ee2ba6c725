"""``ts.simulate``: one call, either simulator."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from brian2 import second

from .inputs import infer_n, resolve
from .integrator import RunConfig, integrate, record_names
from .model import NeuronModel
from .result import SimulationResult
from .surrogate import Surrogate
from .surrogate import get as get_surrogate
from .units import to_si

__all__ = ["simulate", "n_steps_for"]

_EPSILON_DT = 1e-4  # Brian2's Clock.epsilon_dt


def n_steps_for(duration: float, dt: float) -> int:
    """Number of steps Brian2 takes for ``duration`` at ``dt`` (rounding up inexact ends)."""
    steps = int(np.round(duration / dt))
    if steps * dt == duration or abs(steps * dt - duration) / dt <= _EPSILON_DT:
        return steps
    return int(np.ceil(duration / dt))


def _time(value: Any, name: str) -> float:
    value = float(to_si(value, name, second.dim))
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive time, got {value} s")
    return value


def seeded_generator(seed: int | None, device: str | torch.device = "cpu") -> torch.Generator:
    """A simulation's own random generator: seeded by ``seed``, else freshly from the OS (the global
    RNG is never touched: a run's configuration travels with it)."""
    generator = torch.Generator(device=device)
    if seed is not None:
        generator.manual_seed(int(seed))
    else:
        generator.seed()
    return generator


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
        Spike surrogate gradient (name or :mod:`tidesim.surrogate` instance; default fast sigmoid
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
    """
    dt_s = _time(dt, "dt")
    duration_s = _time(duration, "duration")
    steps = n_steps_for(duration_s, dt_s)
    if n is None:
        n = infer_n(params, inputs)
    if int(n) < 1:
        raise ValueError(f"n must be a positive number of neurons, got {n}")
    n = int(n)
    if backend == "brian2":
        from .brian2_backend import run_brian2

        return run_brian2(model, duration_s, n=n, dt=dt_s, params=params, inputs=inputs, record=record,
                          initial=initial, seed=seed, target=target)
    if backend != "torch":
        raise ValueError(f"unknown backend {backend!r}; use 'torch' or 'brian2'")
    device = torch.device(device)
    if checkpoint is True:
        checkpoint = max(1, int(np.ceil(np.sqrt(steps))))
    for name, value in (("tbptt", tbptt), ("checkpoint", checkpoint)):
        if value is not None and value is not False and int(value) < 1:
            raise ValueError(f"{name} must be a positive number of steps, got {value}")
    res = resolve(model, n, steps, dt_s, params, inputs, dtype, device)
    cfg = RunConfig(n=n, dt=dt_s, n_steps=steps, dtype=dtype, device=device,
                    surrogate=get_surrogate(surrogate), record=record_names(model, record),
                    detach_reset=detach_reset, tbptt=int(tbptt) if tbptt else None,
                    checkpoint=int(checkpoint) if checkpoint else None, engine=engine)
    if engine not in ("auto", "compiled", "eager"):
        raise ValueError(f"unknown engine {engine!r}; use 'auto', 'compiled' or 'eager'")
    generator = seeded_generator(seed, device)
    bar = _progress_bar(steps, model.name) if progress else None
    try:
        out = integrate(model, res, cfg, generator, initial=dict(initial or {}),
                        progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    t = torch.arange(steps, dtype=dtype, device=device) * dt_s
    used = {**res.params, **{k: torch.stack(v) for k, v in res.series.items()}}
    return SimulationResult(model, t, out.records, out.spikes, dt_s, "torch", params=used,
                            final_state=out.final_state)


def _progress_bar(total: int, name: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"simulating {name}", unit="step")

