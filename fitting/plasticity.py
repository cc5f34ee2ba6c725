"""Fitting a plasticity rule's parameters to measured weight changes (a table of pairing
protocols), by gradient descent through the exact event engine of :mod:`tidesim.network.plasticity`.

The table has a row per protocol: ``delta_t_ms`` (post minus pre), ``frequency_hz``, the number of
pairings (``n_pairs``, else ``n_pairs_model``), the measured relative change ``dw_rel`` and
optionally its error ``dw_sem`` (rows are then weighted by 1/SEM²). All starts and protocols run
as one batch of synapses.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from tidesim.core.synapses import SynapseModel
from tidesim.fitting.errors import FitError
from tidesim.fitting.parameters import ParameterSpace
from tidesim.network.plasticity import pairing_times, run_pairs

__all__ = ["fit_rule", "RuleFitResult", "read_table"]


def read_table(table: pd.DataFrame | str | Path) -> pd.DataFrame:
    """A protocol table from a DataFrame or CSV path, with its columns checked."""
    df = pd.read_csv(table) if isinstance(table, (str, Path)) else pd.DataFrame(table).copy()
    if "n_pairs" not in df and "n_pairs_model" in df:
        df["n_pairs"] = df["n_pairs_model"]
    missing = [c for c in ("delta_t_ms", "frequency_hz", "n_pairs", "dw_rel") if c not in df]
    if missing:
        raise FitError(f"the protocol table lacks column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                       f"it has {', '.join(map(str, df.columns))}")
    if df.empty:
        raise FitError("the protocol table has no rows")
    return df


def _trains(df: pd.DataFrame):
    pre, post = [], []
    for dt_ms, f, n in zip(df["delta_t_ms"], df["frequency_hz"], df["n_pairs"]):
        a, b = pairing_times(float(dt_ms) * 1e-3, float(f), int(n))
        pre.append(a)
        post.append(b)
    return pre, post


def predict_rule(rule: SynapseModel, table, params: Mapping[str, Any] | None = None, w0: float = 1.0,
                 dt: float = 1e-4) -> torch.Tensor:
    """Relative weight change ``[P]`` the rule predicts for each protocol of ``table``."""
    df = read_table(table)
    pre, post = _trains(df)
    w = run_pairs(rule, pre, post, dt=dt, initial={"w": w0}, params=params)["w"]
    return (w - w0) / w0


class RuleFitResult:
    """What :func:`fit_rule` found: ``best_params`` (SI), ``loss`` (mean squared error in units of
    the SEM, or of 1 without SEMs), ``starts``/``history`` DataFrames, ``settings``."""

    def __init__(self, rule, best_params, loss, starts, history, settings, table):
        self.rule, self.best_params, self.loss = rule, dict(best_params), float(loss)
        self.starts, self.history, self.settings, self.table = starts, history, settings, table

    def predict(self, table=None) -> pd.DataFrame:
        """The table with the fitted rule's ``dw_model`` beside the measured ``dw_rel``."""
        df = read_table(self.table if table is None else table)
        with torch.no_grad():
            dw = predict_rule(self.rule, df, self.best_params, w0=self.settings["w0"], dt=self.settings["dt"])
        return df.assign(dw_model=dw.numpy())

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v:.4g}" for k, v in self.best_params.items())
        return f"RuleFitResult({self.rule.name}: {ps}; loss {self.loss:.4g})"


def fit_rule(rule: SynapseModel, table, params: Mapping[str, Any], fixed: Mapping[str, Any] | None = None,
             n_starts: int = 16, max_iter: int = 150, lr: float = 0.1, w0: float = 1.0, dt: float = 1e-4,
             seed: int | None = 0, progress: bool = False) -> RuleFitResult:
    """Fit the constants ``params`` (``{name: (low, high)}``, SI or quantities) of plasticity
    ``rule`` to the relative weight changes of ``table`` (see the module). ``fixed`` overrides other
    constants; ``w0`` is the initial weight (raise the rule's ``w_max`` so no bound clips it)."""
    df = read_table(table)
    for name in fixed or {}:
        if name not in rule.constant_dims:
            raise FitError(f"{rule.name} has no constant {name!r}; its constants are "
                           f"{', '.join(rule.constant_dims)}")
    space = ParameterSpace(SimpleNamespace(name=rule.name, parameter_names=list(rule.constant_dims),
                                           dims=rule.constant_dims), params)
    target = torch.tensor(df["dw_rel"].to_numpy(float))
    sem = torch.tensor(df["dw_sem"].to_numpy(float)) if "dw_sem" in df else torch.ones_like(target)
    if not torch.all(sem > 0):
        raise FitError("every dw_sem must be > 0 (it weights the rows)")
    pre, post = _trains(df)
    P, S = len(df), int(n_starts)
    fixed_si = {k: float(np.asarray(v)) for k, v in (fixed or {}).items()}
    z = space.to_free(space.starts(S, seed=seed)).clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max_iter, eta_min=0.05 * lr)
    best_loss = torch.full((S,), float("inf"), dtype=torch.float64)
    best_z = z.detach().clone()
    history = []
    t0 = time.perf_counter()
    for it in tqdm(range(max_iter), disable=not progress, desc="fit rule", unit="it"):
        opt.zero_grad()
        x = space.to_physical(z)
        consts = {name: x[:, k].repeat_interleave(P) for k, name in enumerate(space.names)}
        w = run_pairs(rule, pre * S, post * S, dt=dt, initial={"w": w0}, params={**fixed_si, **consts})["w"]
        dw = ((w - w0) / w0).reshape(S, P)
        losses = (((dw - target) / sem) ** 2).mean(1)
        if not torch.isfinite(losses).all():
            raise FitError(f"the loss became non-finite at iteration {it}; narrow the bounds")
        better = losses.detach() < best_loss
        best_loss = torch.where(better, losses.detach(), best_loss)
        best_z[better] = z.detach()[better]
        history += [{"iteration": it, "start": b, "loss": float(losses[b].detach()),
                     **space.as_dict(x[b].detach())} for b in range(S)]
        losses.sum().backward()
        opt.step()
        sched.step()
    b = int(torch.argmin(best_loss))
    xb = space.to_physical(best_z)
    starts = pd.DataFrame([{"start": s, **space.as_dict(xb[s]), "loss": float(best_loss[s])} for s in range(S)])
    settings = {"n_starts": S, "max_iter": max_iter, "lr": lr, "w0": w0, "dt": dt, "seed": seed,
                "seconds": time.perf_counter() - t0, "bounds": space.describe(), "rule": rule.name}
    best = {**fixed_si, **space.as_dict(xb[b])}
    return RuleFitResult(rule, best, float(best_loss[b]), starts, pd.DataFrame(history), settings, df)
