"""The optimisation loops: gradient-based multi-start (Adam, L-BFGS) and differential evolution.

Every start runs in the same batched simulation. A start whose loss or gradient turns NaN/inf,
or whose simulation blows up, is stopped and reported; the others go on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from scipy.optimize import differential_evolution
from tqdm.auto import tqdm

from tidesim.core.errors import NumericalInstabilityError
from tidesim.fitting.errors import FitDiverged, FitError
from tidesim.fitting.losses import Loss
from tidesim.fitting.problem import Problem

__all__ = ["OptimState", "gradient_fit", "evolution_fit"]


@dataclass
class OptimState:
    """Everything a fit needs to go on from where it stopped (saved at checkpoints)."""

    iteration: int
    z: torch.Tensor  # [B, d] free values now
    best_z: torch.Tensor  # [B, d] each start's best so far
    best_loss: torch.Tensor  # [B]
    stale: torch.Tensor  # [B] iterations without improvement
    active: torch.Tensor  # [B] still optimising
    failed: dict[int, str] = field(default_factory=dict)  # start -> why it was stopped
    history: list[dict] = field(default_factory=list)
    optimizer: dict | None = None
    scheduler: dict | None = None
    evaluations: int = 0
    seconds: float = 0.0


#: ``save(state, extra)``: writes a checkpoint (see :mod:`tidesim.fitting.checkpoint`).
Saver = Callable[[OptimState, dict], None]


def state_dict(state: OptimState) -> dict:
    """The checkpointable form of ``state`` (tensors, numbers, text and containers of them)."""
    return dict(vars(state))


def state_from_dict(d: dict) -> OptimState:
    """:class:`OptimState` from :func:`state_dict`'s output."""
    try:
        return OptimState(**d)
    except TypeError as exc:
        raise FitError(f"the checkpoint's optimiser state is incomplete: {exc}") from None


def _fail(state: OptimState, b: int, why: str) -> None:
    if b not in state.failed:
        state.failed[b] = why
    state.active[b] = False


def _optimizer(z: torch.Tensor, optimizer: str, lr: float, max_iter: int, schedule: str | None,
               state: OptimState):
    """The torch optimizer (and learning-rate schedule) over ``z``, restored from ``state`` if it holds one."""
    if optimizer == "adam":
        opt = torch.optim.Adam([z], lr=lr)
    elif optimizer == "lbfgs":
        opt = torch.optim.LBFGS([z], lr=1.0, max_iter=10, line_search_fn="strong_wolfe")
    else:
        raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_iter, eta_min=0.05 * lr)
             if schedule == "cosine" and optimizer == "adam" else None)
    if state.optimizer is not None:
        opt.load_state_dict(state.optimizer)
    if sched is not None and state.scheduler is not None:
        sched.load_state_dict(state.scheduler)
    return opt, sched


def _evaluate(problem: Problem, loss: Loss, state: OptimState, z: torch.Tensor, last: dict) -> torch.Tensor:
    """Loss of every start at z, with the gradient of the active starts' sum. Stopped starts
    sit at their best point (mid-range if they never had one) while the others go on."""
    space, S = problem.space, problem.data.n_sweeps
    midrange: set[int] = set()
    while True:
        had = torch.isfinite(state.best_loss)[:, None]
        park = torch.where(had, state.best_z, torch.zeros_like(state.best_z))
        for b in midrange:
            park[b] = 0.0
        x = space.to_physical(torch.where(state.active.clone()[:, None], z, park))
        try:
            out = problem.simulate(x)
            break
        except NumericalInstabilityError as err:  # stop that start, rerun the others unchanged
            b = (err.neuron or 0) // S
            if not state.active[b]:  # its parking point blew up too
                if b in midrange:
                    raise
                midrange.add(b)
            _fail(state, b, f"simulation blew up at iteration {state.iteration}: {err}")
    values = loss(out, problem.data)
    state.evaluations += 1
    finite = torch.isfinite(values)
    for b in torch.nonzero(~finite & state.active).flatten().tolist():
        _fail(state, b, f"loss became {values[b].item()} at iteration {state.iteration}")
    use = state.active & finite
    total = torch.where(use, values, torch.zeros_like(values)).sum()
    last["values"] = values.detach()
    return total


