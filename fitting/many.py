"""``ts.fit_many``: one :func:`tidesim.fit` per recording (per cell), in-process or as Dask tasks.

>>> table = ts.fit_many(ts.models.get("adex"), ["regular_spiking", "fast_spiking"],
...                     params={"a": (0, 10e-9), "b": (0, 200e-12)}, client="local", n_starts=16)
>>> table[["a", "b", "loss"]], table.loc["regular_spiking", "fit"].score()
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from tidesim.core.errors import TidesimError
from tidesim.core.model import NeuronModel
from tidesim.datasets import Recording, bundled, load, load_bundled
from tidesim.fitting.api import fit
from tidesim.fitting.errors import FitError
from tidesim.fitting.result import FitResult
from tidesim.sweep.cluster import TasksFailedError, connect, run_tasks
from tidesim.sweep.run import ModelSpec, one_torch_thread

__all__ = ["fit_many"]

_NOT_HERE = {"resume", "checkpoint", "callback", "progress"}


@dataclass(frozen=True)
class _FitTask:
    """One recording's fit, as picklable data: the recording travels as a bundled name or itself."""

    name: str
    model: ModelSpec
    recording: Any  # a Recording, or ("bundled", name)
    params: dict
    kwargs: dict
    seed: int | None


def _load(source: Any):
    if isinstance(source, tuple) and source[0] == "bundled":
        return load_bundled(source[1])
    return source


def _run_fit(task: _FitTask) -> dict[str, Any]:
    """Worker side: the fit, returned as plain data (a NeuronModel does not pickle)."""
    t0 = time.perf_counter()
    try:
        with one_torch_thread():
            result = fit(task.model.build(), _load(task.recording), task.params, seed=task.seed, **task.kwargs)
    except TidesimError as err:  # a verdict on this recording (no spikes, bad bounds): retrying cannot help
        return {"error": f"{type(err).__name__}: {err}"}
    return {"best_params": result.best_params, "start_losses": result.start_losses, "starts": result.starts,
            "history": result.history, "settings": result.settings, "data": result.data,
            "seconds": time.perf_counter() - t0}


