"""Building generated C: the one compile-and-cache loader for every kernel tidesim generates.

A kernel is compiled once per source text, compiler and flags, into a shared library kept in the
cache folder (``$TIDESIM_CACHE/kernels``, default ``~/.cache/tidesim/kernels``), and loaded
through ctypes. Kernels built with ``-march=native`` are keyed by the host's CPU flags too, since the
cache may be shared between machines.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Sequence

__all__ = ["compiler", "available", "cache_dir", "cache_limit", "load", "BASE_FLAGS", "NATIVE_FLAGS", "BuildError"]

#: Flags of every kernel: optimised, no errno from libm, a shared library.
BASE_FLAGS = ("-O3", "-fno-math-errno", "-shared", "-fPIC")
#: Extra flags for vectorised loops: the host's vector instructions and licence to compute both sides of a
#: select (no FP traps); contraction into FMAs stays off, so every operation rounds as torch's does.
NATIVE_FLAGS = ("-march=native", "-fno-trapping-math", "-ffp-contract=off")


class BuildError(RuntimeError):
    """The C compiler failed on a generated kernel (the message carries its output)."""


def compiler() -> str | None:
    """The C compiler used for kernels (``$CC``, else gcc or cc on the PATH)."""
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")


def available() -> bool:
    """Whether a C compiler is there to build kernels."""
    return compiler() is not None


def cache_dir() -> Path:
    """Where compiled kernels are kept (``$TIDESIM_CACHE/kernels``)."""
    return Path(os.environ.get("TIDESIM_CACHE", Path.home() / ".cache" / "tidesim")) / "kernels"


def cache_limit() -> int:
    """Most bytes of compiled kernels kept on disk (``$TIDESIM_CACHE_MAX_MB``, default 512 MB); the least
    recently used are removed beyond it."""
    text = os.environ.get("TIDESIM_CACHE_MAX_MB", "512")
    try:
        mb = float(text)
    except ValueError:
        raise ValueError(f"TIDESIM_CACHE_MAX_MB must be a number of megabytes, got {text!r}") from None
    return max(0, int(mb * 1e6))


def _evict(folder: Path, keep: Path) -> None:
    """Remove the least recently used kernels until the cache fits :func:`cache_limit` (``keep`` stays)."""
    entries = []
    for lib in folder.glob("*.so"):
        try:
            st = lib.stat()
        except OSError:  # removed by a parallel run
            continue
        entries.append((st.st_mtime, st.st_size, lib))
    total, limit = sum(size for _, size, _ in entries), cache_limit()
    for _, size, lib in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        if lib == keep:
            continue
        try:
            lib.unlink()  # a process that has it loaded keeps its mapping
            total -= size
        except OSError:
            pass


def _host() -> str:
    """What a -march=native kernel depends on."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return platform.machine() + flags


@lru_cache(maxsize=256)  # loaded libraries by (source, flags): a memo, no configuration lives here
def load(source: str, prefix: str = "k", native: bool = False) -> ctypes.CDLL:
    """Compile ``source`` (once; cached on disk) and load it. ``native``: try ``NATIVE_FLAGS`` first and
    fall back to the base flags where the compiler refuses them."""
    cc = compiler()
    if cc is None:
        raise BuildError("no C compiler ($CC, gcc or cc) to build a tidesim kernel")
    attempts: Sequence[tuple[str, ...]] = ((*BASE_FLAGS, *NATIVE_FLAGS), BASE_FLAGS) if native else (BASE_FLAGS,)
    ident = source + " ".join(attempts[0]) + str(cc) + (_host() if native else "")
    key = hashlib.sha256(ident.encode()).hexdigest()[:24]
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    lib_path = folder / f"{prefix}_{key}.so"
    if not lib_path.exists():
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            c_path, out = Path(tmp) / "kernel.c", Path(tmp) / "kernel.so"
            c_path.write_text(source)
            for flags in attempts:
                proc = subprocess.run([cc, *flags, "-o", str(out), str(c_path), "-lm"], capture_output=True,
                                      text=True)
                if proc.returncode == 0:
                    break
            else:
                raise BuildError(f"compiling a tidesim kernel failed:\n{proc.stderr[-2000:]}")
            os.replace(out, lib_path)  # atomic: parallel runs never load a half-written file
        _evict(folder, lib_path)
    else:
        try:
            os.utime(lib_path)  # marks it recently used for eviction
        except OSError:
            pass
    return ctypes.CDLL(str(lib_path))