def gradient_fit(problem: Problem, loss: Loss, z0: torch.Tensor, optimizer: str = "adam", lr: float = 0.05,
                 max_iter: int = 200, patience: int = 30, tol: float = 1e-4, schedule: str | None = "cosine",
                 checkpoint: Saver | None = None, checkpoint_every: int = 10,
                 resume: OptimState | None = None,
                 progress: bool = False, callback: Callable | None = None) -> OptimState:
    """Minimise ``loss`` from each row of ``z0`` (free coordinates), all starts in one batch."""
    space = problem.space
    B = z0.shape[0]
    if resume is not None:
        state = resume
    else:
        state = OptimState(0, z0.clone(), z0.clone(), torch.full((B,), float("inf"), dtype=torch.float64),
                           torch.zeros(B, dtype=torch.long), torch.ones(B, dtype=torch.bool))
    z = state.z.clone().requires_grad_(True)
    opt, sched = _optimizer(z, optimizer, lr, max_iter, schedule, state)
    bar = tqdm(total=max_iter, initial=state.iteration, disable=not progress, desc="fit", unit="it")
    last: dict = {}

    def closure():
        opt.zero_grad()
        total = _evaluate(problem, loss, state, z, last)
        if total.requires_grad:
            total.backward()
        if z.grad is not None:
            bad = ~torch.isfinite(z.grad).all(1) & state.active
            for b in torch.nonzero(bad).flatten().tolist():
                _fail(state, b, f"gradient became NaN/inf at iteration {state.iteration}")
            z.grad[~state.active] = 0
            z.grad.nan_to_num_(0.0)
        return total

    t0 = time.perf_counter()
    while state.iteration < max_iter and state.active.any():
        if optimizer == "lbfgs":
            before = z.detach().clone()
            opt.step(closure)
            with torch.no_grad():
                z[~state.active] = before[~state.active]
            z_eval = z.detach().clone()
            with torch.no_grad():  # LBFGS's last evaluation may not be at its final point
                out = problem.simulate(space.to_physical(z_eval))
                closure_values = loss(out, problem.data)
        else:
            closure()
            closure_values = last["values"]
            z_eval = z.detach().clone()
        _record(state, space, z_eval, closure_values, tol, patience)
        if callback is not None:
            callback(state)
        if optimizer == "adam" and state.active.any():
            frozen = z.detach().clone()
            opt.step()
            with torch.no_grad():
                z[~state.active] = frozen[~state.active]
            if sched is not None:
                sched.step()
        state.iteration += 1
        state.z = z.detach().clone()
        state.optimizer, state.scheduler = opt.state_dict(), (sched.state_dict() if sched else None)
        state.seconds += time.perf_counter() - t0
        t0 = time.perf_counter()
        bar.update(1)
        bar.set_postfix(best=f"{float(state.best_loss[torch.isfinite(state.best_loss)].min()):.4g}"
                        if torch.isfinite(state.best_loss).any() else "nan")
        if checkpoint is not None and state.iteration % checkpoint_every == 0:
            checkpoint(state, {})
    bar.close()
    if checkpoint is not None:
        checkpoint(state, {})
    if not torch.isfinite(state.best_loss).any():
        raise FitDiverged(_diverged_message(state))
    return state


def _record(state: OptimState, space, z_eval: torch.Tensor, values: torch.Tensor, tol: float, patience: int):
    x = space.to_physical(z_eval)
    for b in range(values.shape[0]):
        if b in state.failed and not torch.isfinite(values[b]):
            continue
        row = {"iteration": state.iteration, "start": b, "loss": float(values[b])}
        row.update(space.as_dict(x[b]))
        state.history.append(row)
    was = state.best_loss.clone()
    better = torch.isfinite(values) & (values < state.best_loss) & state.active
    state.best_loss = torch.where(better, values.to(state.best_loss.dtype), state.best_loss)
    state.best_z[better] = z_eval[better]
    significant = better & ((was - values) > tol * values.abs().clamp_min(1e-12))
    state.stale = torch.where(significant, torch.zeros_like(state.stale), state.stale + 1)
    state.active &= state.stale < patience


def _diverged_message(state: OptimState) -> str:
    lines = [f"start {b}: {why}" for b, why in sorted(state.failed.items())]
    return "every start of the fit failed:\n  " + "\n  ".join(lines) + \
        "\nNarrow the bounds, lower dt, or check the recording's units."


