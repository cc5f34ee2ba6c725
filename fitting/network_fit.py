"""Network parameters from a recorded population's statistics, by neural posterior estimation (sbi).

>>> build = lambda g, eta: ts.network.examples.brunel(g=g, eta=eta, seed=1)
>>> fit = ts.fitting.fit_network(build, recorded_spikes, {"g": (3, 8), "eta": (0.8, 3)})
>>> fit.best_params, fit.intervals(0.9), fit.covers({"g": 5, "eta": 2})

Each simulation builds the network with parameters drawn uniformly between the bounds, runs it,
keeps the first ``n_record`` units of one population (a recording samples a few units of a large
circuit) and computes :func:`tidesim.analysis.population_statistics` after a warm-up. sbi's NPE is
trained on (parameters, statistics) and conditioned on the recording's statistics. The posterior
says which parameter values are compatible with the statistics; where several are (the phase
diagram has ridges of equal rate), it is wide, and its samples show along which direction.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch

from tidesim.analysis.population import POPULATION_STATISTICS, population_statistics
from tidesim.datasets.spikes import SpikeData
from tidesim.fitting.errors import BoundsError, FitError
from tidesim.fitting.sbi_training import _NoTracker
from tidesim.sweep.cluster import connect, run_tasks
from tidesim.sweep.run import one_torch_thread

__all__ = ["NetworkFit", "fit_network", "simulate_statistics"]


@dataclass
class NetworkFit:
    """Posterior over network parameters given a population's statistics.

    ``samples``: posterior draws (one column per parameter); ``best_params``: marginal medians;
    ``observed``: the statistics conditioned on; ``simulations``: every simulated point and its
    statistics (NaN rows: runs that failed); ``info``: sizes and timings.
    """

    samples: pd.DataFrame
    best_params: dict[str, float]
    observed: pd.Series
    simulations: pd.DataFrame
    info: dict = field(default_factory=dict)
    posterior: Any = None
    bounds: dict = field(default_factory=dict)
    scaling: dict = field(default_factory=dict)

    def condition(self, observed: Any, n_samples: int = 2000, seed: int = 0) -> "NetworkFit":
        """The same trained posterior conditioned on another recording's statistics (no new
        simulations: NPE is amortized over recordings made the same way)."""
        obs = _observed(observed)
        samples = _sample(self.posterior, obs, self.scaling, self.bounds, n_samples, seed)
        return NetworkFit(samples, samples.median().to_dict(), obs, self.simulations, dict(self.info),
                          self.posterior, self.bounds, self.scaling)

    def intervals(self, level: float = 0.9) -> pd.DataFrame:
        """Central credible interval of each parameter at ``level``, with the median."""
        lo, hi = (1 - level) / 2, (1 + level) / 2
        return pd.DataFrame({"low": self.samples.quantile(lo), "median": self.samples.median(),
                             "high": self.samples.quantile(hi)})

    def covers(self, truth: Mapping[str, float], level: float = 0.9) -> dict[str, bool]:
        """Whether each true value lies in its central credible interval at ``level``."""
        iv = self.intervals(level)
        return {k: bool(iv.loc[k, "low"] <= v <= iv.loc[k, "high"]) for k, v in truth.items()}


@dataclass(frozen=True)
class _Chunk:
    build: Callable[..., Any]
    names: tuple[str, ...]
    points: np.ndarray
    seeds: np.ndarray
    settings: dict


def _simulate_chunk(chunk: _Chunk) -> np.ndarray:
    out = np.full((len(chunk.points), len(POPULATION_STATISTICS)), np.nan)
    with one_torch_thread():
        for k, (point, seed) in enumerate(zip(chunk.points, chunk.seeds)):
            out[k] = simulate_statistics(chunk.build, dict(zip(chunk.names, point)), seed=int(seed),
                                         **chunk.settings).to_numpy()
    return out


def simulate_statistics(build: Callable[..., Any], params: Mapping[str, float], population: str = "exc",
                        n_record: int = 100, duration: float = 1.0, warmup: float = 0.2, dt: float = 1e-4,
                        seed: int = 0, backend: str = "torch") -> pd.Series:
    """Build the network with ``params``, run ``warmup + duration`` s and return the population
    statistics of the first ``n_record`` units of ``population`` after the warm-up. A run that fails
    numerically gives NaN statistics (left out of training)."""
    net = build(**params)
    record = {name: [] for name in net.populations}
    try:
        res = net.run(warmup + duration, dt=dt, record=record, seed=seed, backend=backend)
    except (FloatingPointError, ArithmeticError):
        return pd.Series(np.nan, index=list(POPULATION_STATISTICS))
    if population not in res:
        raise FitError(f"the network has no population {population!r} to record from; it has {sorted(res)}")
    trains = res[population].spike_trains[:n_record]
    data = SpikeData([[np.asarray(t, dtype=float)] for t in trains], 0.0, warmup + duration)
    return population_statistics(data, t_start=warmup)


def _observed(observed: Any) -> pd.Series:
    if isinstance(observed, pd.Series):
        missing = sorted(set(POPULATION_STATISTICS) - set(observed.index))
        if missing:
            raise FitError(f"the observed statistics lack {missing}; compute them with "
                           "ts.analysis.population_statistics")
        return observed[list(POPULATION_STATISTICS)].astype(float)
    return population_statistics(observed)


def fit_network(build: Callable[..., Any], observed: Any, params: Mapping[str, tuple[float, float]],
                population: str = "exc", n_record: int = 100, duration: float = 1.0, warmup: float = 0.2,
                dt: float = 1e-4, n_simulations: int = 1000, n_samples: int = 2000, seed: int = 0,
                client: Any = None, chunk: int = 25, max_epochs: int = 500) -> NetworkFit:
    """Posterior of network parameters given a recorded population's statistics (sbi's NPE).

    ``build(**params) -> Network``: the network at one parameter point (the connectivity seed is
    the builder's business). ``observed``: the recorded units' spike trains (anything
    :func:`~tidesim.analysis.population_statistics` reads) or their statistics as a Series.
    ``params``: ``{name: (low, high)}``, a uniform prior. ``n_record``: units kept per simulation,
    as many as were recorded. ``client``: Dask client (or ``"local"``) for the simulations, in
    chunks of ``chunk`` points.
    """
    if not params:
        raise BoundsError("fit_network needs bounds, params={name: (low, high)}")
    names = tuple(params)
    bounds = np.array([[float(v) for v in params[k]] for k in names])
    if not np.all(bounds[:, 0] < bounds[:, 1]):
        raise BoundsError(f"every bound needs low < high, got {dict(zip(names, bounds.tolist()))}")
    if n_simulations < 50:
        raise FitError(f"n_simulations = {n_simulations}: at least 50 (a few hundred per parameter)")
    obs = _observed(observed)
    rng = np.random.default_rng(seed)
    points = bounds[:, 0] + (bounds[:, 1] - bounds[:, 0]) * rng.random((n_simulations, len(names)))
    seeds = rng.integers(0, 2**31 - 1, n_simulations)
    settings = dict(population=population, n_record=n_record, duration=duration, warmup=warmup, dt=dt)
    tasks = [_Chunk(build, names, points[i:i + chunk], seeds[i:i + chunk], settings)
             for i in range(0, n_simulations, chunk)]
    stats = np.full((n_simulations, len(POPULATION_STATISTICS)), np.nan)
    started = time.perf_counter()
    with connect(client) as dask_client:
        run_tasks(_simulate_chunk, tasks, [f"simulations {i * chunk}-{i * chunk + len(t.points) - 1}"
                                           for i, t in enumerate(tasks)], dask_client,
                  lambda i, out: stats.__setitem__(slice(i * chunk, i * chunk + len(out)), out),
                  name="tidesim-network-fit")
    t_sim = time.perf_counter() - started
    posterior, used, t_train = _train(points, stats, bounds, seed, max_epochs)
    box = {k: tuple(b) for k, b in zip(names, bounds.tolist())}
    samples = _sample(posterior, obs, used, box, n_samples, seed)
    table = pd.concat([pd.DataFrame(points, columns=list(names)),
                       pd.DataFrame(stats, columns=list(POPULATION_STATISTICS))], axis=1)
    info = {"n_simulations": n_simulations, "failed_simulations": int(np.isnan(stats).any(1).sum()),
            "simulation_seconds": t_sim, "training_seconds": t_train, **settings,
            "statistics_used": [s for s, k in zip(POPULATION_STATISTICS, used["keep"]) if k]}
    return NetworkFit(samples, samples.median().to_dict(), obs, table, info, posterior, box, used)


def _sample(posterior, obs: pd.Series, used: dict, box: dict, n_samples: int, seed: int) -> pd.DataFrame:
    x_obs = torch.as_tensor(((obs.to_numpy() - used["mean"]) / used["std"])[used["keep"]], dtype=torch.float32)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        unit = posterior.sample((n_samples,), x=x_obs, show_progress_bars=False).double().numpy()
    low, high = (np.array([b[i] for b in box.values()]) for i in (0, 1))
    return pd.DataFrame(low + (high - low) * unit, columns=list(box))


def _train(points, stats, bounds, seed, max_epochs):
    from sbi.inference import NPE  # sbi loads only when a posterior is trained
    from sbi.utils import BoxUniform

    valid = np.isfinite(stats).all(1)
    if valid.sum() < 50:
        raise FitError(f"only {int(valid.sum())} simulations gave statistics; widen or move the bounds")
    x = stats[valid]
    mean, std = x.mean(0), x.std(0)
    keep = std > 1e-9 * np.maximum(np.abs(x).max(0), 1e-30)
    theta = (points[valid] - bounds[:, 0]) / (bounds[:, 1] - bounds[:, 0])
    started = time.perf_counter()
    with torch.random.fork_rng(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*extreme outliers.*")
        torch.manual_seed(seed)
        d = len(bounds)
        inference = NPE(prior=BoxUniform(torch.zeros(d), torch.ones(d)), show_progress_bars=False,
                        tracker=_NoTracker())
        inference.append_simulations(torch.as_tensor(theta, dtype=torch.float32),
                                     torch.as_tensor(((x - mean) / np.where(keep, std, 1))[:, keep],
                                                     dtype=torch.float32))
        estimator = inference.train(max_num_epochs=max_epochs)
        posterior = inference.build_posterior(estimator)
    return posterior, {"mean": mean, "std": np.where(keep, std, 1), "keep": keep}, time.perf_counter() - started
