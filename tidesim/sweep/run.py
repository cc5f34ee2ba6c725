"""Running a sweep in chunks: memory planning, one chunk's batched simulation, the on-disk chunk cache.

A chunk is a contiguous block of parameter points. Each chunk runs one batched ``ts.simulate`` per
protocol amplitude (one neuron per point; the step waveform is a ``[T]`` input shared by all of
them, so the input costs nothing per point), keeps only the spikes inside the step window, and
returns the measures as small arrays. The same function runs in-process or as a Dask task: it
takes a picklable :class:`ChunkTask` (the model travels as its constructor arguments, since a
NeuronModel holds generated code) and returns plain numpy arrays.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from tidesim.core.errors import NumericalInstabilityError
from tidesim.core.model import NeuronModel
from tidesim.engines.simulate import n_steps_for, simulate
from tidesim.sweep.measures import (
    Measure,
    MeasureError,
    StepSpikes,
    measure_key,
    point_measure_values,
)
from tidesim.sweep.points import Protocol, SweepInputError

__all__ = ["ModelSpec", "ChunkTask", "run_chunk", "plan_chunks", "parse_bytes", "bytes_per_point",
           "chunk_seed", "run_key", "cache_path", "load_cached", "save_cached", "one_torch_thread"]


# ---------------------------------------------------------------- the model as picklable data
_MODELS: OrderedDict[str, NeuronModel] = OrderedDict()  # built models by content key (the latest 32)


def _remember(key: str, model: NeuronModel) -> NeuronModel:
    _MODELS[key] = model
    _MODELS.move_to_end(key)
    while len(_MODELS) > 32:
        _MODELS.popitem(last=False)
    return model


def _stable(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_stable(value[k])}" for k in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_stable(v) for v in value) + "]"
    if isinstance(value, np.ndarray):
        return f"array{value.shape}:" + hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()[:16]
    if isinstance(value, torch.Tensor):
        return _stable(value.detach().cpu().numpy())
    if isinstance(value, float):
        return repr(value)
    return repr(value)


@dataclass(frozen=True)
class ModelSpec:
    """A NeuronModel as its constructor arguments (what travels to Dask workers) and a content key."""

    spec: dict
    key: str

    @classmethod
    def of(cls, model: NeuronModel) -> "ModelSpec":
        spec = model.spec
        if not isinstance(spec["equations"], str):
            spec["equations"] = str(spec["equations"])
        # the key: what the model computes (equations with their declared units, SI values)
        ident = _stable({"equations": str(model.equations), "threshold": model.threshold, "reset": model.reset,
                         "refractory": repr(model.refractory), "parameters": dict(model.parameters),
                         "initial": dict(model.initial), "method": model.method,
                         "threshold_scale": model.threshold_scale})
        key = hashlib.sha256(ident.encode()).hexdigest()
        if key not in _MODELS:
            _remember(key, model)
        return cls(spec, key)

    def build(self) -> NeuronModel:
        """The model (built once per process and kept)."""
        model = _MODELS.get(self.key)
        return model if model is not None else _remember(self.key, NeuronModel(**self.spec))


# ---------------------------------------------------------------- memory, chunks, seeds
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(value: int | float | str) -> int:
    """Bytes from an int or a text such as ``"512MB"``, ``"2 GiB"``."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        out = int(value)
    else:
        m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([A-Za-z]*)\s*", str(value))
        if not m or m.group(2).lower() not in _UNITS:
            raise SweepInputError(f"cannot read a memory size from {value!r}; give bytes or text like '512MB', "
                               "'2GiB'")
        out = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if out <= 0:
        raise SweepInputError(f"memory_budget must be positive, got {value!r}")
    return out


def bytes_per_point(n_steps: int, dtype: torch.dtype) -> int:
    """Peak memory one parameter point needs in a chunk's run: the ``[T]`` spike column (the eager
    engine also keeps a list of steps before stacking: twice that), plus states and bookkeeping."""
    itemsize = torch.tensor([], dtype=dtype).element_size()
    return 2 * n_steps * itemsize + 1024


