"""Coupling maps of many recordings at once, and of one recording's time windows.

>>> maps = ts.fitting.infer_connectivity_many({"day1": s1, "day2": s2}, client="local")
>>> before_after, table = ts.fitting.infer_connectivity_windows(spikes, [(0, 600), (900, 1500)])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd

from tidesim.datasets.spikes import SpikeData
from tidesim.fitting.connectivity import infer_connectivity
from tidesim.fitting.connectivity_result import ConnectivityResult
from tidesim.fitting.coupling_data import as_population
from tidesim.fitting.errors import FitError
from tidesim.sweep.cluster import connect, run_tasks
from tidesim.sweep.run import one_torch_thread

__all__ = ["infer_connectivity_many", "infer_connectivity_windows"]


@dataclass(frozen=True)
class _Session:
    name: str
    spikes: SpikeData
    kwargs: dict


def _run_session(task: _Session) -> ConnectivityResult:
    with one_torch_thread():
        return infer_connectivity(task.spikes, **task.kwargs)


def infer_connectivity_many(sessions: Mapping[str, Any], client: Any = None, retries: int = 2,
                            connect_timeout: float = 10.0, **kwargs: Any) -> dict[str, ConnectivityResult]:
    """:func:`infer_connectivity` of each session (``{name: spikes}``), here one after the other
    (``client=None``) or as Dask tasks (``"local"``, a scheduler address, a ``distributed.Client``).

    Every session runs with one torch thread and the same settings (``kwargs``), so the maps do not
    depend on where they ran. Sessions are checked here, before any task starts, and a failing task
    raises ``TasksFailedError`` naming the session.
    """
    if not sessions:
        raise FitError("infer_connectivity_many needs at least one session ({name: spikes})")
    tasks = [_Session(str(name), as_population(spikes, kwargs.get("t_stop")), {**kwargs, "t_stop": None})
             for name, spikes in sessions.items()]
    results: dict[int, ConnectivityResult] = {}
    with connect(client, connect_timeout) as dask_client:
        run_tasks(_run_session, tasks, [f"session {t.name!r}" for t in tasks], dask_client,
                  lambda i, out: results.__setitem__(i, out), retries=retries, name="tidesim-connectivity")
    return {t.name: results[i] for i, t in enumerate(tasks)}


def infer_connectivity_windows(spikes: Any, windows: Sequence[tuple[float, float]], t_stop: float | None = None,
                          **kwargs: Any) -> tuple[list[ConnectivityResult], pd.DataFrame]:
    """Coupling maps of time windows of one recording (before/after a pairing protocol, early/late in a
    session), each fitted on its own, and a table of how each pair's coupling changed.

    ``windows``: ``(start, stop)`` in seconds within the recording; each becomes a recording that starts
    at 0. The table has one row per ordered pair and, per window ``k``, ``weight_k``, ``pvalue_k`` and
    ``significant_k``, then ``change`` (last window's weight minus the first's). A change is only as
    reliable as the two maps: compare windows of equal length, and read a coupling that is significant
    in one window and not in the other as a candidate, not as a tested difference.
    """
    data = as_population(spikes, t_stop)
    if not windows:
        raise FitError("infer_connectivity_windows needs at least one (start, stop) window in seconds")
    maps = []
    for k, (start, stop) in enumerate(windows):
        if not (data.t_start <= start < stop <= data.t_stop):
            raise FitError(f"window {k} = ({start:g}, {stop:g}) s lies outside the recording "
                           f"[{data.t_start:g}, {data.t_stop:g}) s or has stop <= start")
        cut = [[tr[(tr >= start) & (tr < stop)] - start for tr in unit] for unit in data.trains]
        part = SpikeData(cut, 0.0, stop - start, data.unit_names, f"{data.name} [{start:g}, {stop:g}) s")
        maps.append(infer_connectivity(part, **kwargs))
    table = maps[0].to_dataframe()[["target", "source"]].copy()
    for k, res in enumerate(maps):
        df = res.to_dataframe()
        for column in ("weight", "pvalue", "significant"):
            table[f"{column}_{k}"] = df[column]
    table["change"] = table[f"weight_{len(maps) - 1}"] - table["weight_0"]
    table.attrs["windows"] = [tuple(map(float, w)) for w in windows]
    return maps, table

