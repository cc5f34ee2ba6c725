"""``ts.sweep``: simulate a model over a grid or sample of parameter points under a step protocol.

>>> import numpy as np, tidesim as ts
>>> adex = ts.models.get("adex")
>>> df = ts.sweep(adex, ts.sweep.grid(a=np.linspace(0, 8e-9, 100), b=np.linspace(0, 200e-12, 100)),
...               ts.sweep.steps([0.6e-9, 0.8e-9], start=0.1, stop=0.6), measures=["rate", "isi_cv", "fi_slope"])
>>> ts.sweep.plot_map(df, "a", "b", measure="rate", amplitude=0.8e-9)

The module itself is callable (``ts.sweep(...)`` is :func:`sweep`), and holds the helpers:
:func:`grid`, :func:`sample`, :func:`steps`, :class:`Protocol`, :class:`Measure`, :func:`plot_map`,
:func:`burst_fraction`.

The result is a pandas DataFrame with a row per parameter point and step amplitude: ``point`` (the
point's index in the given table), the swept parameters (SI), ``amplitude`` (SI of the protocol's
input) and one column per measure. ``df.attrs`` holds ``units`` (per column), ``nan_counts`` (rows
with NaN per measure: silent points give NaN, never an exception), ``diverged`` (rows and points
whose simulation blew up, NaN/inf: their measures are NaN, the other points are unaffected),
``protocol``, ``chunks``, ``points_per_chunk``, ``cached_chunks`` (read back from ``cache_dir``),
``seconds`` and ``seed``.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import pandas as pd

from tidesim.sweep.api import sweep
from tidesim.sweep.cluster import SchedulerUnreachableError, TasksFailedError
from tidesim.sweep.measures import BUILTIN, Measure, MeasureError, StepSpikes, burst_fraction
from tidesim.sweep.plot import plot_map
from tidesim.sweep.points import Protocol, SweepInputError, grid, sample, steps

__all__ = ["sweep", "grid", "sample", "steps", "Protocol", "Measure", "StepSpikes", "burst_fraction", "plot_map",
           "BUILTIN", "MeasureError", "SweepInputError", "TasksFailedError", "SchedulerUnreachableError"]


class _SweepModule(types.ModuleType):
    """``tidesim.sweep`` is both this package and the function: ``ts.sweep(...)``, ``ts.sweep.grid(...)``."""

    def __call__(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _SweepModule
