"""Trained posteriors: amortized over recordings of one protocol, and conditioned on one recording
(see :mod:`tidesim.fitting.sbi`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from tidesim.fitting.data import FitData, prepare
from tidesim.fitting.errors import FitError
from tidesim.fitting.parameters import ParameterSpace
from tidesim.fitting.result import FitResult
from tidesim.fitting.sbi_simulator import Simulator
from tidesim.fitting.sbi_statistics import credible_intervals, from_unit, to_unit

__all__ = ["AmortizedPosterior", "ConditionedPosterior"]

@dataclass(repr=False)
class AmortizedPosterior:
    """A posterior estimator trained once for one protocol; conditions on any recording made with it.

    Attributes
    ----------
    posterior
        sbi's ``DirectPosterior`` over the unit cube (see the module docstring for the scale).
    simulator
        The :class:`Simulator` it was trained with (protocol, statistics, noise).
    keep
        Indices of the statistics the estimator sees (those that vary across the simulations).
    info
        Training facts: simulations (valid, invalid), seconds simulating and training, epochs, the
        best validation loss (negative log-density of the held-out simulations).
    """

    posterior: Any
    simulator: Simulator
    keep: torch.Tensor
    x_mean: torch.Tensor
    x_std: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def space(self) -> ParameterSpace:
        """The parameters' :class:`~tidesim.fitting.ParameterSpace`: names, bounds (SI) and scales."""
        return self.simulator.space

    def __repr__(self) -> str:
        sim = self.simulator
        return (f"AmortizedPosterior({sim.model.name}: {', '.join(self.names)}; {sim.n_sweeps} sweeps x "
                f"{len(sim.statistics)} statistics, {self.info.get('n_simulations')} simulations)")

    @property
    def names(self) -> list[str]:
        """Names of the inferred parameters, in the order of the posterior's dimensions."""
        return self.space.names

    def observation(self, obs: Any, window: tuple[float, float] | None = None) -> torch.Tensor:
        """Summary statistics ``[n_stats]`` of a Recording / list of them / FitData / ready statistics."""
        if isinstance(obs, torch.Tensor):
            return obs.to(torch.float64).reshape(-1)
        if isinstance(obs, np.ndarray):
            return torch.as_tensor(obs, dtype=torch.float64).reshape(-1)
        data = obs if isinstance(obs, FitData) else prepare(obs, dt=self.simulator.data.dt, window=window)
        return self.simulator.observe(data)

    def condition(self, obs: Any, window: tuple[float, float] | None = None) -> "ConditionedPosterior":
        """The posterior given one recording (or its statistics)."""
        return ConditionedPosterior(self, self.observation(obs, window))

    def sample(self, obs: Any, n: int = 1000, seed: int | None = 0) -> pd.DataFrame:
        """``n`` posterior samples given ``obs`` (SI, a column per parameter)."""
        return self.condition(obs).sample(n, seed=seed)

    def estimator_input(self, obs: Any, window: tuple[float, float] | None = None) -> torch.Tensor:
        """What sbi's estimator (``posterior``) is conditioned on for ``obs``: the varying statistics, float32
        (for sbi's own diagnostics, e.g. ``sbi.diagnostics.run_sbc``, on the unit-cube parameters)."""
        return self._x(self.observation(obs, window))

    def _x(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
        if x.numel() != len(self.simulator.names):
            raise FitError(f"expected {len(self.simulator.names)} summary statistics, got {x.numel()}")
        return x[self.keep].to(torch.float32)

    def fit(self, recordings: Any, n_samples: int = 1000, seed: int | None = 0,
            window: tuple[float, float] | None = None, point: str = "median"):
        """Condition on ``recordings`` and return a :class:`~tidesim.fitting.FitResult` with
        ``samples`` (``n_samples`` posterior draws, SI), ``posterior`` (a :class:`ConditionedPosterior`)
        and ``best_params`` = the marginal posterior medians (``point="median"``, default: robust,
        always inside the credible intervals) or the sample of highest posterior density
        (``point="mode"``)."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise FitError(f"n_samples must be a positive whole number of posterior draws, got {n_samples!r}")
        if point not in ("median", "mode"):
            raise FitError(f"point must be 'median' or 'mode', got {point!r}")
        sim = self.simulator
        data = recordings if isinstance(recordings, FitData) else prepare(recordings, dt=sim.data.dt,
                                                                          window=window)
        cond = ConditionedPosterior(self, sim.observe(data))
        t0 = time.perf_counter()
        samples = cond.sample(n_samples, seed=seed)
        if point == "median":
            best = {k: float(samples[k].median()) for k in self.names}
        else:
            best = cond.mode(samples)
        # the fit's "loss": mean squared standardised distance of the statistics at best_params to the data's
        x_best = sim.simulate_batch(to_unit(self.space, torch.tensor([[best[k] for k in self.names]])), seed=0)[0]
        z = ((x_best - cond.x) / self.x_std)[self.keep]
        loss = float(torch.mean(z ** 2)) if torch.isfinite(z).all() else float("inf")
        settings = {
            "method": "sbi (neural posterior estimation)", "point_estimate": point, "loss": "mean squared "
            "standardised summary-statistic difference at best_params", "dt": sim.data.dt, "window": window,
            "input": sim.input, "voltage": sim.voltage, "seed": seed, "n_samples": n_samples,
            "noise_V": sim.noise, "statistics": sim.statistics, "sweeps": data.names,
            "bounds": self.space.describe(),
            "bounds_si": {b.name: [b.low, b.high, b.scale] for b in self.space.bounds},
            "model": sim.model.name, "observation": cond.x.tolist(), "observation_names": sim.names,
            "sampling_seconds": time.perf_counter() - t0, **{k: v for k, v in self.info.items()}}
        starts = pd.DataFrame([{"start": 0, **best, "loss": loss, "status": "ok"}])
        history = pd.DataFrame({"iteration": [], "start": [], "loss": []})
        return FitResult(sim.model, best, np.array([loss]), starts, history, settings, data=data,
                         samples=samples, posterior=cond)


@dataclass(repr=False)
class ConditionedPosterior:
    """The posterior given one observation ``x`` (its summary statistics)."""

    amortized: AmortizedPosterior
    x: torch.Tensor

    def __repr__(self) -> str:
        return f"ConditionedPosterior({', '.join(self.amortized.names)} | {len(self.x)} summary statistics)"

    @property
    def sbi(self):
        """sbi's posterior object with this observation as its default ``x`` (unit-cube scale)."""
        return self.amortized.posterior.set_default_x(self.amortized._x(self.x))

    def sample_unit(self, n: int, seed: int | None = 0, max_seconds: float = 120.0) -> torch.Tensor:
        """``[n, d]`` posterior samples on the unit cube (inside the prior's support). Rejection
        sampling that has not finished after ``max_seconds`` s is an error naming the statistics
        that lie outside what the simulations produced (the usual cause)."""
        with torch.random.fork_rng():
            if seed is not None:
                torch.manual_seed(seed)
            try:
                return self.amortized.posterior.sample((int(n),), x=self.amortized._x(self.x),
                                                       show_progress_bars=False,
                                                       max_sampling_time=max_seconds).to(torch.float64)
            except RuntimeError as exc:
                if "time" not in str(exc).lower():
                    raise
                raise FitError(f"sampling the posterior took over {max_seconds:g} s: it puts almost no mass "
                               f"inside the bounds for this recording. {self.outliers()}") from exc

    def outliers(self, limit: float = 5.0) -> str:
        """The recording's statistics more than ``limit`` SD from the simulated ones, as a sentence."""
        a = self.amortized
        keep = a.keep.tolist()
        z = ((self.x.to(torch.float64) - a.x_mean.to(torch.float64)) / a.x_std.to(torch.float64))[keep]
        names = [a.simulator.names[k] for k in keep]
        far = [f"{n} ({float(v):+.0f} SD)" for n, v in zip(names, z) if abs(float(v)) > limit]
        if not far:
            return "No statistic is far outside the simulated range; try more simulations."
        return ("These statistics lie far outside what the simulations produced: " + ", ".join(far)
                + "; drop them (statistics=...) or widen the bounds.")

    def sample(self, n: int = 1000, seed: int | None = 0) -> pd.DataFrame:
        """``n`` posterior samples, SI values, a column per parameter."""
        values = from_unit(self.amortized.space, self.sample_unit(n, seed))
        return pd.DataFrame(values.numpy(), columns=self.amortized.names)

    def log_prob(self, params: Mapping[str, Any] | pd.DataFrame) -> np.ndarray:
        """Posterior log-density (unnormalised, on the unit-cube scale) of SI points given as
        ``{name: value or array}`` or a DataFrame with a column per parameter."""
        names = self.amortized.names
        missing = [k for k in names if k not in params]
        if missing:
            raise FitError(f"log_prob needs a value of every fitted parameter; missing {missing}")
        cols = [np.atleast_1d(np.asarray(params[k], dtype=float)) for k in names]
        theta = to_unit(self.amortized.space, torch.as_tensor(np.stack(cols, 1)))
        inside = ((theta >= 0) & (theta <= 1)).all(1)
        with torch.no_grad():
            lp = self.amortized.posterior.log_prob(theta.clamp(0, 1).float(), x=self.amortized._x(self.x),
                                                   norm_posterior=False)
        return np.where(inside.numpy(), lp.double().numpy(), -np.inf)

    def mode(self, samples: pd.DataFrame | None = None) -> dict[str, float]:
        """The sample of highest posterior density (from ``samples``, default 1000 new ones)."""
        samples = samples if samples is not None else self.sample(1000)
        best = int(np.argmax(self.log_prob(samples)))
        return {k: float(samples[k].iloc[best]) for k in self.amortized.names}

    def contains(self, params: Mapping[str, float], level: float = 0.9, n: int = 2000, seed: int | None = 0,
                 kind: str = "hpd") -> bool:
        """Whether an SI point lies in the ``level`` credible region.

        ``kind="hpd"``: the highest-posterior-density region, the joint region of the posterior's
        densest ``level`` mass (the point's log-density is at least the ``1 - level`` quantile of the
        log-densities of ``n`` posterior samples). ``kind="marginal"``: inside every parameter's
        central marginal interval (:func:`credible_intervals`)."""
        if not 0 < level < 1:
            raise FitError(f"level must lie between 0 and 1, got {level!r}")
        samples = self.sample(n, seed=seed)
        if kind == "marginal":
            table = credible_intervals(samples, level)
            return all(table.loc[k, "low"] <= params[k] <= table.loc[k, "high"] for k in self.amortized.names)
        if kind != "hpd":
            raise FitError(f"kind must be 'hpd' or 'marginal', got {kind!r}")
        threshold = np.quantile(self.log_prob(samples), 1 - level)
        return bool(self.log_prob({k: [params[k]] for k in self.amortized.names})[0] >= threshold)
