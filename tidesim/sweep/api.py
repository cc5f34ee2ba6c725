"""``ts.sweep``: the sweep itself (points x protocol -> a table of measures), chunked and cached."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from tidesim.core.inputs import check_time, n_steps_for
from tidesim.core.model import NeuronModel
from tidesim.sweep.cluster import (
    TasksFailedError,
    connect,
    run_tasks,
)
from tidesim.sweep.measures import (
    Measure,
    MeasureError,
    resolve_measures,
)
from tidesim.sweep.points import Protocol, SweepInputError, check_dims, points_table, steps
from tidesim.sweep.run import (
    ChunkTask,
    ModelSpec,
    cache_path,
    common_key,
    load_cached,
    parse_bytes,
    plan_chunks,
    run_chunk,
    save_cached,
)

__all__ = ["sweep"]


def sweep(
    model: NeuronModel,
    grid_or_samples: Mapping[str, Any] | pd.DataFrame,
    protocol: Protocol,
    measures: Sequence[Any] | Mapping[str, Any] | None = None,
    n_per_chunk: int | None = None,
    memory_budget: int | str = "256MB",
    progress: bool = True,
    cache_dir: str | Path | None = None,
    client: Any = None,
    seed: int = 0,
    dt: Any = 1e-4,
    engine: str = "auto",
    dtype: torch.dtype = torch.float64,
    retries: int = 2,
    connect_timeout: float = 10.0,
) -> pd.DataFrame:
    """Simulate every parameter point of ``grid_or_samples`` under ``protocol``; return the measures.

    Parameters
    ----------
    model
        A :class:`~tidesim.NeuronModel`; parameters not swept keep its values.
    grid_or_samples
        A dict of values per parameter (full factorial grid, as :func:`grid`), or a DataFrame of
        points (a column per parameter, SI), e.g. from :func:`grid` or :func:`sample` (Sobol,
        Latin hypercube or random points inside bounds).
    protocol
        The current steps: :func:`steps` (amplitudes in A, start/stop/duration in s).
    measures
        Names of built-in measures (``spike_count``, ``rate`` (Hz), ``first_spike_latency`` (s),
        ``isi_cv``, ``adaptation_index``, ``burst_fraction``, ``fi_slope`` (Hz/A),
        ``rheobase_estimate`` (A)), ``ts.analysis`` functions (mapped to those), callables of one
        spike train, or :class:`Measure` objects. Default: every built-in.
    n_per_chunk, memory_budget
        Points simulated together in one batched run; by default as many as fit in
        ``memory_budget`` (bytes, or text like ``"512MB"``). A grid larger than the budget is
        split into chunks, never refused; a budget below one point's needs runs one point at a time.
    progress
        Show a tqdm progress bar (points done).
    cache_dir
        Keep each finished chunk there (``sweep-<model>-<hash of the arguments>-c<chunk>-<hash of
        its points>.npz``); a rerun with the same arguments reads finished chunks back instead of
        simulating them (resume after an interruption).
    client
        ``None``: run here. ``"local"``: a Dask LocalCluster on this machine; a scheduler address
        (``"tcp://host:8786"``), a ``distributed.Client`` or a cluster: chunks become Dask tasks
        (retried ``retries`` times; a task that still fails raises :class:`TasksFailedError`
        naming its chunks, after the others are kept). ``connect_timeout`` (s) bounds the wait for
        a scheduler address. The chunking and per-chunk seeds do not depend on ``client``, so the
        result is the same as the in-process run's.
    seed
        Seed of models with noise; chunk ``k`` at amplitude ``j`` uses a seed derived from
        ``(seed, k, j)``.
    dt, engine, dtype
        Integration step (s), engine of :func:`tidesim.simulate` (``"auto"``: the compiled C loop
        where it can run) and precision.
    """
    t0 = time.perf_counter()
    if not isinstance(model, NeuronModel):
        raise SweepInputError("model must be a NeuronModel (e.g. ts.models.get('adex')), got "
                              f"{type(model).__name__}")
    if isinstance(protocol, Mapping):
        protocol = steps(**protocol)
    if not isinstance(protocol, Protocol):
        raise SweepInputError("protocol must be a ts.sweep.steps(...) protocol, e.g. ts.sweep.steps([0.5e-9, "
                              f"1e-9], start=0.1, stop=0.6); got {type(protocol).__name__}")
    if protocol.input not in model.parameter_names:
        raise SweepInputError(f"the protocol drives {protocol.input!r}, which is not a parameter of {model.name} "
                              f"(its parameters: {', '.join(model.parameter_names)}); pass steps(..., input=NAME)")
    if protocol.dims is not None:
        check_dims({protocol.input: protocol.dims}, model, "the protocol's input")
    if engine not in ("auto", "compiled", "eager"):
        raise SweepInputError(f"unknown engine {engine!r}; use 'auto', 'compiled' or 'eager'")
    dtype_name = {torch.float64: "float64", torch.float32: "float32"}.get(dtype)
    if dtype_name is None:
        raise SweepInputError(f"dtype must be torch.float64 or torch.float32, got {dtype}")
    dt_s = check_time(dt, "dt")
    table = points_table(model, grid_or_samples, protocol)
    ms = resolve_measures(measures)
    clash = sorted(set(m.name for m in ms) & (set(table.columns) | {"point", "amplitude"}))
    if clash:
        raise MeasureError(f"measure names {clash} are also columns of the sweep table; rename the measures")
    n_steps = n_steps_for(protocol.duration, dt_s)
    per_chunk = plan_chunks(len(table), n_steps, dtype, parse_bytes(memory_budget), n_per_chunk)
    spec = ModelSpec.of(model)
    columns = list(table.columns)
    key = common_key(spec, protocol, ms, dt_s, dtype_name, engine, seed, per_chunk, columns)
    values = {c: table[c].to_numpy(dtype=float) for c in columns}
    tasks = [ChunkTask(k, start, spec, {c: values[c][start:start + per_chunk].copy() for c in columns}, protocol,
                       ms, dt_s, dtype_name, engine, int(seed))
             for k, start in enumerate(range(0, len(table), per_chunk))]

    results: dict[int, dict[str, np.ndarray]] = {}
    cache = Path(cache_dir) if cache_dir is not None else None
    bar = _bar(len(table), model.name, progress)
    try:
        todo = []
        for task in tasks:
            cached = load_cached(cache_path(cache, model.name, key, task), task) if cache else None
            if cached is not None:
                results[task.index] = cached
                bar.update(task.n)
            else:
                todo.append(task)
        n_cached = len(tasks) - len(todo)

        def finished(i: int, out: dict[str, np.ndarray]) -> None:
            task = todo[i]
            results[task.index] = out
            if cache is not None:
                save_cached(cache_path(cache, model.name, key, task), out)
            bar.update(task.n)

        with connect(client, connect_timeout) as dask_client:
            try:
                run_tasks(run_chunk, todo, [t.describe() for t in todo], dask_client, finished, retries=retries,
                          name=f"tidesim-sweep-{model.name}")
            except TasksFailedError as err:
                done = _frame(table, protocol, ms, tasks, results, model, partial=True)
                kept = f"; finished chunks are kept in {cache} (rerun to resume)" if cache else ""
                raise TasksFailedError(f"sweep of {model.name}: {err}{kept}", err.failed, done,
                                       err.indices) from err
    finally:
        bar.close()
    df = _frame(table, protocol, ms, tasks, results, model)
    df.attrs.update({"chunks": len(tasks), "points_per_chunk": per_chunk, "cached_chunks": n_cached,
                     "seconds": time.perf_counter() - t0, "seed": int(seed), "dt": dt_s, "model": model.name,
                     "engine": engine, "dtype": dtype_name})
    return df


def _bar(total: int, name: str, progress: bool):
    return tqdm(total=total, desc=f"sweep {name}", unit="point", disable=not progress)


def _frame(table: pd.DataFrame, protocol: Protocol, ms: tuple[Measure, ...], tasks: list[ChunkTask],
           results: dict[int, dict[str, np.ndarray]], model: NeuronModel, partial: bool = False) -> pd.DataFrame:
    """The long table: a row per (point, amplitude), points in the given order, amplitudes within."""
    amps = np.asarray(protocol.amplitudes, dtype=float)
    n_amp = amps.size
    done = [t for t in tasks if t.index in results]
    if partial and not done:
        return pd.DataFrame()
    point_idx = np.concatenate([np.arange(t.first_point, t.first_point + t.n) for t in done])
    out: dict[str, Any] = {"point": np.repeat(point_idx, n_amp)}
    for c in table.columns:
        out[c] = np.repeat(table[c].to_numpy(dtype=float)[point_idx], n_amp)
    out["amplitude"] = np.tile(amps, point_idx.size)
    diverged = np.concatenate([results[t.index]["diverged"].T.reshape(-1) for t in done])
    for m in ms:
        if m.level == "step":  # [n_amp, n] per chunk -> point-major rows
            col = np.concatenate([results[t.index][f"step:{m.name}"].T.reshape(-1) for t in done])
        else:
            col = np.repeat(np.concatenate([results[t.index][f"point:{m.name}"] for t in done]), n_amp)
        out[m.name] = col
    df = pd.DataFrame(out)
    units = {"point": "", **{c: model.unit_of(c) for c in table.columns},
             "amplitude": model.unit_of(protocol.input)}
    units.update({m.name: m.unit for m in ms})
    df.attrs["units"] = units
    df.attrs["nan_counts"] = {m.name: int(df[m.name].isna().sum()) for m in ms}
    df.attrs["measure_levels"] = {m.name: m.level for m in ms}
    df.attrs["protocol"] = protocol.describe()
    df.attrs["diverged"] = {"rows": int(diverged.sum()),
                            "points": sorted(set(out["point"][diverged].tolist()))}
    return df
