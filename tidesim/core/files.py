"""Writing files a lab keeps: atomically, and never over something that exists unless asked.

Every writer in tidesim (fit results, checkpoints, reports, recordings, caches) goes through
these helpers, so a crash mid-write leaves the previous file intact and a second run does not
silently replace the first run's results.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from tidesim.core.errors import TidesimError

__all__ = ["FileExistsRefused", "atomic_write", "atomic_write_text", "check_new", "check_writable_dir"]


class FileExistsRefused(TidesimError, FileExistsError):
    """A write would replace something that exists and the caller did not ask for it."""


def atomic_write(path: str | Path, write: Callable[[Path], None], suffix: str = ".part") -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path`` (named ``*<suffix>``), then move it onto
    ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def check_new(paths: Iterable[str | Path], overwrite: bool, what: str,
              remedy: str = "pass overwrite=True to replace it, or choose another place") -> None:
    """Refuse when any of ``paths`` exists and ``overwrite`` is false, naming them and the way out."""
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not overwrite:
        raise FileExistsRefused(f"{what} would replace {', '.join(existing)}; {remedy}")


def check_writable_dir(folder: str | Path, what: str) -> Path:
    """Make sure ``folder`` is, or can become, a folder this process writes into, before any work
    starts (nothing is created: a refused command leaves no trace)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise TidesimError(f"{what} {folder} is a file, not a folder")
    probe = folder
    while not probe.exists():  # the nearest existing ancestor must take the new folder
        probe = probe.parent
    if not probe.is_dir():
        raise TidesimError(f"{what} {folder} cannot be made: {probe} is a file")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise TidesimError(f"{what} {folder} cannot be written ({probe}: {exc.strerror or exc})") from None
    return folder