def plan_chunks(n_points: int, n_steps: int, dtype: torch.dtype, memory_budget: int,
                n_per_chunk: int | None) -> int:
    """Points per chunk: ``n_per_chunk`` if given, else as many as fit in ``memory_budget`` bytes."""
    if n_per_chunk is not None:
        if int(n_per_chunk) < 1:
            raise SweepInputError(f"n_per_chunk must be a positive number of points, got {n_per_chunk}")
        return min(int(n_per_chunk), n_points)
    need = bytes_per_point(n_steps, dtype)
    fit = memory_budget // need
    if fit < 1:
        warnings.warn(f"memory_budget of {memory_budget} bytes is below what one parameter point needs "
                      f"(~{need} bytes for {n_steps} steps); running one point per chunk", stacklevel=3)
        fit = 1
    return int(min(fit, n_points))


def chunk_seed(seed: int, chunk: int, amplitude_index: int) -> int:
    """The noise seed of one chunk's run at one amplitude: derived from the sweep's seed and the
    chunk's index, so that a chunk gives the same numbers wherever and whenever it runs."""
    return int(np.random.SeedSequence([int(seed), int(chunk), int(amplitude_index)]).generate_state(1)[0])


_THREADS_LOCK = threading.Lock()
_THREADS_USERS = [0, 1]  # [tasks inside, torch's thread count before the first]


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run with one torch intra-op thread (restored afterwards): a task then computes the same bits
    in the caller's process, in a Dask worker process and in a worker thread."""
    with _THREADS_LOCK:
        if _THREADS_USERS[0] == 0:
            _THREADS_USERS[1] = torch.get_num_threads()
            torch.set_num_threads(1)
        _THREADS_USERS[0] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_USERS[0] -= 1
            if _THREADS_USERS[0] == 0 and torch.get_num_threads() != _THREADS_USERS[1]:
                torch.set_num_threads(_THREADS_USERS[1])


# ---------------------------------------------------------------- one chunk
@dataclass(frozen=True)
class ChunkTask:
    """Everything one chunk needs (picklable)."""

    index: int
    first_point: int
    model: ModelSpec
    params: dict[str, np.ndarray]  # [n] SI values per swept parameter
    protocol: Protocol
    measures: tuple[Measure, ...]
    dt: float
    dtype: str
    engine: str
    seed: int

    @property
    def n(self) -> int:
        return int(len(next(iter(self.params.values()))))

    def describe(self) -> str:
        last = self.first_point + self.n - 1
        return f"chunk {self.index} (points {self.first_point}-{last})"


def _dtype(name: str) -> torch.dtype:
    return {"float64": torch.float64, "float32": torch.float32}[name]


def _window_spikes(events: tuple[np.ndarray, np.ndarray], i0: int, i1: int, dt: float, amplitude: float,
                   points: np.ndarray, n: int) -> StepSpikes:
    """The spike events (steps, columns) inside steps ``[i0, i1)``, sorted by point then time; column
    ``c`` is point ``points[c]`` (increasing) of ``n``."""
    inside = (events[0] >= i0) & (events[0] < i1)
    owner = points[events[1][inside]]
    step = events[0][inside]
    order = np.argsort(owner, kind="stable")
    owner, step = owner[order], step[order]
    times = step.astype(np.float64) * dt - i0 * dt  # as SimulationResult.t: step index * dt
    return StepSpikes(n, owner, times, (i1 - i0) * dt, amplitude, dt)


