"""What a sweep runs: the parameter points (grids, tables, samples from bounds) and the step protocol."""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from brian2 import second
from scipy.stats import qmc

from tidesim.core.errors import TidesimError, UnitMismatchError, UnknownIdentifierError
from tidesim.core.units import dims_of, si_float, to_si, unit_name

__all__ = ["Protocol", "steps", "grid", "sample", "points_table", "check_dims", "SweepInputError"]


class SweepInputError(TidesimError, ValueError):
    """A sweep's points or protocol are malformed (the message names the column, row or value)."""


def _si_scalar(value: Any, name: str, dim: Any = None) -> float:
    """One finite SI number through the one unit converter (its unit checked when ``dim`` is given)."""
    try:
        return si_float(value, name, dim)
    except UnitMismatchError:
        raise
    except ValueError as err:
        raise SweepInputError(str(err)) from None


def check_dims(given: Mapping[str, Any], model, where: str) -> None:
    """Quantities given before the model was known (``grid``, ``sample``, ``steps``) must have the unit
    of the model parameter they set."""
    for name, dim in given.items():
        if name in model.dims and dim is not model.dims[name]:
            raise UnitMismatchError(f"{where} '{name}' was given in {unit_name(dim)} but {model.name}'s {name} "
                                    f"is in {unit_name(model.dims[name])}")


@dataclass(frozen=True)
class Protocol:
    """A current-step protocol: each parameter point is simulated once per step amplitude.

    Attributes
    ----------
    amplitudes : tuple of float
        Step amplitudes (A for a current input; SI of the input parameter in general).
    start, stop : float
        Step onset and offset (s); both are rounded to the nearest time step of the sweep's ``dt``.
    duration : float
        Length of each simulation (s).
    holding : float
        Value of the input outside the step, added to the step inside it (A).
    input : str
        The model parameter the protocol drives (``"I"`` for the zoo models).
    """

    amplitudes: tuple[float, ...]
    start: float
    stop: float
    duration: float
    holding: float = 0.0
    input: str = "I"
    #: the dimension of amplitudes given as quantities (checked against the input when the model is known)
    dims: Any = field(default=None, compare=False, repr=False)

    def step_indices(self, dt: float) -> tuple[int, int]:
        """(first step inside the step, first step after it) at integration step ``dt`` (s)."""
        return int(round(self.start / dt)), int(round(self.stop / dt))

    def waveform(self, amplitude: float, dt: float, n_steps: int) -> np.ndarray:
        """``[n_steps]`` input values (SI): ``holding``, plus ``amplitude`` inside the step."""
        i0, i1 = self.step_indices(dt)
        wave = np.full(n_steps, float(self.holding))
        wave[i0:min(i1, n_steps)] += amplitude
        return wave

    def key(self) -> str:
        """A stable text identity (for cache file names)."""
        amps = ",".join(repr(float(a)) for a in self.amplitudes)
        return f"steps[{amps}]|{self.start!r}|{self.stop!r}|{self.duration!r}|{self.holding!r}|{self.input}"

    def describe(self) -> dict[str, Any]:
        """The protocol as plain values: amplitudes and holding in the input's SI unit, times in s."""
        return {"amplitudes": list(self.amplitudes), "start": self.start, "stop": self.stop,
                "duration": self.duration, "holding": self.holding, "input": self.input}


def steps(amplitudes: Any, start: Any = 0.1, stop: Any = 0.6, duration: Any = None, holding: Any = 0.0,
          input: str = "I") -> Protocol:
    """A step protocol: ``amplitudes`` (A, or quantities such as ``[0.2, 0.4]*nA``) applied from
    ``start`` to ``stop`` (s) in runs of ``duration`` s (default: ``stop``, nothing after the step),
    on top of a ``holding`` current; ``input`` names the driven model parameter."""
    amps = np.atleast_1d(np.asarray(to_si(amplitudes, "amplitudes"), dtype=float)).ravel()
    if amps.size == 0:
        raise SweepInputError("a step protocol needs at least one amplitude")
    if not np.all(np.isfinite(amps)):
        raise SweepInputError(f"step amplitudes must be finite, got {amps.tolist()}")
    start_s, stop_s = _si_scalar(start, "start", second.dim), _si_scalar(stop, "stop", second.dim)
    dur = stop_s if duration is None else _si_scalar(duration, "duration", second.dim)
    if not 0 <= start_s < stop_s:
        raise SweepInputError(f"the step must start at or after 0 s and end after it starts; got start = "
                              f"{start_s} s, stop = {stop_s} s")
    if dur < stop_s - 1e-12:
        raise SweepInputError(f"duration ({dur} s) is shorter than the step's end ({stop_s} s)")
    hold = _si_scalar(holding, "holding")
    given = {dims_of(a) for a in (amplitudes, holding) if hasattr(a, "dim")}
    if len(given) > 1:
        raise UnitMismatchError("step amplitudes and holding value are given in different units")
    return Protocol(tuple(float(a) for a in amps), start_s, stop_s, dur, hold, str(input),
                    given.pop() if given else None)


