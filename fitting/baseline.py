"""A chance-level reference for spike-timing scores: Poisson trains with the recording's own rates.

A fitted model's coincidence factor means something only against what a model that knows the
firing rate but nothing about timing gets. The baseline here is a Poisson process whose rate is
fitted to each sweep itself, separately while a depolarising stimulus is on (injected current
above the sweep's first sample) and while it is off: it knows when the cell fires and how much, which makes
it a harder baseline than a single rate (its coincidences are above Gamma's own chance level).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tidesim.analysis import gamma_factor
from tidesim.fitting.data import FitData

__all__ = ["poisson_baseline"]


def poisson_baseline(data: FitData, delta: float = 4e-3, n_draws: int = 200, seed: int | None = 0) -> pd.DataFrame:
    """Gamma factor of rate-matched Poisson trains against each sweep of ``data``.

    Returns a row per sweep: ``gamma_poisson`` (mean over ``n_draws`` draws), ``gamma_poisson_p95``
    (95th percentile: a model below it is not distinguishable from rate-matched chance) and the
    fitted rates ``rate_on_hz``/``rate_off_hz``. NaN for a sweep without recorded spikes.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(data.n_sweeps):
        current = data.current[:, s].numpy()
        on = current > current[0] + 1e-15
        t = np.arange(data.n_steps) * data.dt
        spikes = np.asarray(data.spike_times[s], dtype=float)
        spikes = spikes[spikes < data.duration]
        idx = np.clip(np.floor(spikes / data.dt + 1e-9).astype(int), 0, data.n_steps - 1)
        n_on, n_off = int(on[idx].sum()), int((~on[idx]).sum())
        t_on, t_off = on.sum() * data.dt, (~on).sum() * data.dt
        rate_on = n_on / t_on if t_on > 0 else 0.0
        rate_off = n_off / t_off if t_off > 0 else 0.0
        if len(spikes) == 0:
            rows.append({"sweep": data.names[s], "gamma_poisson": np.nan, "gamma_poisson_p95": np.nan,
                         "rate_on_hz": rate_on, "rate_off_hz": rate_off})
            continue
        # Bernoulli per grid step at rate * dt: the discrete Poisson process on the simulation grid
        p = np.where(on, rate_on, rate_off) * data.dt
        draws = rng.random((n_draws, data.n_steps)) < p
        trains = [t[d] for d in draws]
        gammas = gamma_factor([spikes] * n_draws, trains, delta=delta, duration=data.duration)
        gammas = gammas[np.isfinite(gammas)]  # none where the rate leaves Gamma undefined (2 nu delta >= 1)
        rows.append({"sweep": data.names[s], "gamma_poisson": float(np.mean(gammas)) if len(gammas) else np.nan,
                     "gamma_poisson_p95": float(np.percentile(gammas, 95)) if len(gammas) else np.nan,
                     "rate_on_hz": rate_on, "rate_off_hz": rate_off})
    return pd.DataFrame(rows)
