"""The search of a bounded fit (differential evolution, Adam, L-BFGS), with checkpoints and resume.

Every method checkpoints the same way: ``checkpoint=path`` is rewritten atomically every
``checkpoint_every`` iterations (generations) with the optimiser's state and the fit's fingerprint
(:mod:`tidesim.fitting.checkpoint`); ``resume=path`` goes on from it and ends where the
uninterrupted fit would. ``method="auto"`` checkpoints its differential evolution; the gradient
polishing after it (``refine`` steps, short) reruns from the search's best point on resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from tidesim.fitting.checkpoint import fingerprint, load_checkpoint, save_checkpoint
from tidesim.fitting.errors import FitError
from tidesim.fitting.losses import Sum, TraceMSE
from tidesim.fitting.optimise import OptimState, evolution_fit, gradient_fit, state_dict, state_from_dict
from tidesim.fitting.problem import Problem

__all__ = ["search"]

_METHODS = ("auto", "adam", "lbfgs", "de")


def search(problem: Problem, loss_fn, method: str, *, n_starts: int, starts: str, max_iter: int, lr: float,
           patience: int, tol: float, schedule: str | None, seed: int | None, refine: int | None,
           refine_lr: float | None, progress: bool = False, callback: Callable | None = None,
           checkpoint: str | Path | None = None, checkpoint_every: int = 10,
           resume: str | Path | None = None) -> tuple[OptimState, str]:
    """Run the search ``method`` on ``problem``; returns the final state and how to name the method."""
    if method not in _METHODS:
        raise FitError(f"method must be 'auto', 'staged', 'adam', 'lbfgs', 'de' or 'sbi', got {method!r}")
    label = method
    if method == "auto":  # global search, then gradient polishing of the sub-threshold trace
        refine = 50 if refine is None else refine
        label = ("auto (differential evolution, then "
                 + (f"{refine} Adam steps on the trace)" if refine else "no gradient polishing)"))
    kind = "de" if method == "auto" else method
    # max_iter is left out: a resumed fit may be given more iterations
    fp = fingerprint(problem, loss_fn, method, seed, n_starts=n_starts, starts=starts, lr=lr,
                     patience=patience, tol=tol, schedule=schedule, refine=refine, refine_lr=refine_lr)
    saved = load_checkpoint(resume, fp) if resume is not None else None
    save = None
    if checkpoint is not None:
        path = Path(checkpoint)

        def save(state: OptimState, extra: dict) -> None:
            save_checkpoint(path, {"state": state_dict(state), "extra": extra}, fp)

    resumed = _resumed(saved, n_starts if kind != "de" else 1, len(problem.space), resume)
    if kind == "de":
        state = evolution_fit(problem, loss_fn, popsize=n_starts, max_iter=max_iter, seed=seed, progress=progress,
                              callback=callback, checkpoint=save, checkpoint_every=checkpoint_every,
                              resume=resumed)
    else:
        space = problem.space
        z0 = space.to_free(space.starts(n_starts, seed=seed, method=starts))
        state = gradient_fit(problem, loss_fn, z0, optimizer=kind, lr=lr, max_iter=max_iter, patience=patience,
                             tol=tol, schedule=schedule, checkpoint=save, checkpoint_every=checkpoint_every,
                             resume=resumed[0] if resumed else None, progress=progress, callback=callback)
    if refine:
        _polish(problem, loss_fn, state, refine, refine_lr or 0.01)
    return state, label


def _resumed(saved: dict | None, rows: int, d: int, where: Any) -> tuple[OptimState, dict] | None:
    if saved is None:
        return None
    try:
        state, extra = state_from_dict(saved["state"]), dict(saved["extra"])
    except (KeyError, TypeError) as exc:
        raise FitError(f"checkpoint {where} is incomplete ({exc})") from None
    if tuple(state.z.shape) != (rows, d):
        raise FitError(f"checkpoint {where} holds {state.z.shape[0]} starts x {state.z.shape[1]} parameters; "
                       f"this fit has {rows} x {d}")
    return state, extra


def _polish(problem: Problem, loss_fn, state: OptimState, steps: int, lr: float) -> None:
    """Adam from the best point on the loss's smooth part (the masked trace, whose gradient is
    exact while the spike pattern holds); kept only where the full loss improves."""
    terms = [(w, t) for w, t in loss_fn.terms() if isinstance(t, TraceMSE)]
    smooth = Sum(terms) if terms else loss_fn
    best = int(torch.argmin(state.best_loss))
    polished = gradient_fit(problem, smooth, state.best_z[best:best + 1].clone(), optimizer="adam", lr=lr,
                            max_iter=steps, patience=steps, tol=0.0, schedule="cosine")
    with torch.no_grad():
        full = loss_fn(problem.simulate(problem.space.to_physical(polished.best_z)), problem.data)[0]
    if torch.isfinite(full) and full < state.best_loss[best]:
        state.best_loss[best] = full
        state.best_z[best] = polished.best_z[0]
        x = problem.space.to_physical(polished.best_z)[0]
        state.history.append({"iteration": state.iteration + 1, "start": best, "loss": float(full),
                              **problem.space.as_dict(x)})
