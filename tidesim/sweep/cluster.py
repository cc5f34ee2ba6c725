"""Running independent tasks in-process or on a ``dask.distributed`` cluster (sweeps, fit_many).

``client`` is ``None`` (run here, in order), ``"local"`` (a LocalCluster on this machine, closed
afterwards), a scheduler address (``"tcp://host:8786"``), a ``distributed.Client`` or a cluster
object. Tasks are submitted with ``retries=`` (a task that raises is run again; a task whose worker
dies is rescheduled by the scheduler); a task that still fails is listed in a
:class:`TasksFailedError` raised after every other task has finished and been delivered, so no
finished work is lost and no failure is dropped.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Any, Callable, Iterator, Sequence

from tidesim.core.errors import TidesimError

__all__ = ["SchedulerUnreachableError", "TasksFailedError", "connect", "run_tasks"]


class SchedulerUnreachableError(TidesimError, OSError):
    """The Dask scheduler at the given address could not be reached (the message names it)."""


class TasksFailedError(TidesimError, RuntimeError):
    """Some tasks still failed after their retries.

    ``failed`` maps each failed task's label (e.g. ``"chunk 3 (points 300-399)"``) to its error
    text; ``partial`` holds what the finished tasks produced (a DataFrame where the caller makes one).
    """

    def __init__(self, message: str, failed: dict[str, str], partial: Any = None,
                 indices: Sequence[int] = ()):
        super().__init__(message)
        self.failed = dict(failed)
        self.partial = partial
        self.indices = list(indices)  # positions of the failed tasks in the submitted list


def _local_cluster(n_workers: int | None = None, processes: bool = True):
    # Dask's distributed loads only when a cluster is used
    from distributed import LocalCluster

    workers = n_workers or max(1, min(os.cpu_count() or 1, 8))
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes, dashboard_address=None)


@contextlib.contextmanager
def connect(client: Any, connect_timeout: float = 10.0) -> Iterator[Any]:
    """A ``distributed.Client`` for ``client`` (see the module text), or None for in-process runs.

    Clients and clusters this function makes are closed on exit; a given Client is left open.
    """
    if client is None:
        yield None
        return
    try:
        # Dask's distributed loads only when a cluster is used
        import distributed
    except ImportError as err:  # pragma: no cover - dask[distributed] is a dependency
        raise TidesimError("client= needs dask.distributed: pip install 'dask[distributed]'") from err
    if isinstance(client, distributed.Client):
        yield client
        return
    owned: list[Any] = []
    try:
        if isinstance(client, str) and client == "local":
            cluster = _local_cluster()
            owned.append(cluster)
            c = distributed.Client(cluster)
        elif isinstance(client, str):
            try:
                c = distributed.Client(client, timeout=connect_timeout)
            except Exception as err:  # noqa: BLE001 - any failure to connect is the same fact for the user
                raise SchedulerUnreachableError(
                    f"could not reach the Dask scheduler at {client!r} within {connect_timeout:g} s "
                    f"({type(err).__name__}: {err}). Is a scheduler running there (dask scheduler) and "
                    "reachable from this machine? Use client='local' for a cluster on this machine.") from err
        elif hasattr(client, "scheduler_address"):  # a LocalCluster, SLURMCluster, ...
            c = distributed.Client(client)
        else:
            raise TidesimError(f"client must be None, 'local', a scheduler address such as 'tcp://host:8786', "
                               f"a distributed.Client or a cluster; got {type(client).__name__}")
        owned.insert(0, c)
        yield c
    finally:
        for obj in owned:
            with contextlib.suppress(Exception):
                obj.close()


def run_tasks(fn: Callable[[Any], Any], tasks: Sequence[Any], labels: Sequence[str], client: Any,
              on_result: Callable[[int, Any], None], retries: int = 2, name: str = "tidesim",
              keep_going: bool = False) -> None:
    """Run ``fn(task)`` for every task; ``on_result(i, result)`` is called here as each finishes.

    In-process (``client is None``) the tasks run in order and an error propagates at once (with a
    note naming the task), or with ``keep_going`` is collected like a Dask failure. On Dask, every
    task is submitted with ``retries``; failures are collected and raised together as
    :class:`TasksFailedError` once the others are delivered.
    """
    failed: dict[int, str] = {}
    if client is None:
        for i, task in enumerate(tasks):
            try:
                out = fn(task)
            except Exception as err:
                if keep_going:
                    failed[i] = f"{type(err).__name__}: {err}"
                    continue
                if hasattr(err, "add_note"):
                    err.add_note(f"(while running {labels[i]})")
                raise
            on_result(i, out)
        _raise_failed(failed, labels, len(tasks), "")
        return
    # Dask's distributed loads only when a cluster is used
    from distributed import as_completed

    token = uuid.uuid4().hex[:10]
    futures = {}
    for i, task in enumerate(tasks):
        fut = client.submit(fn, task, key=f"{name}-{token}-{i}", retries=int(retries), pure=False)
        futures[fut] = i
    delivery_error: BaseException | None = None
    for fut in as_completed(list(futures)):
        i = futures[fut]
        if fut.status == "finished":
            try:
                out = fut.result()
            except Exception as err:  # noqa: BLE001 - lost between finishing and delivery
                failed[i] = f"{type(err).__name__}: {err}"
                continue
            try:
                on_result(i, out)
            except BaseException as err:  # the caller's own handling failed: stop after releasing futures
                delivery_error = err
                break
        else:
            try:
                exc = fut.exception()
                failed[i] = f"{type(exc).__name__}: {exc}"
            except Exception as err:  # noqa: BLE001 - cancelled or lost
                failed[i] = f"{fut.status}: {err}"
    for fut in futures:
        fut.release()
    if delivery_error is not None:
        raise delivery_error
    _raise_failed(failed, labels, len(tasks), f" after {retries} retries")


def _raise_failed(failed: dict[int, str], labels: Sequence[str], total: int, how: str) -> None:
    if failed:
        lines = "\n".join(f"  {labels[i]}: {failed[i]}" for i in sorted(failed))
        raise TasksFailedError(f"{len(failed)} of {total} tasks failed{how}:\n{lines}",
                               {labels[i]: failed[i] for i in sorted(failed)}, indices=sorted(failed))