def _sources(recordings: Any) -> list[tuple[str, Any]]:
    """(name, Recording or ("bundled", name)) per recording given."""
    if isinstance(recordings, (Recording, str, Path)):
        recordings = [recordings]
    items = list(recordings.items()) if isinstance(recordings, Mapping) else [(None, r) for r in recordings]
    if not items:
        raise FitError("fit_many needs at least one recording")
    out: list[tuple[str, Any]] = []
    shipped = set(bundled())
    for name, rec in items:
        if isinstance(rec, str) and rec in shipped:
            out.append((name or rec, ("bundled", rec)))
        elif isinstance(rec, (str, Path)):
            if not Path(rec).exists():
                raise FitError(f"{rec!r} is neither a shipped recording ({', '.join(bundled())}) nor a file")
            loaded = load(rec)
            out.append((name or loaded.name, loaded))
        elif isinstance(rec, Recording):
            out.append((name or rec.name, rec))
        else:
            raise FitError(f"cannot fit {type(rec).__name__}: give Recordings, shipped recording names or file "
                           "paths (a list, or a dict of name -> recording)")
    names = [n for n, _ in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FitError(f"recordings must have distinct names; repeated: {', '.join(map(str, dupes))} "
                       "(pass a dict of name -> recording)")
    return out


def fit_many(
    model,
    recordings: Any,
    params: Mapping[str, Any],
    client: Any = None,
    seed: int | None = 0,
    per_recording: Mapping[str, Mapping[str, Any]] | None = None,
    on_error: str = "raise",
    retries: int = 2,
    progress: bool = False,
    connect_timeout: float = 10.0,
    **fit_kwargs: Any,
) -> pd.DataFrame:
    """Fit ``model`` to each recording separately (one cell each) with :func:`tidesim.fit`.

    Parameters
    ----------
    model, params
        As for :func:`tidesim.fit`: the model and ``{name: (low, high)}`` bounds (SI or quantities).
    recordings
        Recordings (:class:`~tidesim.datasets.Recording`), names of shipped recordings
        (``ts.datasets.bundled()``; workers load them themselves) or file paths: a list, or a dict
        ``{name: recording}`` naming the rows.
    client
        ``None``: fit here, one after the other. ``"local"`` (a Dask LocalCluster), a scheduler
        address, a ``distributed.Client`` or a cluster: each fit is a Dask task, retried
        ``retries`` times. Every fit gets the same ``seed`` and runs with one torch thread, so the
        result does not depend on where (or in which order) the fits run: it is the sequential one.
    per_recording
        ``{name: {fit argument: value}}`` overriding ``fit_kwargs`` for one recording (e.g. its
        ``sweeps`` or ``window``, which differ between protocols).
    on_error
        ``"raise"``: a fit that fails raises :class:`TasksFailedError` naming the recordings and
        why, once the others are done (their table is the error's ``partial``); ``"report"``: its
        row has NaN parameters and the error in ``status``. A tidesim error about the recording
        (e.g. no spikes for a spike loss) is final; other failures (a lost worker, a crash) are
        retried ``retries`` times first.
    fit_kwargs
        Passed to every :func:`tidesim.fit` (``loss``, ``method``, ``n_starts``, ``max_iter``,
        ``dt``, ``window``, ``sweeps``, ``fixed``, ...).

    Returns
    -------
    pandas.DataFrame
        Indexed by recording name: the best parameters (SI), ``loss``, ``n_sweeps``, ``seconds``
        (the fit's own time), ``status`` (``ok`` or the error) and ``fit`` (the
        :class:`~tidesim.FitResult`, or None). ``attrs["units"]`` holds the parameters' units.
    """
    if not isinstance(model, NeuronModel):
        raise FitError(f"fit_many fits a NeuronModel (e.g. ts.models.get('adex')), got {type(model).__name__}")
    if on_error not in ("raise", "report"):
        raise FitError(f"on_error must be 'raise' or 'report', got {on_error!r}")
    here = sorted(_NOT_HERE & set(fit_kwargs))
    if here:
        raise FitError(f"fit_many does not take {', '.join(here)} (each fit runs as its own task)")
    sources = _sources(recordings)
    names = [n for n, _ in sources]
    unknown = sorted(set(per_recording or {}) - set(names))
    if unknown:
        raise FitError(f"per_recording names {unknown} are not among the recordings {names}")
    spec = ModelSpec.of(model)
    tasks = []
    for name, source in sources:
        kwargs = {**fit_kwargs, **dict((per_recording or {}).get(name, {}))}
        tasks.append(_FitTask(name, spec, source, dict(params), kwargs, seed))

    outputs: dict[int, dict[str, Any]] = {}

    bar = tqdm(total=len(tasks), desc=f"fit_many {model.name}", unit="recording", disable=not progress)

    def finished(i: int, out: dict[str, Any]) -> None:
        outputs[i] = out
        bar.update(1)

    failure: TasksFailedError | None = None
    try:
        with connect(client, connect_timeout) as dask_client:
            try:
                run_tasks(_run_fit, tasks, [f"recording {n!r}" for n in names], dask_client, finished,
                          retries=retries, name=f"tidesim-fit-{model.name}", keep_going=True)
            except TasksFailedError as err:
                failure = err
    finally:
        bar.close()
    errors = dict(zip(failure.indices, failure.failed.values())) if failure is not None else {}
    errors.update({i: out["error"] for i, out in outputs.items() if "error" in out})
    table = _table(model, tasks, {i: o for i, o in outputs.items() if "error" not in o}, errors)
    if errors and on_error == "raise":
        lines = "\n".join(f"  recording {tasks[i].name!r}: {errors[i]}" for i in sorted(errors))
        raise TasksFailedError(f"fit_many of {model.name}: {len(errors)} of {len(tasks)} fits failed:\n{lines}",
                               {f"recording {tasks[i].name!r}": errors[i] for i in sorted(errors)},
                               table[table["status"] == "ok"], sorted(errors)) from failure
    return table


def _table(model, tasks: Sequence[_FitTask], outputs: dict[int, dict[str, Any]],
           messages: dict[int, str]) -> pd.DataFrame:
    param_names = list(tasks[0].params)
    rows = []
    for i, task in enumerate(tasks):
        row: dict[str, Any] = {"recording": task.name}
        out = outputs.get(i)
        if out is None:
            row.update({p: np.nan for p in param_names})
            row.update({"loss": np.nan, "n_sweeps": 0, "seconds": np.nan,
                        "status": f"failed: {messages.get(i, 'not run')}", "fit": None})
        else:
            fixed = task.kwargs.get("fixed")
            base = model.with_params(**fixed) if fixed else model
            result = FitResult(base, out["best_params"], out["start_losses"], out["starts"], out["history"],
                               out["settings"], data=out["data"])
            row.update(result.best_params)
            row.update({"loss": result.loss, "n_sweeps": result.data.n_sweeps if result.data is not None else 0,
                        "seconds": out["seconds"], "status": "ok", "fit": result})
        rows.append(row)
    table = pd.DataFrame(rows).set_index("recording")
    table.attrs["units"] = {p: model.unit_of(p) for p in param_names if p in model.parameter_names}
    return table

