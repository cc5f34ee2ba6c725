"""``ts.fit``: parameter inversion of a model against recorded sweeps."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd
import torch

from tidesim.core.files import check_new, check_writable_dir
from tidesim.core.synapses import SynapseModel
from tidesim.fitting.data import prepare
from tidesim.fitting.errors import FitError, FitWarning
from tidesim.fitting.losses import as_loss
from tidesim.fitting.parameters import ParameterSpace
from tidesim.fitting.plasticity import fit_rule
from tidesim.fitting.problem import Problem
from tidesim.fitting.result import FitResult
from tidesim.fitting.sbi_training import sbi_fit
from tidesim.fitting.search import search
from tidesim.fitting.staged import family_of
from tidesim.fitting.staged_api import check_staged, staged_fit

__all__ = ["fit"]


def fit(
    model,
    recordings,
    params: Mapping[str, Any] | None = None,
    loss: Any = "default",
    input: str = "I",
    voltage: str = "v",
    method: str = "auto",
    n_starts: int = 16,
    max_iter: int = 200,
    lr: float = 0.05,
    patience: int = 30,
    tol: float = 1e-4,
    schedule: str | None = "cosine",
    starts: str = "sobol",
    dt: float | None = None,
    window: tuple[float, float] | None = None,
    sweeps: Sequence[int] | None = None,
    fixed: Mapping[str, Any] | None = None,
    refine: int | None = None,
    refine_lr: float | None = None,
    seed: int | None = 0,
    progress: bool = False,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 10,
    resume: str | Path | None = None,
    callback: Callable | None = None,
    engine: str = "auto",
    surrogate: Any = None,
    n_simulations: int = 2000,
    n_samples: int = 1000,
    sbi_options: Mapping[str, Any] | None = None,
) -> FitResult:
    """Fit ``params`` of ``model`` to the sweeps of ``recordings``.

    Parameters
    ----------
    model
        A :class:`~tidesim.NeuronModel` (e.g. ``ts.models.get("adex")``), or a plasticity rule
        (:class:`~tidesim.SynapseModel`, e.g. ``ts.models.plasticity.stdp_triplet()``): its
        constants are then fitted to a table of pairing protocols and measured relative weight
        changes (see :func:`tidesim.fitting.plasticity.fit_rule`; returns a ``RuleFitResult``).
    recordings
        A :class:`~tidesim.datasets.Recording` or a list of them (same sampling and sweep length);
        every sweep is fitted together, each driven by its own recorded current. For a rule: the
        protocol table (DataFrame or CSV path).
    params
        ``{name: (low, high)}`` bounds in SI or as quantities (``(low, high, "log")`` for a log
        scale); every other parameter keeps the model's value (or ``fixed``'s). Leave it out for the zoo
        families a staged fit knows (GIF, MAT, GLIF 1-5, AdEx, AdEx with adaptive threshold): their
        parameters are then estimated from the data (``method="staged"``).
    loss
        A name (``"default"``: sub-threshold trace with spike windows masked + van Rossum + spike
        count; ``"trace"``, ``"spikes"``, ``"gamma"``, ``"latency"``, ``"count"``), a
        :mod:`tidesim.fitting` Loss (they add and scale), or ``fn(out, data) -> [n_starts]``.
    input, voltage
        The model parameter driven by the recorded current (A) and the state compared with the
        recorded membrane potential (V).
    method
        ``"staged"`` (the default when ``params`` is left out for a model that has it, see
        :mod:`tidesim.fitting.staged`): sub-threshold regression, threshold likelihood, the hard
        threshold's level, then ``refine`` gradient steps through the simulator;
        ``"auto"`` (default with ``params``): differential evolution, then ``refine`` gradient steps on the
        trace part of the loss; ``"adam"``, ``"lbfgs"``: gradient-based, all starts in one
        batched simulation; ``"de"``: scipy's differential evolution, gradient-free, ``n_starts``
        points per generation, each generation one batched simulation. Surrogate gradients of
        spike-train losses are unreliable for models with fast spike upswings (AdEx): their sign
        often disagrees with the loss's slope over a finite step, hence the default.
    n_starts, starts, seed
        Starting points spread over the bounds (``"sobol"`` or ``"lhs"``), reproducible by seed.
    max_iter, lr, patience, tol, schedule
        Iterations, Adam's step in the transformed space, early stopping (a start stops after
        ``patience`` iterations without a relative improvement of ``tol``), learning-rate
        schedule (``"cosine"`` or None).
    dt, window, sweeps
        Integration step (s; a whole multiple of the recording's sampling interval, the data are
        averaged to it), the part of each sweep to fit (s), and which sweeps to fit.
    refine, refine_lr
        After the search, this many Adam iterations (step ``refine_lr``, default 0.01; 0.001 for a staged
        fit's stage c, whose starting point is already close) from the best point
        (default: 50 for ``method="auto"``, none otherwise; ``refine=0`` switches it off).
    checkpoint, checkpoint_every, resume
        Save the optimiser state to the file ``checkpoint`` every ``checkpoint_every`` iterations
        (generations for ``"de"``/``"auto"``), atomically; ``resume=path`` goes on from such a file and
        ends where an uninterrupted fit would. A checkpoint carries the fit's fingerprint (model,
        parameters and bounds, data, loss, method, seed, settings, tidesim version): another fit's
        checkpoint is refused with what differs, and an existing checkpoint is never overwritten
        by a fit that does not resume it. Checkpoint files hold tensors and numbers only and are read
        with ``torch.load(weights_only=True)``. Staged and sbi fits do not checkpoint.
    n_simulations, n_samples, sbi_options
        ``method="sbi"``: posterior inference by neural posterior estimation (:mod:`tidesim.fitting.sbi`):
        ``n_simulations`` prior draws simulated on the recordings' protocol train the estimator, then
        ``n_samples`` posterior draws make ``fit.samples``; ``best_params`` are their marginal medians.
        ``sbi_options`` go to :func:`tidesim.fitting.sbi.train` (``noise``, ``statistics``,
        ``density_estimator``, ``max_epochs``, ``client``, ...). ``loss``, ``n_starts`` and the
        optimiser settings do not apply.
    """
    if isinstance(model, SynapseModel):  # a plasticity rule fitted to a table of protocols -> weight change

        return fit_rule(model, recordings, params, fixed=fixed, n_starts=n_starts, max_iter=max_iter, lr=lr,
                        seed=seed, progress=progress)
    if fixed:
        model = model.with_params(**fixed)
    recs = recordings if isinstance(recordings, (list, tuple)) else [recordings]
    if sweeps is not None:
        recs = [r.select(sweeps) for r in recs]
    staged = method == "staged" or (method == "auto" and params is None and family_of(model) is not None)
    _check_checkpointing(checkpoint, resume, "staged" if staged else method)
    if staged:
        check_staged(model, params, input, voltage)
        return _warned(staged_fit(model, prepare(recs, dt=dt, window=window), input=input, voltage=voltage,
                                  refine=refine or 0, lr=refine_lr or 1e-3, engine=engine, seed=seed,
                                  progress=progress, settings={"window": window}))
    if params is None:
        raise FitError(f"give the parameters to fit with their bounds, params={{name: (low, high)}}: {model.name} "
                       "has no staged fit that estimates them from the data")
    if method == "sbi":  # posterior samples instead of an optimum (fitting/sbi.py)

        return sbi_fit(model, recs, params, n_simulations=n_simulations, n_samples=n_samples, seed=seed,
                       window=window, input=input, voltage=voltage, dt=dt, engine=engine, progress=progress,
                       **dict(sbi_options or {}))
    space = ParameterSpace(model, params)
    loss_fn = as_loss(loss)
    data = prepare(recs, dt=dt, window=window)
    if method in ("adam", "lbfgs") and not loss_fn.differentiable:
        raise FitError(f"the loss {loss_fn!r} is not differentiable; use method='de' for it")
    if loss_fn.needs_spikes and float(data.counts.sum()) == 0:
        raise FitError(f"the loss {loss_fn!r} compares spike trains, but the fitted sweeps "
                       f"({', '.join(data.names)}) hold no spikes; use loss='trace' or add spiking sweeps")
    problem = Problem(model, data, space, input=input, voltage=voltage, engine=engine, surrogate=surrogate)
    t0 = time.perf_counter()
    state, label = search(problem, loss_fn, method, n_starts=n_starts, starts=starts, max_iter=max_iter, lr=lr,
                          patience=patience, tol=tol, schedule=schedule, seed=seed, refine=refine,
                          refine_lr=refine_lr, progress=progress, callback=callback, checkpoint=checkpoint,
                          checkpoint_every=checkpoint_every, resume=resume)
    elapsed = time.perf_counter() - t0
    x = space.to_physical(state.best_z)
    best = int(torch.argmin(state.best_loss))
    rows = []
    for b in range(x.shape[0]):
        rows.append({"start": b, **space.as_dict(x[b]), "loss": float(state.best_loss[b]),
                     "status": state.failed.get(b, "ok")})
    settings = {"method": label, "loss": repr(loss_fn), "dt": data.dt, "window": window, "input": input,
                "voltage": voltage, "n_starts": n_starts, "seed": seed, "max_iter": max_iter, "lr": lr,
                "iterations": state.iteration, "evaluations": state.evaluations, "seconds": elapsed,
                "sweeps": data.names, "bounds": space.describe(), "model": model.name,
                "warnings": space.on_bounds(space.as_dict(x[best]))}
    return _warned(FitResult(model, space.as_dict(x[best]), state.best_loss.numpy().copy(), pd.DataFrame(rows),
                             pd.DataFrame(state.history), settings, data=data))


def _check_checkpointing(checkpoint, resume, method: str) -> None:
    """Refuse at once what would lose work: a method that cannot checkpoint, or a new fit over a checkpoint."""
    if (checkpoint is not None or resume is not None) and method in ("staged", "sbi"):
        raise FitError(f"method={method!r} does not write or resume checkpoints (checkpoint=/resume= work with "
                       "'auto', 'de', 'adam' and 'lbfgs'); leave them out")
    if checkpoint is not None:
        if resume is None or Path(resume).resolve() != Path(checkpoint).resolve():
            check_new([checkpoint], False, "the fit's checkpoint", f"pass resume={str(checkpoint)!r} to go on "
                      "from it, or delete the file to start over")
        check_writable_dir(Path(checkpoint).parent, "the checkpoint's folder")


def _warned(result: FitResult) -> FitResult:
    """Say what the fit itself flagged (a value on its bound, a stage that explains the data poorly)."""
    for message in result.warnings:
        warnings.warn(f"{result.base_model.name}: {message}", FitWarning, stacklevel=3)
    return result
