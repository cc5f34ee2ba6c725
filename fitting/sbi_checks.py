"""Posterior predictive checks: posterior samples simulated on a recording's sweeps (see
:mod:`tidesim.fitting.sbi`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from tidesim.fitting.errors import FitError
from tidesim.fitting.parameters import ParameterSpace
from tidesim.fitting.sbi_simulator import Simulator, simulate
from tidesim.fitting.sbi_statistics import STATISTICS, summary_statistics, to_unit

__all__ = ["predictive_check"]

def predictive_check(fit, rec: Any = None, n: int = 100, level: float = 0.9, seed: int | None = 0,
                     window: tuple[float, float] | None = None, noise: float | None = None) -> pd.DataFrame:
    """Posterior predictive check: simulate ``n`` posterior samples of ``fit`` on the sweeps of
    ``rec`` (default: the fitted sweeps; held-out sweeps with another stimulus work too) and compare
    their summary statistics with the recording's.

    Returns a DataFrame, a row per sweep and statistic: ``data`` (the recording's value), ``median``,
    ``low``/``high`` (the central ``level`` interval of the simulated values), ``inside`` (data within
    it), ``percentile`` (fraction of simulations below the data, ties half) and ``n_valid``
    (simulations that ran). Spike counts are the rows with ``statistic == "count"``.
    Units: as in :data:`STATISTICS`.
    """
    if getattr(fit, "samples", None) is None:
        raise FitError("a predictive check needs posterior samples: fit with method='sbi'")
    settings = fit.settings
    data = fit._data(rec, window)
    if "bounds_si" not in settings:
        raise FitError("this FitResult does not hold the prior's bounds (settings['bounds_si']): "
                       "fit it again with method='sbi'")
    space = ParameterSpace(fit.base_model, {k: tuple(v) for k, v in settings["bounds_si"].items()})
    sim = Simulator(fit.base_model, data, space, input=settings["input"], voltage=settings["voltage"],
                    noise=settings.get("noise_V", 0.0) if noise is None else noise,
                    statistics=settings.get("statistics", list(STATISTICS)))
    samples = fit.samples
    gen = np.random.default_rng(seed)
    pick = gen.choice(len(samples), size=min(int(n), len(samples)), replace=len(samples) < int(n))
    values = torch.as_tensor(samples[space.names].to_numpy(dtype=float)[pick])
    x = simulate(sim, to_unit(space, values), seed=seed).numpy()
    x_data = summary_statistics(data.voltage, data.spikes, data.dt, sim.starts, sim.stops, sim.statistics)
    x_data = x_data.reshape(-1).numpy()
    ok = np.isfinite(x).all(1)
    xs = x[ok]
    rows = []
    q = [(1 - level) / 2, 0.5, (1 + level) / 2]
    k = len(sim.statistics)
    for j in range(len(sim.names)):
        s, st = divmod(j, k)
        col = xs[:, j]
        lo, med, hi = np.quantile(col, q) if len(col) else (np.nan,) * 3
        below = float(np.mean(col < x_data[j]) + 0.5 * np.mean(col == x_data[j])) if len(col) else np.nan
        rows.append({"sweep": data.names[s], "statistic": sim.statistics[st], "data": float(x_data[j]),
                     "median": float(med), "low": float(lo), "high": float(hi),
                     "inside": bool(lo <= x_data[j] <= hi), "percentile": below, "n_valid": int(ok.sum())})
    return pd.DataFrame(rows)