def evolution_fit(problem: Problem, loss: Loss, popsize: int = 32, max_iter: int = 100, seed: int | None = 0,
                  tol: float = 1e-6, progress: bool = False, callback: Callable | None = None,
                  checkpoint: Saver | None = None, checkpoint_every: int = 1,
                  resume: tuple[OptimState, dict] | None = None) -> OptimState:
    """Differential evolution (scipy) over the unit cube of the bounds; each generation is one
    batched simulation without gradients. Works with non-differentiable losses.

    ``checkpoint(state, {"population", "rng"})`` is called every ``checkpoint_every`` generations;
    ``resume=(state, extra)`` goes on from it with the same population and random stream, so the
    result equals an uninterrupted run's (the saved population is evaluated once more on resume).
    """
    space = problem.space
    d = len(space)
    rng = np.random.default_rng(seed)
    if resume is not None:
        state, extra = resume
        if "rng" in extra:
            rng.bit_generator.state = extra["rng"]
        init: Any = extra["population"].numpy() if "population" in extra else "sobol"
    else:
        inf = torch.full((1,), float("inf"), dtype=torch.float64)
        state = OptimState(0, torch.zeros(1, d), torch.zeros(1, d), inf,
                           torch.zeros(1, dtype=torch.long), torch.ones(1, dtype=torch.bool))
        init = "sobol"
    bar = tqdm(total=max_iter, initial=state.iteration, disable=not progress, desc="differential evolution",
               unit="gen")
    t0 = time.perf_counter() - state.seconds
    objective = _de_objective(problem, loss, state, replay=resume is not None)
    last: dict = dict(resume[1]) if resume is not None else {}

    def on_generation(intermediate_result):
        state.iteration += 1
        state.seconds = time.perf_counter() - t0
        bar.update(1)
        bar.set_postfix(best=f"{float(state.best_loss[0]):.4g}")
        if callback is not None:
            callback(state)
        last.update(population=torch.from_numpy(np.array(intermediate_result.population)),
                    rng=rng.bit_generator.state)
        if checkpoint is not None and state.iteration % checkpoint_every == 0:
            checkpoint(state, last)

    if not extra_done(resume):
        differential_evolution(objective, [(0.0, 1.0)] * d, popsize=max(1, popsize // d),
                               maxiter=max_iter - state.iteration, rng=rng, tol=tol, vectorized=True,
                               updating="deferred", polish=False, callback=on_generation, init=init)
        if checkpoint is not None:  # marks the search as finished: a resume goes straight to what follows
            checkpoint(state, {**last, "done": True})
    bar.close()
    state.z = state.best_z.clone()
    state.active[:] = False
    if not torch.isfinite(state.best_loss).any():
        raise FitDiverged("differential evolution found no parameter point with a finite loss")
    return state


def extra_done(resume: tuple[OptimState, dict] | None) -> bool:
    """Whether a resumed search had already finished."""
    return resume is not None and bool(resume[1].get("done", False))


def _de_objective(problem: Problem, loss: Loss, state: OptimState,
                  replay: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """The batched objective of differential evolution: one simulation per generation, history kept.
    ``replay``: the first call re-evaluates a resumed population, already in the history."""
    space = problem.space
    pending_replay = [replay]  # one flag, consumed by the first call

    def objective(u: np.ndarray) -> np.ndarray:
        u = np.atleast_2d(u.T if u.ndim == 2 else u[None])  # scipy passes [d, P]
        x = space.from_unit(u)
        with torch.no_grad():
            try:
                values = loss(problem.simulate(x), problem.data)
            except NumericalInstabilityError:
                values = torch.stack([loss(problem.simulate(x[p:p + 1]), problem.data)[0]
                                      if _stable(problem, x[p:p + 1]) else torch.tensor(np.inf)
                                      for p in range(len(x))])
        values = torch.nan_to_num(values.to(torch.float64), nan=np.inf)
        if pending_replay[0]:
            pending_replay[0] = False
            return values.numpy()
        state.evaluations += len(x)
        for p in range(len(x)):
            row = {"iteration": state.iteration, "start": 0, "loss": float(values[p])}
            row.update(space.as_dict(x[p]))
            state.history.append(row)
        best = int(torch.argmin(values))
        if values[best] < state.best_loss[0]:
            state.best_loss[0] = values[best]
            state.best_z[0] = space.to_free(x[best:best + 1])[0]
        return values.numpy()

    return objective


def _stable(problem: Problem, x: torch.Tensor) -> bool:
    try:
        problem.simulate(x)
        return True
    except NumericalInstabilityError:
        return False
