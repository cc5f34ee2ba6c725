"""Posterior inference: parameters with uncertainty by neural posterior estimation (the ``sbi`` package).

The steps, each a function or method here:

1. **Prior** from the bounds. sbi works on the unit cube: ``theta_k`` in [0, 1] is parameter
   ``k``'s position between its bounds on the :class:`~tidesim.fitting.ParameterSpace`'s scale,
   ``value = low + (high - low) * theta`` (linear scale) or ``value = low * (high / low) ** theta``
   (log scale: uniform in ``log value``). The prior is ``sbi.utils.BoxUniform(0, 1)`` on it: a
   uniform prior on each parameter's scale, the same points ``ParameterSpace.from_unit`` gives.
2. **Simulations** (:meth:`Simulator.simulate_batch`, ``theta -> x``): many parameter points in one
   batched torch run (every point on every sweep of the protocol, each sweep driven by its recorded
   current, starting from the model's initial values so that one posterior serves every recording
   made with that protocol), chunked to a memory budget; with a ``dask.distributed`` client the
   chunks are tasks (:func:`simulate`). A point whose simulation blows up is left out of training
   (the posterior is then that of the prior restricted to stable points).
3. **Summary statistics** per sweep, computed the same way on simulated and recorded sweeps
   (:func:`summary_statistics`; definitions in :data:`STATISTICS`), after Gaussian recording noise
   (``noise`` V; by default estimated from the recording, :func:`estimate_noise`) is added to the
   simulated voltage. Statistics undefined on a sweep (no or too few spikes) take the out-of-range
   values of :data:`SENTINELS`; statistics that do not vary across the simulations are left out.
4. **Neural posterior estimation** (sbi's ``NPE``, a masked autoregressive flow by default) trained
   once on the simulations: :func:`train` returns an :class:`AmortizedPosterior`, which gives the
   posterior of any recording made with the same protocol without new simulations.
5. **Posterior samples** (:meth:`AmortizedPosterior.fit` -> :class:`~tidesim.fitting.FitResult`
   with ``samples``), credible intervals and regions, and **posterior predictive checks**
   (:func:`predictive_check`): posterior samples simulated on the recording's sweeps and their
   statistics (spike counts, ...) compared with the recording's.

``ts.fit(model, rec, params, method="sbi", n_simulations=..., n_samples=...)`` runs 1-5; its
FitResult's ``best_params`` are the marginal posterior medians. ``fit.save`` keeps the samples
(``samples.csv``) but not the trained estimator: keep the :class:`AmortizedPosterior` to condition
on more recordings.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from tidesim.errors import NumericalInstabilityError

from .data import FitData, prepare
from .errors import BoundsError, FitError
from .parameters import ParameterSpace

__all__ = ["STATISTICS", "SENTINELS", "summary_statistics", "protocol_windows", "estimate_noise", "Simulator",
           "simulate", "AmortizedPosterior", "ConditionedPosterior", "credible_intervals", "train", "sbi_fit",
           "predictive_check",
           "to_unit", "from_unit"]

#: The summary statistics of one sweep, in this order, with their units. ``window`` is the stimulus
#: window (where the injected current departs from its first value, see :func:`protocol_windows`);
#: "subthreshold" samples leave out 2 ms before and 5 ms after every spike.
STATISTICS: dict[str, str] = {
    "count": "spikes in the whole sweep",
    "rate": "spikes in the window / window length (Hz)",
    "latency": "time from the window's start to its first spike (s)",
    "isi_cv": "coefficient of variation of the inter-spike intervals (std/mean, ddof 0; needs 3 spikes)",
    "adaptation": "adaptation index, mean of (ISI_k+1 - ISI_k)/(ISI_k+1 + ISI_k) (needs 3 spikes)",
    "v_mean": "mean subthreshold voltage in the window (V)",
    "v_std": "standard deviation of the subthreshold voltage in the window (V)",
    "v_rest": "mean subthreshold voltage outside the window (V; the window's value if there is none)",
}

#: What a statistic that is undefined on a sweep (NaN: too few spikes) is replaced by, so that the
#: density estimator sees a number: values outside the statistic's range (the ISI CV is >= 0, the
#: adaptation index lies in (-1, 1)); a sweep without a spike in the window gets the window's length
#: as its latency (its first spike is "at the end or later"). The spike count tells the estimator
#: which case it is in.
SENTINELS: dict[str, Any] = {"latency": "window length (s)", "isi_cv": -1.0, "adaptation": -1.0}

_MASK_BEFORE, _MASK_AFTER = 2e-3, 5e-3  # s around a spike left out of the voltage statistics


# ------------------------------------------------------------------------------ prior scale
def to_unit(space: ParameterSpace, values: torch.Tensor) -> torch.Tensor:
    """``[B, d]`` SI values -> positions in the unit cube (0 at the lower bound, 1 at the upper),
    uniform in the parameter (linear scale) or in its logarithm (log scale)."""
    values = torch.as_tensor(values, dtype=torch.float64)
    cols = []
    for j, b in enumerate(space.bounds):
        if b.scale == "log":
            cols.append((torch.log(values[:, j]) - np.log(b.low)) / (np.log(b.high) - np.log(b.low)))
        else:
            cols.append((values[:, j] - b.low) / (b.high - b.low))
    return torch.stack(cols, 1)


def from_unit(space: ParameterSpace, theta: torch.Tensor) -> torch.Tensor:
    """``[B, d]`` unit-cube positions -> SI values (the inverse of :func:`to_unit`)."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    cols = []
    for j, b in enumerate(space.bounds):
        if b.scale == "log":
            cols.append(torch.exp(np.log(b.low) + (np.log(b.high) - np.log(b.low)) * theta[:, j]))
        else:
            cols.append(b.low + (b.high - b.low) * theta[:, j])
    return torch.stack(cols, 1)


