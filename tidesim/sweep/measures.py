"""Measures of a parameter sweep: what is computed from each point's spikes under a step protocol.

A measure is either *per step* (one value per parameter point and step amplitude, from the spikes
inside the step window) or *per point* (one value per parameter point, from its responses to all
the protocol's amplitudes, such as the f-I slope). The built-in measures are vectorised over the
spikes of a whole chunk of points (a sweep of 10,000 points must not make 10,000 neo objects); they
follow the definitions of :mod:`tidesim.analysis` (the tests check them against it):

=======================  ==========  ========================================================================
name                     unit        value (silent or too few spikes: see "needs")
=======================  ==========  ========================================================================
``spike_count``          1           spikes in the step window (0 when silent)
``rate``                 Hz          spikes in the window / window length (0 when silent)
``first_spike_latency``  s           first spike in the window minus the step onset (needs 1 spike)
``isi_cv``               1           std/mean of the intervals, as ``ts.analysis.cv_isi`` (needs 3 spikes)
``adaptation_index``     1           mean (ISI_k+1 - ISI_k)/(ISI_k+1 + ISI_k), as ``ts.analysis.adaptation_index``
                                     (needs 3 spikes)
``burst_fraction``       1           fraction of the spikes with a neighbour within ``max_isi`` (default 10 ms)
                                     (needs 1 spike)
``fi_slope``             Hz/A        per point: least-squares slope of rate against amplitude over the
                                     amplitudes that evoke spikes (needs 2 such amplitudes)
``rheobase_estimate``    A           per point: the smallest tested amplitude that evokes a spike (needs 1)
=======================  ==========  ========================================================================

A measure that cannot be computed is NaN, never an exception; the sweep counts the NaNs per measure.

Custom measures: a callable ``fn(train) -> float`` of one spike train (1-D array of spike times in
seconds from the step onset, inside the window), e.g. ``ts.analysis.adaptation_index``-like
functions; :class:`~tidesim.analysis.NoSpikesError` (or any error on a train of fewer than 2 spikes)
gives NaN. Or a :class:`Measure` with a vectorised function of :class:`StepSpikes`.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from tidesim import analysis
from tidesim.analysis.spiketrains import NoSpikesError
from tidesim.core.errors import TidesimError

__all__ = ["Measure", "StepSpikes", "MeasureError", "BUILTIN", "resolve_measures", "burst_fraction",
           "point_measure_values"]


class MeasureError(TidesimError, ValueError):
    """A measure is unknown, malformed, or failed on a point for a reason other than missing spikes."""


@dataclass
class StepSpikes:
    """The spikes of ``n`` simulated points inside one step window.

    Attributes
    ----------
    n : int
        Number of points (neurons) in the chunk.
    owner : numpy.ndarray
        ``[k]`` int64, the point of each spike, sorted by point then time.
    times : numpy.ndarray
        ``[k]`` float64, spike times in seconds from the step onset (``0 <= t < window``).
    window : float
        Length of the step window (s).
    amplitude : float
        The step amplitude (A, or the unit of the protocol's input).
    dt : float
        Integration step (s).
    """

    n: int
    owner: np.ndarray
    times: np.ndarray
    window: float
    amplitude: float
    dt: float
    _counts: np.ndarray | None = field(default=None, repr=False)

    def counts(self) -> np.ndarray:
        """``[n]`` int64 spike counts in the window."""
        if self._counts is None:
            self._counts = np.bincount(self.owner, minlength=self.n).astype(np.int64)
        return self._counts

    def trains(self) -> list[np.ndarray]:
        """One array of spike times (s from the step onset) per point."""
        bounds = np.concatenate([[0], np.cumsum(self.counts())])
        return [self.times[bounds[k]:bounds[k + 1]] for k in range(self.n)]

    def intervals(self) -> tuple[np.ndarray, np.ndarray]:
        """(owner, interval in s) of every inter-spike interval within a train, in train order."""
        same = self.owner[1:] == self.owner[:-1]
        return self.owner[1:][same], np.diff(self.times)[same]


@dataclass(frozen=True)
class Measure:
    """A named measure of a sweep.

    ``level="step"``: ``fn(spikes: StepSpikes) -> [n]`` values for one step amplitude.
    ``level="point"``: ``fn(counts [n_amp, n], amplitudes [n_amp], window s) -> [n]`` values from
    the spike counts of a point at every amplitude. ``unit`` is the SI unit written in tables and
    plot labels (``"1"`` for dimensionless); ``key`` identifies the computation in cache file names.
    """

    name: str
    fn: Callable[..., np.ndarray]
    unit: str = "1"
    level: str = "step"
    description: str = ""
    key: str = ""

    def __post_init__(self) -> None:
        if self.level not in ("step", "point"):
            raise MeasureError(f"measure {self.name!r}: level must be 'step' or 'point', got {self.level!r}")
        if not self.name or not isinstance(self.name, str):
            raise MeasureError(f"a measure needs a non-empty name, got {self.name!r}")


# ---------------------------------------------------------------- the built-in measures (vectorised)
def _spike_count(s: StepSpikes) -> np.ndarray:
    return s.counts().astype(float)


def _rate(s: StepSpikes) -> np.ndarray:
    return s.counts() / s.window


def _first_spike_latency(s: StepSpikes) -> np.ndarray:
    out = np.full(s.n, np.nan)
    points, first = np.unique(s.owner, return_index=True)
    out[points] = s.times[first]
    return out


def _isi_cv(s: StepSpikes) -> np.ndarray:
    owner, d = s.intervals()
    k = np.bincount(owner, minlength=s.n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(owner, d, minlength=s.n) / k
        var = np.bincount(owner, (d - mean[owner]) ** 2, minlength=s.n) / k  # two passes: exact for regular trains
        cv = np.sqrt(var) / mean
    cv[k < 2] = np.nan  # 3 spikes or more, as ts.analysis.cv_isi
    return cv


def _adaptation_index(s: StepSpikes) -> np.ndarray:
    owner, d = s.intervals()
    same = owner[1:] == owner[:-1]
    pair_owner = owner[1:][same]
    ratio = (d[1:] - d[:-1])[same] / (d[1:] + d[:-1])[same]
    k = np.bincount(pair_owner, minlength=s.n)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.bincount(pair_owner, ratio, minlength=s.n) / k
    out[k < 1] = np.nan
    return out


def _burst_fraction(s: StepSpikes, max_isi: float) -> np.ndarray:
    close = np.zeros(s.owner.size, dtype=bool)
    if s.owner.size > 1:
        same = s.owner[1:] == s.owner[:-1]
        near = same & (np.diff(s.times) <= max_isi + 1e-9 * s.dt)
        close[1:] |= near  # the later spike of a close pair
        close[:-1] |= near  # and the earlier one
    counts = s.counts()
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.bincount(s.owner, close.astype(float), minlength=s.n) / counts
    out[counts == 0] = np.nan
    return out


def _fi_slope(counts: np.ndarray, amplitudes: np.ndarray, window: float) -> np.ndarray:
    rates = counts / window
    w = (counts > 0).astype(float)
    m = w.sum(0)
    a = amplitudes[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        ma = (w * a).sum(0) / m
        mr = (w * rates).sum(0) / m
        sxx = (w * (a - ma) ** 2).sum(0)
        slope = (w * (a - ma) * (rates - mr)).sum(0) / sxx
    slope[(m < 2) | ~(sxx > 0)] = np.nan
    return slope


def _rheobase_estimate(counts: np.ndarray, amplitudes: np.ndarray, window: float) -> np.ndarray:
    firing = counts > 0
    out = np.where(firing, amplitudes[:, None], np.inf).min(0)
    out[~firing.any(0)] = np.nan
    return out


def burst_fraction(max_isi: float = 10e-3) -> Measure:
    """The ``burst_fraction`` measure with another burst criterion: the fraction of a train's
    spikes that have a neighbour (previous or next spike) within ``max_isi`` seconds."""
    if not max_isi > 0:
        raise MeasureError(f"burst_fraction: max_isi must be a positive time in s, got {max_isi}")
    return Measure("burst_fraction", functools.partial(_burst_fraction, max_isi=float(max_isi)), "1", "step",
                   f"fraction of spikes with a neighbour within {max_isi * 1e3:g} ms",
                   key=f"builtin:max_isi={max_isi!r}")


#: The built-in measures by name (units and definitions: the table of :mod:`tidesim.sweep.measures`).
BUILTIN: dict[str, Measure] = {
    m.name: m for m in [
        Measure("spike_count", _spike_count, "1", "step", "spikes in the step window", "builtin"),
        Measure("rate", _rate, "Hz", "step", "firing rate in the step window", "builtin"),
        Measure("first_spike_latency", _first_spike_latency, "s", "step", "first spike after the step onset",
                "builtin"),
        Measure("isi_cv", _isi_cv, "1", "step", "coefficient of variation of the inter-spike intervals",
                "builtin"),
        Measure("adaptation_index", _adaptation_index, "1", "step", "mean normalised ISI change", "builtin"),
        burst_fraction(10e-3),
        Measure("fi_slope", _fi_slope, "Hz/A", "point", "slope of the f-I curve above rheobase", "builtin"),
        Measure("rheobase_estimate", _rheobase_estimate, "A", "point", "smallest tested step that fires",
                "builtin"),
    ]
}
DEFAULT = tuple(BUILTIN)


def _analysis_aliases() -> dict[Any, str]:
    """ts.analysis functions given as measures map to the vectorised built-ins with their definitions."""
    return {analysis.firing_rate: "rate", analysis.cv_isi: "isi_cv", analysis.adaptation_index: "adaptation_index",
            analysis.first_spike_latency: "first_spike_latency"}


def _callable_key(fn: Callable) -> str:
    """Identity of a user function for cache names: where it lives and its source (or bytecode)."""
    if isinstance(fn, functools.partial):
        return f"partial({_callable_key(fn.func)}, {fn.args!r}, {sorted(fn.keywords.items())!r})"
    if isinstance(fn, _PerTrain):
        return _callable_key(fn.fn)
    where = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
    try:
        body = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        body = code.co_code.hex() if code is not None else repr(fn)
    return where + ":" + hashlib.sha256(body.encode()).hexdigest()[:16]


class _PerTrain:
    """A function of one spike train applied to every train of a chunk (picklable for Dask)."""

    def __init__(self, name: str, fn: Callable[[np.ndarray], float]):
        self.name, self.fn = name, fn

    def __call__(self, s: StepSpikes) -> np.ndarray:
        out = np.full(s.n, np.nan)
        for k, train in enumerate(s.trains()):
            try:
                out[k] = float(self.fn(train))
            except NoSpikesError:
                continue
            except Exception as err:  # noqa: BLE001 - on a (near-)silent train: the measure needs spikes
                if train.size < 2:
                    continue
                raise MeasureError(f"measure {self.name!r} failed on a train of {train.size} spikes "
                                   f"(point {k} of its chunk): {err!r}") from err
        return out


def resolve_measures(measures: Sequence[Any] | Mapping[str, Any] | str | None) -> tuple[Measure, ...]:
    """Measures from names, :class:`Measure` objects, callables of one train, ``(name, callable)``
    pairs or a ``{name: callable}`` mapping; ``None``: every built-in."""
    if measures is None:
        return tuple(BUILTIN[n] for n in DEFAULT)
    if isinstance(measures, (str, Measure)) or callable(measures):
        measures = [measures]
    items: list[Any] = []
    for entry in ([measures] if isinstance(measures, Mapping) else list(measures)):
        items.extend(entry.items() if isinstance(entry, Mapping) else [entry])
    aliases = _analysis_aliases()
    out: list[Measure] = []
    for item in items:
        name = None
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            name, item = item
        if isinstance(item, Measure):
            m = item if name is None else Measure(name, item.fn, item.unit, item.level, item.description, item.key)
        elif isinstance(item, str):
            if item not in BUILTIN:
                raise MeasureError(f"unknown measure {item!r}; built-in measures are {', '.join(BUILTIN)} "
                                   "(or pass a callable of one spike train, or a ts.sweep.Measure)")
            m = BUILTIN[item]
        elif callable(item) and item in aliases:
            m = BUILTIN[aliases[item]]
        elif callable(item):
            label = name or getattr(item, "__name__", None)
            if not label or label == "<lambda>":
                raise MeasureError("a lambda needs a name: pass ('name', fn) or {'name': fn}")
            m = Measure(label, _PerTrain(label, item), "1", "step", f"user measure {label}",
                        key=_callable_key(item))
        else:
            raise MeasureError(f"cannot use {item!r} as a measure: give a name ({', '.join(BUILTIN)}), a callable "
                               "of one spike train (s from the step onset) or a ts.sweep.Measure")
        if name is not None and m.name != name:
            m = Measure(name, m.fn, m.unit, m.level, m.description, m.key)
        out.append(m)
    names = [m.name for m in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise MeasureError(f"measure names must be unique; repeated: {', '.join(dupes)}")
    return tuple(out)


def measure_key(m: Measure) -> str:
    """What identifies a measure's computation (name, level, unit, and its own key or function)."""
    fn_key = m.key or _callable_key(m.fn)
    return f"{m.name}|{m.level}|{m.unit}|{fn_key}"


def point_measure_values(measures: Sequence[Measure], counts: np.ndarray, amplitudes: np.ndarray,
                         window: float) -> dict[str, np.ndarray]:
    """Values of the per-point measures from ``[n_amp, n]`` spike counts."""
    return {m.name: np.asarray(m.fn(counts, amplitudes, window), dtype=float) for m in measures
            if m.level == "point"}
