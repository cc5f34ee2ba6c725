"""The staged fit as ``ts.fit`` runs it (``method="staged"``): data in, a FitResult out."""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from tidesim.fitting.data import FitData
from tidesim.fitting.errors import FitError
from tidesim.fitting.losses import SpikeCount, VanRossum
from tidesim.fitting.optimise import gradient_fit
from tidesim.fitting.parameters import ParameterSpace
from tidesim.fitting.problem import Problem, check_io
from tidesim.fitting.result import FitResult, _jsonable
from tidesim.fitting.staged import _delta_for, _score, bounds_around, family_of, run_stages, threshold_level

__all__ = ["staged_fit"]


def staged_fit(model, data: FitData, input: str = "I", voltage: str = "v", refine: int = 0, lr: float = 0.01,
               t_ref: float | None = None, electrode: Sequence[int] = (-1, 0, 1), lags: Sequence[int] = (0, 1),
               engine: str = "auto", seed: int | None = 0, progress: bool = False, rest: str = "baseline",
               settings: dict[str, Any] | None = None) -> FitResult:
    """Stages a, b (and b' for a hard threshold), then ``refine`` gradient steps (see
    :mod:`tidesim.fitting.staged`); returns a FitResult whose ``settings["stages"]`` report each stage."""
    fam = family_of(model)
    t0 = time.perf_counter()
    est = run_stages(model, data, t_ref=t_ref, electrode=electrode, lags=lags, rest=rest)
    data = data.with_bias(est.bias(data))
    names = list(est.params)
    problem = Problem(model, data, names, input=input, voltage=voltage, engine=engine)
    delta = _delta_for(data)
    if fam.level is not None:
        threshold_level(problem, est, fam.level, delta)
    x = torch.tensor([[est.params[n] for n in names]], dtype=torch.float64)
    history = []
    if model.stochastic:
        error = float("nan")  # a stochastic model's spikes are compared in distribution (fit.score)
    else:
        with torch.no_grad():
            error = float(_score(problem.simulate(x), data, delta)[0])
    if refine and not model.stochastic:
        x, error, history = _refine(model, problem, est, names, refine, lr, delta, error, progress, seed)
    best = dict(zip(names, x[0].tolist()))
    stages = [_jsonable(s) for s in est.stages]
    out_settings = {**dict(settings or {}), "method": "staged", "loss": "rate-corrected coincidence error",
                    "delta": delta, "input": input, "voltage": voltage, "dt": data.dt, "sweeps": data.names,
                    "seconds": time.perf_counter() - t0, "stages": stages, "model": model.name,
                    "bounds": {}, "seed": seed, "rest": est.rest,
                    "warnings": [w for stage in stages for w in stage.get("warnings", [])]}
    starts = pd.DataFrame([{"start": 0, **best, "loss": error, "status": "ok"}])
    return FitResult(model, best, np.array([error]), starts, pd.DataFrame(history), out_settings, data=data)


def _refine(model, problem: Problem, est, names, steps: int, lr: float, delta: float, error: float,
            progress: bool, seed) -> tuple[torch.Tensor, float, list]:
    """Stage c: Adam through the simulator on van Rossum distance + spike count, from the staged point;
    kept where it lowers the rate-corrected coincidence error on the fitted sweeps."""
    t0 = time.perf_counter()
    tunable = [n for n in names if n not in ("T_ref", "t_ref")]
    fixed = {n: est.params[n] for n in names if n not in tunable}
    space = ParameterSpace(model.with_params(**fixed), bounds_around(model, {n: est.params[n] for n in tunable}))
    refine_problem = Problem(model.with_params(**fixed), problem.data, space, input=problem.input,
                             voltage=problem.voltage, engine=problem.engine)
    z0 = space.to_free(torch.tensor([[est.params[n] for n in tunable]], dtype=torch.float64))
    loss = VanRossum(10e-3) + SpikeCount() * 0.1
    state = gradient_fit(refine_problem, loss, z0, optimizer="adam", lr=lr, max_iter=steps, patience=steps,
                         tol=0.0, schedule="cosine", progress=progress)
    refined = {**fixed, **space.as_dict(space.to_physical(state.best_z)[0])}
    x = torch.tensor([[refined[n] for n in names]], dtype=torch.float64)
    with torch.no_grad():
        new_error = float(_score(problem.simulate(x), problem.data, delta)[0])
    kept = np.isfinite(new_error) and new_error < error
    est.stages.append({"stage": "c: refinement", "how": f"{steps} Adam steps through the simulator (surrogate "
                       "gradients) on van Rossum distance + spike count, all parameters at once",
                       "estimated": refined if kept else {}, "quality": {"error_before": error,
                       "error_after": new_error, "kept": bool(kept)}, "seconds": time.perf_counter() - t0})
    if not kept:
        x = torch.tensor([[est.params[n] for n in names]], dtype=torch.float64)
        return x, error, state.history
    return x, new_error, state.history


def check_staged(model, params, input: str = "I", voltage: str = "v") -> None:
    """A staged fit estimates every parameter itself (``params`` would be bounds nobody uses), of a model of
    a family it knows, with the input and voltage named."""
    check_io(model, input, voltage)
    if family_of(model) is None:
        raise FitError(f"method='staged' needs a zoo model of a family it knows (gif, mat, glif1-5, adex, "
                       f"adex_threshold), not {model.name}")