# ------------------------------------------------------------------------------ statistics
def protocol_windows(current: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Stimulus window of each sweep of a ``[T, S]`` current (A): ``(start, stop)`` sample indices,
    from the first to the last sample where the current departs from its first value. A sweep whose
    current never changes (e.g. a 0 pA step) takes the union of the other sweeps' windows, or the
    whole sweep if no sweep changes."""
    current = torch.as_tensor(current, dtype=torch.float64)
    T, S = current.shape
    dev = (current - current[:1]).abs()
    scale = dev.max(0).values
    starts, stops = np.full(S, -1), np.full(S, -1)
    for s in range(S):
        if scale[s] > 0:
            idx = torch.nonzero(dev[:, s] > 1e-3 * scale[s]).flatten()
            starts[s], stops[s] = int(idx[0]), int(idx[-1]) + 1
    have = starts >= 0
    lo, hi = (int(starts[have].min()), int(stops[have].max())) if have.any() else (0, T)
    starts[~have], stops[~have] = lo, hi
    return starts, stops


def summary_statistics(voltage: torch.Tensor, spikes: torch.Tensor, dt: float, starts: np.ndarray,
                       stops: np.ndarray, statistics: Sequence[str] = tuple(STATISTICS)) -> torch.Tensor:
    """Summary statistics of sweeps, vectorised over them (definitions: :data:`STATISTICS`).

    Parameters
    ----------
    voltage, spikes
        ``[T, N]`` membrane potential (V) and 0/1 spike raster of ``N`` sweeps at step ``dt`` (s).
    starts, stops
        ``[N]`` stimulus window of each sweep (sample indices, :func:`protocol_windows`).
    statistics
        Names from :data:`STATISTICS`, in the order wanted.

    Returns
    -------
    ``[N, len(statistics)]`` float64; undefined values replaced by :data:`SENTINELS`.
    """
    unknown = [s for s in statistics if s not in STATISTICS]
    if unknown:
        raise FitError(f"unknown summary statistics {unknown}; known: {', '.join(STATISTICS)}")
    v = torch.as_tensor(voltage).to(torch.float64)
    sp = (torch.as_tensor(spikes) > 0.5)
    T, N = v.shape
    start = torch.as_tensor(np.asarray(starts), dtype=torch.long).reshape(-1).expand(N)
    stop = torch.as_tensor(np.asarray(stops), dtype=torch.long).reshape(-1).expand(N)
    t = torch.arange(T)[:, None]
    inside = (t >= start) & (t < stop)
    length = (stop - start).to(torch.float64) * dt
    out: dict[str, torch.Tensor] = {}
    out["count"] = _count(sp)
    in_win = sp & inside
    out["rate"] = _count(in_win) / length.clamp_min(dt)
    any_in = in_win.any(0)
    first = torch.argmax(in_win.to(torch.uint8), 0)
    out["latency"] = torch.where(any_in, (first - start).to(torch.float64) * dt, length)

    # inter-spike intervals of every train at once: (neuron, step) pairs sorted by neuron, then time
    nz = torch.nonzero(sp)  # time-major; reorder by neuron (then time) below
    nz = nz[torch.argsort(nz[:, 1] * T + nz[:, 0])]
    n_idx, t_idx = nz[:, 1], nz[:, 0].to(torch.float64) * dt
    same = n_idx[1:] == n_idx[:-1]
    isi, isi_n = (t_idx[1:] - t_idx[:-1])[same], n_idx[1:][same]
    k = torch.zeros(N, dtype=torch.float64).index_add_(0, isi_n, torch.ones_like(isi))
    s1 = torch.zeros(N, dtype=torch.float64).index_add_(0, isi_n, isi)
    mean = s1 / k.clamp_min(1)
    s2 = torch.zeros(N, dtype=torch.float64).index_add_(0, isi_n, (isi - mean[isi_n]) ** 2)
    cv = torch.sqrt(s2 / k.clamp_min(1)) / mean.clamp_min(1e-300)
    out["isi_cv"] = torch.where(k >= 2, cv, torch.full_like(cv, SENTINELS["isi_cv"]))
    pair = isi_n[1:] == isi_n[:-1]
    ratio = ((isi[1:] - isi[:-1]) / (isi[1:] + isi[:-1]))[pair]
    pn = isi_n[1:][pair]
    kp = torch.zeros(N, dtype=torch.float64).index_add_(0, pn, torch.ones_like(ratio))
    ai = torch.zeros(N, dtype=torch.float64).index_add_(0, pn, ratio) / kp.clamp_min(1)
    out["adaptation"] = torch.where(kp >= 1, ai, torch.full_like(ai, SENTINELS["adaptation"]))

    if {"v_mean", "v_std", "v_rest"} & set(statistics):
        sub = _subthreshold(sp, dt)
        m_in = inside & sub
        n_in = _count(m_in).clamp_min(1)
        v_mean = torch.where(m_in, v, 0.0).sum(0) / n_in
        v_std = torch.sqrt(torch.where(m_in, v - v_mean, 0.0).square_().sum(0) / n_in)
        m_out = sub & ~inside
        n_out = _count(m_out)
        v_rest = torch.where(n_out > 0, torch.where(m_out, v, 0.0).sum(0) / n_out.clamp_min(1), v_mean)
        out.update(v_mean=v_mean, v_std=v_std, v_rest=v_rest)
    return torch.stack([out[s] for s in statistics], 1)


def _count(mask: torch.Tensor) -> torch.Tensor:
    """Column sums of a ``[T, N]`` bool mask as float64 (through float32: exact below 2**24, and
    several times faster than summing bools)."""
    return mask.to(torch.float32).sum(0).to(torch.float64)


def _subthreshold(sp: torch.Tensor, dt: float) -> torch.Tensor:
    """``[T, N]`` True where no spike lies within 2 ms before / 5 ms after (a spike at step ``i``
    masks steps ``i - 2 ms / dt`` to ``i + 5 ms / dt``)."""
    T, N = sp.shape
    nb, na = int(round(_MASK_BEFORE / dt)), int(round(_MASK_AFTER / dt))
    keep = torch.ones(T, N, dtype=torch.bool)
    nz = torch.nonzero(sp)
    if len(nz):
        steps = (nz[:, :1] + torch.arange(-nb, na + 1)).clamp_(0, T - 1)
        keep[steps.reshape(-1), nz[:, 1:].expand_as(steps).reshape(-1)] = False
    return keep

def estimate_noise(data: FitData) -> float:
    """Recording-noise standard deviation (V) from the sample-to-sample differences of the
    subthreshold voltage: 1.4826 * MAD(diff) / sqrt(2), robust to the slow membrane dynamics (a
    smooth trace sampled at 10 kHz changes by far less than the noise between two samples)."""
    sub = _subthreshold(data.spikes > 0.5, data.dt)
    d = torch.diff(data.voltage, dim=0)[sub[1:] & sub[:-1]]
    if d.numel() < 10:
        return 0.0
    mad = torch.median((d - torch.median(d)).abs())
    return float(1.4826 * mad / np.sqrt(2.0))


# ------------------------------------------------------------------------------ simulator
class Simulator:
    """``theta -> x``: parameter points (unit cube) to summary statistics of every sweep.

    Point ``b`` is simulated on each sweep ``s`` of the protocol (neuron ``b * S + s`` of one
    batched torch run, driven by that sweep's recorded current, starting from the model's initial
    values), Gaussian noise of standard deviation ``noise`` (V) is added to the simulated voltage,
    and :func:`summary_statistics` are taken. ``x`` is ``[B, S * len(statistics)]``, sweep-major.

    The object pickles (the model is rebuilt from its specification), so a Dask worker can run
    :meth:`simulate_batch`.
    """

    def __init__(self, model, data: FitData, space: ParameterSpace, input: str = "I", voltage: str = "v",
                 noise: float = 0.0, statistics: Sequence[str] = tuple(STATISTICS), engine: str = "auto",
                 memory: float = 256e6):
        from .problem import Problem

        self.model, self.data, self.space = model, data, space
        self.input, self.voltage, self.engine = input, voltage, engine
        self.noise = float(noise)
        if not np.isfinite(self.noise) or self.noise < 0:
            raise FitError(f"noise must be a standard deviation in volts (>= 0), got {noise!r}")
        self.statistics = list(statistics)
        summary_statistics(torch.zeros(2, 1), torch.zeros(2, 1), 1.0, [0], [2], self.statistics)  # names check
        self.starts, self.stops = protocol_windows(data.current)
        self.memory = float(memory)
        initial = {voltage: model.initial[voltage]} if voltage in model.initial else None
        self._problem = Problem(model, data, space, input=input, voltage=voltage, engine=engine, initial=initial)

    # a NeuronModel holds Brian2 objects that do not pickle: ship its specification instead
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["model"] = self.model._spec
        state["space"] = [(b.name, b.low, b.high, b.scale) for b in self.space.bounds]
        state.pop("_problem")
        return state

    def __setstate__(self, state: dict) -> None:
        from tidesim.model import NeuronModel

        from .problem import Problem

        model = NeuronModel(**state["model"])
        space = ParameterSpace(model, {n: (lo, hi, sc) for n, lo, hi, sc in state["space"]})
        state.update(model=model, space=space)
        self.__dict__.update(state)
        initial = {self.voltage: model.initial[self.voltage]} if self.voltage in model.initial else None
        self._problem = Problem(model, self.data, space, input=self.input, voltage=self.voltage,
                                engine=self.engine, initial=initial)

    @property
    def n_sweeps(self) -> int:
        """Number of sweeps each parameter point is simulated on."""
        return self.data.n_sweeps

    @property
    def names(self) -> list[str]:
        """``"sweep k: statistic"`` for each column of ``x``."""
        return [f"sweep {s}: {st}" for s in range(self.n_sweeps) for st in self.statistics]

    @property
    def batch_size(self) -> int:
        """Parameter points per simulation chunk: about ``memory`` bytes of traces and masks."""
        per_point = self.data.n_steps * self.n_sweeps * 48
        return int(max(1, min(4096, self.memory // per_point)))

    def observe(self, data: FitData) -> torch.Tensor:
        """``[S * len(statistics)]`` statistics of recorded sweeps, which must have been made with
        this simulator's protocol (same sweeps, length, step and injected current)."""
        ref = self.data
        if data.n_sweeps != ref.n_sweeps or data.n_steps != ref.n_steps or abs(data.dt - ref.dt) > 1e-12:
            raise FitError(f"the recording has {data.n_sweeps} sweeps of {data.n_steps} samples at "
                           f"dt = {data.dt * 1e3:g} ms, but the posterior was trained on {ref.n_sweeps} sweeps of "
                           f"{ref.n_steps} samples at {ref.dt * 1e3:g} ms: train one for this protocol")
        scale = float(ref.current.abs().max()) or 1.0
        err = float((data.current - ref.current).abs().max())
        if err > 1e-3 * scale:
            raise FitError(f"the recording's injected current differs from the protocol the posterior was "
                           f"trained on by up to {err * 1e12:.4g} pA: train one for this protocol")
        x = summary_statistics(data.voltage, data.spikes, data.dt, self.starts, self.stops, self.statistics)
        return x.reshape(-1)

    def simulate_batch(self, theta: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        """Summary statistics ``[B, S * len(statistics)]`` (float64) of ``[B, d]`` unit-cube points.

        A point whose simulation blows up (NaN/inf) gets a row of NaN (sbi leaves such rows out of
        training). ``seed`` seeds the recording noise, so a chunk gives the same ``x`` wherever it runs.
        """
        theta = torch.as_tensor(theta, dtype=torch.float64)
        B, S = theta.shape[0], self.n_sweeps
        x = torch.full((B, S * len(self.statistics)), float("nan"), dtype=torch.float64)
        ok = torch.ones(B, dtype=torch.bool)
        values = from_unit(self.space, theta.clamp(0.0, 1.0))
        gen = torch.Generator()
        if seed is None:
            gen.seed()  # a fresh non-deterministic seed for this generator only
        else:
            gen.manual_seed(int(seed))
        for lo in range(0, B, self.batch_size):
            idx = torch.arange(lo, min(B, lo + self.batch_size))
            while True:
                live = idx[ok[idx]]
                if len(live) == 0:
                    break
                try:
                    with torch.no_grad():
                        out = self._problem.simulate(values[live])
                    break
                except NumericalInstabilityError as err:  # drop the point that blew up, rerun the others
                    if err.neuron is None:
                        raise
                    ok[live[err.neuron // S]] = False
            if len(live) == 0:
                continue
            T = self.data.n_steps
            volt = out.voltage.reshape(T, -1)
            if self.noise > 0:
                volt = volt + self.noise * torch.randn(volt.shape, generator=gen, dtype=torch.float32)
            n = len(live)
            stats = summary_statistics(volt, out.spikes.reshape(T, -1), self.data.dt, np.tile(self.starts, n),
                                       np.tile(self.stops, n), self.statistics)
            x[live] = stats.reshape(len(live), -1)
        return x

    def __call__(self, theta: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        return self.simulate_batch(theta, seed)


def simulate(simulator: Simulator, theta: torch.Tensor, seed: int | None = 0, chunk: int | None = None,
             client: Any = None, progress: bool = False) -> torch.Tensor:
    """Statistics ``[B, n_stats]`` of ``[B, d]`` unit-cube points, in chunks of ``chunk`` points
    (default :attr:`Simulator.batch_size`). Chunk ``k`` uses noise seed ``seed * 100003 + k``, so
    the result does not depend on where chunks run (it does on ``chunk``): with a ``dask.distributed``
    ``client`` they are mapped over its workers (``client.map`` / ``client.gather``), otherwise run
    here in turn."""
    from tqdm.auto import tqdm

    theta = torch.as_tensor(theta, dtype=torch.float64)
    chunk = int(chunk or simulator.batch_size)
    parts = list(theta.split(chunk))
    base = 0 if seed is None else int(seed)
    seeds = [None if seed is None else base * 100003 + k for k in range(len(parts))]
    if client is not None:
        futures = client.map(simulator.simulate_batch, parts, seeds, pure=False)
        xs = client.gather(futures)
    else:
        xs = [simulator.simulate_batch(p, s) for p, s in tqdm(list(zip(parts, seeds)), disable=not progress,
                                                               desc="simulations", unit="chunk")]
    return torch.cat(xs, 0) if xs else torch.zeros(0, len(simulator.names), dtype=torch.float64)


# ------------------------------------------------------------------------------ posterior
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
        from .result import FitResult

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


def credible_intervals(samples: pd.DataFrame, level: float = 0.9) -> pd.DataFrame:
    """Central marginal credible intervals of posterior samples: a row per parameter, columns
    ``low`` and ``high`` (the (1 - level)/2 and (1 + level)/2 quantiles), ``median``, ``mean``, ``std``."""
    if not 0 < level < 1:
        raise FitError(f"level must lie between 0 and 1, got {level!r}")
    q = [(1 - level) / 2, 0.5, (1 + level) / 2]
    rows = {}
    for k in samples.columns:
        lo, med, hi = np.quantile(samples[k].to_numpy(dtype=float), q)
        rows[k] = {"low": lo, "median": med, "high": hi, "mean": float(samples[k].mean()),
                   "std": float(samples[k].std())}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "parameter"
    return table


def train(
    model,
    protocol: Any,
    params: Mapping[str, Any],
    n_simulations: int = 2000,
    input: str = "I",
    voltage: str = "v",
    dt: float | None = None,
    window: tuple[float, float] | None = None,
    noise: float | str = "auto",
    statistics: Sequence[str] = tuple(STATISTICS),
    density_estimator: str = "maf",
    hidden_features: int = 32,
    num_transforms: int = 3,
    training_batch_size: int = 128,
    learning_rate: float = 1e-3,
    max_epochs: int = 300,
    stop_after_epochs: int = 15,
    seed: int | None = 0,
    client: Any = None,
    chunk: int | None = None,
    engine: str = "auto",
    progress: bool = False,
) -> AmortizedPosterior:
    """Simulate ``n_simulations`` prior draws on ``protocol``'s sweeps and train a posterior estimator.

    Parameters
    ----------
    model
        A :class:`~tidesim.NeuronModel`; parameters not in ``params`` keep its values.
    protocol
        A Recording (or list of them, or :class:`FitData`) whose injected currents are the stimulus;
        any recording made with the same currents can then be conditioned on.
    params
        ``{name: (low, high)}`` or ``(low, high, "log")`` bounds, SI or quantities: the prior is
        uniform between them on each parameter's scale (log scale: uniform in the logarithm).
    n_simulations
        Simulations from the prior to train on (a few thousand for 2-4 parameters).
    dt, window
        Integration step (s; a whole multiple of the recording's sampling interval) and the part
        of each sweep used (s).
    noise
        Recording noise (V, standard deviation) added to the simulated voltage before the
        statistics; ``"auto"``: estimated from ``protocol``'s voltage (:func:`estimate_noise`).
    statistics
        Summary statistics per sweep (:data:`STATISTICS`).
    density_estimator, hidden_features, num_transforms
        sbi's estimator (``"maf"``, ``"nsf"``, ``"mdn"``) and its size.
    training_batch_size, learning_rate, max_epochs, stop_after_epochs
        sbi's training loop (Adam; stops when the validation loss has not improved for
        ``stop_after_epochs`` epochs, or after ``max_epochs``).
    seed
        Seeds the prior draws, the simulated noise, the training and (by default) the sampling.
    client, chunk
        A ``dask.distributed`` client to run the simulation chunks on, and points per chunk.
    """
    from sbi.inference import NPE
    from sbi.neural_nets import posterior_nn
    from sbi.utils import BoxUniform

    if isinstance(n_simulations, bool) or not isinstance(n_simulations, (int, np.integer)) or n_simulations < 50:
        raise FitError(f"n_simulations must be a whole number of at least 50 (a few thousand for 2-4 "
                       f"parameters), got {n_simulations!r}")
    if not isinstance(params, Mapping) or not params:
        raise BoundsError("method='sbi' needs bounds for the parameters to infer, params={name: (low, high)} "
                          f"(SI or quantities), got {params!r}; the prior is uniform between them")
    space = ParameterSpace(model, params)
    data = protocol if isinstance(protocol, FitData) else prepare(protocol, dt=dt, window=window)
    if isinstance(noise, str):
        if noise != "auto":
            raise FitError(f"noise must be a standard deviation in volts or 'auto', got {noise!r}")
        noise = estimate_noise(data)
    simulator = Simulator(model, data, space, input=input, voltage=voltage, noise=float(noise),
                          statistics=statistics, engine=engine)
    d = len(space)
    gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
    theta = torch.rand(n_simulations, d, generator=gen, dtype=torch.float64)
    t0, c0 = time.perf_counter(), time.process_time()
    x = simulate(simulator, theta, seed=seed, chunk=chunk, client=client, progress=progress)
    t_sim, c_sim = time.perf_counter() - t0, time.process_time() - c0
    valid = torch.isfinite(x).all(1)
    if int(valid.sum()) < 50:
        raise FitError(f"only {int(valid.sum())} of {n_simulations} simulations ran without blowing up; "
                       "narrow the bounds to a region where the model is stable")
    xv = x[valid]
    x_mean, x_std = xv.mean(0), xv.std(0)
    keep = torch.nonzero(x_std > 1e-9 * xv.abs().amax(0).clamp_min(1e-30)).flatten()
    if len(keep) == 0:
        raise FitError("every summary statistic is the same in every simulation: the parameters within these "
                       "bounds do not change what the protocol shows")
    t1, c1 = time.perf_counter(), time.process_time()
    quiet = contextlib.nullcontext() if progress else contextlib.redirect_stdout(io.StringIO())
    with torch.random.fork_rng(), quiet, warnings.catch_warnings():
        # spike statistics with sentinels (a latency of "the whole window" for silent sweeps) look like
        # outliers to sbi's z-scoring check; they are far fewer than the distinct values it worries about
        warnings.filterwarnings("ignore", message=".*extreme outliers.*")
        if seed is not None:
            torch.manual_seed(int(seed))
        prior = BoxUniform(torch.zeros(d), torch.ones(d))
        builder = posterior_nn(model=density_estimator, hidden_features=hidden_features,
                               num_transforms=num_transforms)
        inference = NPE(prior=prior, density_estimator=builder, show_progress_bars=progress,
                        tracker=_NoTracker())  # sbi's default writes TensorBoard logs into ./sbi-logs
        inference.append_simulations(theta[valid].float(), xv[:, keep].float())
        estimator = inference.train(training_batch_size=training_batch_size, learning_rate=learning_rate,
                                    max_num_epochs=max_epochs, stop_after_epochs=stop_after_epochs)
        posterior = inference.build_posterior(estimator)
    t_train, c_train = time.perf_counter() - t1, time.process_time() - c1
    summary = inference.summary
    info = {"n_simulations": int(n_simulations), "invalid_simulations": int((~valid).sum()),
            "simulation_seconds": t_sim, "training_seconds": t_train,
            "simulation_cpu_seconds": c_sim, "training_cpu_seconds": c_train,
            "epochs": int(summary["epochs_trained"][-1]),
            "best_validation_loss": float(summary["best_validation_loss"][-1]),
            "density_estimator": density_estimator, "statistics_used": [simulator.names[i] for i in keep.tolist()],
            "validation_loss": [float(v) for v in summary["validation_loss"]]}
    return AmortizedPosterior(posterior, simulator, keep, x_mean, x_std, info)


class _NoTracker:
    """An sbi training tracker that keeps nothing (sbi's own summary holds the loss curves)."""

    log_dir = None

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def add_figure(self, name: str, figure: Any, step: int | None = None) -> None:
        pass

    def flush(self) -> None:
        pass


def sbi_fit(model, recordings: Any, params: Mapping[str, Any], n_simulations: int = 2000, n_samples: int = 1000,
            seed: int | None = 0, window: tuple[float, float] | None = None, point: str = "median",
            **options: Any):
    """Train on ``recordings``' protocol (:func:`train`, ``options`` go there) and condition on them:
    what ``ts.fit(..., method="sbi")`` runs. Returns a FitResult with posterior samples."""
    amortized = train(model, recordings, params, n_simulations=n_simulations, seed=seed, window=window, **options)
    return amortized.fit(recordings, n_samples=n_samples, seed=seed, window=window, point=point)


# ------------------------------------------------------------------------------ predictive check
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