def run_chunk(task: ChunkTask) -> dict[str, np.ndarray]:
    """Simulate one chunk at every amplitude and compute its measures.

    Returns ``{"counts": [n_amp, n], "diverged": [n_amp, n] bool, "step:<name>": [n_amp, n],
    "point:<name>": [n]}``. A point whose simulation blows up (a state becomes NaN or infinite) is
    taken out and the rest of the chunk runs again; its measures are NaN and ``diverged`` marks it.
    """
    model = task.model.build()
    protocol, dt = task.protocol, task.dt
    n_steps = n_steps_for(protocol.duration, dt)
    i0, i1 = protocol.step_indices(dt)
    i1 = min(i1, n_steps)
    dtype = _dtype(task.dtype)
    amps = np.asarray(protocol.amplitudes, dtype=float)
    step_measures = [m for m in task.measures if m.level == "step"]
    counts = np.zeros((amps.size, task.n), dtype=np.int64)
    values = {m.name: np.full((amps.size, task.n), np.nan) for m in step_measures}
    params = {k: torch.as_tensor(np.asarray(v, dtype=float), dtype=dtype) for k, v in task.params.items()}
    diverged = np.zeros((amps.size, task.n), dtype=bool)
    with one_torch_thread(), torch.no_grad():
        for j, amp in enumerate(amps):
            wave = torch.as_tensor(protocol.waveform(float(amp), dt, n_steps), dtype=dtype)
            alive = np.arange(task.n)
            seed = chunk_seed(task.seed, task.index, j)
            while True:  # a point whose state blows up (NaN/inf) is dropped and the others run again
                try:
                    res = simulate(model, duration=protocol.duration, n=alive.size, dt=dt,
                                   params={k: v[alive] for k, v in params.items()}, inputs={protocol.input: wave},
                                   record=[], dtype=dtype, engine=task.engine, seed=seed)
                    break
                except NumericalInstabilityError as err:
                    if err.neuron is None or not 0 <= err.neuron < alive.size:
                        raise
                    diverged[j, alive[err.neuron]] = True
                    alive = np.delete(alive, err.neuron)
                    res = None
                    if alive.size == 0:
                        break
            if res is None:
                spikes = StepSpikes(task.n, np.zeros(0, np.int64), np.zeros(0), (i1 - i0) * dt, float(amp), dt)
            else:
                spikes = _window_spikes(res.spike_events, i0, i1, dt, float(amp), alive, task.n)
            del res
            counts[j] = spikes.counts()
            for m in step_measures:
                try:
                    out = np.asarray(m.fn(spikes), dtype=float)
                except MeasureError as err:
                    raise MeasureError(f"{err} [{task.describe()}, amplitude {amp:g}]") from err
                if out.shape != (task.n,):
                    raise MeasureError(f"measure {m.name!r} returned shape {out.shape}; expected ({task.n},), "
                                       "one value per point")
                values[m.name][j] = out
                values[m.name][j, diverged[j]] = np.nan
    result = {"counts": counts, "diverged": diverged}
    result.update({f"step:{k}": v for k, v in values.items()})
    window = (i1 - i0) * dt
    for k, v in point_measure_values(task.measures, counts, amps, window).items():
        v[diverged.any(0)] = np.nan  # a point that blew up at some amplitude has no f-I curve
        result[f"point:{k}"] = v
    return result


# ---------------------------------------------------------------- the cache
def run_key(task_common: dict[str, Any]) -> str:
    """Hash of everything that makes a sweep's chunks what they are, but the points themselves."""
    return hashlib.sha256(_stable(task_common).encode()).hexdigest()


def common_key(model: ModelSpec, protocol: Protocol, measures: tuple[Measure, ...], dt: float, dtype: str,
               engine: str, seed: int, per_chunk: int, columns: list[str]) -> str:
    return run_key({"model": model.key, "protocol": protocol.key(), "measures": [measure_key(m) for m in measures],
                    "dt": dt, "dtype": dtype, "engine": engine, "seed": int(seed), "per_chunk": int(per_chunk),
                    "columns": list(columns), "format": 1})


def cache_path(cache_dir: Path, model_name: str, key: str, task: ChunkTask) -> Path:
    """``sweep-<model>-<arguments hash>-c<chunk>-<points hash>.npz``."""
    h = hashlib.sha256()
    for name in sorted(task.params):
        h.update(name.encode())
        h.update(np.ascontiguousarray(task.params[name], dtype=np.float64).tobytes())
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", model_name)[:40]
    return Path(cache_dir) / f"sweep-{safe}-{key[:16]}-c{task.index:05d}-{h.hexdigest()[:12]}.npz"


def load_cached(path: Path, task: ChunkTask) -> dict[str, np.ndarray] | None:
    """A finished chunk's arrays, or None (missing, unreadable or not this chunk's shape: rerun it)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            out = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        warnings.warn(f"ignoring unreadable cached sweep chunk {path} ({err}); recomputing it", stacklevel=3)
        return None
    n_amp = len(task.protocol.amplitudes)
    expected = {"counts", "diverged"} | {f"{m.level}:{m.name}" for m in task.measures}
    if set(out) != expected or out["counts"].shape != (n_amp, task.n):
        warnings.warn(f"ignoring cached sweep chunk {path}: it does not hold this chunk's measures", stacklevel=3)
        return None
    return out


def save_cached(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a finished chunk atomically (a crash never leaves a half-written file under the name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.part")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