def grid(**axes: Any) -> pd.DataFrame:
    """Full factorial grid of parameter values: ``grid(a=np.linspace(0, 8e-9, 50), b=[0, 50e-12])`` has
    a row per combination (the last name varies fastest). Values are SI floats or Brian2 quantities."""
    if not axes:
        raise SweepInputError("grid() needs at least one parameter, e.g. grid(a=np.linspace(0, 8e-9, 20))")
    values = {}
    for name, v in axes.items():
        arr = np.atleast_1d(np.asarray(to_si(v, name), dtype=float)).ravel()
        if arr.size == 0:
            raise SweepInputError(f"grid axis {name!r} has no values")
        values[name] = arr
    rows = list(itertools.product(*values.values()))
    table = pd.DataFrame(rows, columns=list(values))
    table.attrs["dims"] = {name: dims_of(v) for name, v in axes.items() if hasattr(v, "dim")}
    return table


def sample(bounds: Mapping[str, Sequence[Any]], n: int, method: str = "sobol", seed: int = 0) -> pd.DataFrame:
    """``n`` points drawn inside ``bounds`` (``{name: (low, high)}`` or ``(low, high, "log")``, SI or
    quantities): ``method="sobol"`` (scrambled Sobol sequence), ``"lhs"`` (Latin hypercube) or
    ``"random"`` (uniform), reproducible by ``seed``."""
    if int(n) < 1:
        raise SweepInputError(f"n must be a positive number of points, got {n}")
    names, lows, highs, logs = [], [], [], []
    for name, spec in bounds.items():
        spec = tuple(spec)
        if len(spec) not in (2, 3) or (len(spec) == 3 and spec[2] not in ("log", "linear")):
            raise SweepInputError(f"bounds of {name!r} must be (low, high) or (low, high, 'log'), got {spec!r}")
        lo, hi = _si_scalar(spec[0], f"lower bound of {name!r}"), _si_scalar(spec[1], f"upper bound of {name!r}")
        log = len(spec) == 3 and spec[2] == "log"
        if not lo < hi or (log and lo <= 0):
            raise SweepInputError(f"bounds of {name!r} must have low < high (and low > 0 on a log scale); "
                                  f"got ({lo}, {hi})")
        names.append(name)
        lows.append(np.log(lo) if log else lo)
        highs.append(np.log(hi) if log else hi)
        logs.append(log)
    if not names:
        raise SweepInputError("sample() needs bounds for at least one parameter")
    d = len(names)
    if method == "sobol":
        with warnings.catch_warnings():  # balance warnings for n not a power of 2: the points are still valid
            warnings.simplefilter("ignore", UserWarning)
            unit = qmc.Sobol(d, scramble=True, seed=seed).random(int(n))
    elif method == "lhs":
        unit = qmc.LatinHypercube(d, seed=seed).random(int(n))
    elif method == "random":
        unit = np.random.default_rng(seed).random((int(n), d))
    else:
        raise SweepInputError(f"method must be 'sobol', 'lhs' or 'random', got {method!r}")
    x = np.asarray(lows) + unit * (np.asarray(highs) - np.asarray(lows))
    x = np.where(np.asarray(logs), np.exp(x), x)
    table = pd.DataFrame(x, columns=names)
    table.attrs["dims"] = {name: dims_of(spec[0]) for name, spec in bounds.items() if hasattr(spec[0], "dim")}
    return table


def points_table(model, points: Any, protocol: Protocol) -> pd.DataFrame:
    """The sweep's parameter points as a float DataFrame (SI), checked against ``model``."""
    if isinstance(points, Mapping):
        checked = {}
        for name, v in points.items():
            _check_name(model, name, protocol)
            checked[name] = to_si(v, f"grid values of '{name}'", model.dims[name])
        table = grid(**checked)
    elif isinstance(points, pd.DataFrame):
        check_dims(points.attrs.get("dims", {}), model, "the sweep's column")
        table = points.reset_index(drop=True).copy()
    else:
        raise SweepInputError(f"cannot sweep over {type(points).__name__}: pass a dict of values per parameter "
                              "(full factorial), ts.sweep.grid(...), a DataFrame of points, or "
                              "ts.sweep.sample(bounds, n) for Sobol/random points")
    if len(table) == 0:
        raise SweepInputError("the sweep has no parameter points")
    if table.shape[1] == 0:
        raise SweepInputError("the points table has no parameter columns")
    for name in table.columns:
        _check_name(model, name, protocol)
        try:
            table[name] = table[name].astype(float)
        except (TypeError, ValueError) as err:
            raise SweepInputError(f"column {name!r} must hold numbers (SI), got dtype "
                                  f"{table[name].dtype}") from err
        bad = ~np.isfinite(table[name].to_numpy())
        if bad.any():
            raise SweepInputError(f"column {name!r} has non-finite values at rows "
                                  f"{np.nonzero(bad)[0][:10].tolist()}")
    return table


def _check_name(model, name: Any, protocol: Protocol) -> None:
    if not isinstance(name, str) or name not in model.parameter_names:
        raise UnknownIdentifierError(f"{name!r} is not a parameter of {model.name}; its parameters are "
                                     f"{', '.join(model.parameter_names)}")
    if name == protocol.input:
        raise SweepInputError(f"{name!r} is driven by the step protocol; sweep the amplitudes with "
                              f"ts.sweep.steps([...]) instead of a {name!r} column")
    if name in ("point", "amplitude"):
        raise SweepInputError(f"a parameter named {name!r} clashes with the sweep table's own column")
