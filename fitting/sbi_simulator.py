"""The simulator of simulation-based inference: parameter points to summary statistics, batched and
chunked (see :mod:`tidesim.fitting.sbi`)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from tidesim.core.errors import NumericalInstabilityError
from tidesim.core.model import NeuronModel
from tidesim.fitting.data import FitData
from tidesim.fitting.errors import FitError
from tidesim.fitting.parameters import ParameterSpace
from tidesim.fitting.problem import Problem
from tidesim.fitting.sbi_statistics import STATISTICS, from_unit, protocol_windows, summary_statistics

__all__ = ["Simulator", "simulate"]

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
        state["model"] = self.model.spec
        state["space"] = [(b.name, b.low, b.high, b.scale) for b in self.space.bounds]
        state.pop("_problem")
        return state

    def __setstate__(self, state: dict) -> None:

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
