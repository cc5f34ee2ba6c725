"""Checkpoints of a running fit: what it has done, and which fit it belongs to.

A checkpoint holds the optimiser's state (tensors, numbers, text: read back with
``torch.load(weights_only=True)``, which refuses anything that could run code) and a fingerprint of
the fit that wrote it: the model's equations and values, the fitted parameters and their bounds, a
digest of the data, the loss, method, seed and tidesim version. Resuming another fit's checkpoint is
refused with what differs.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from tidesim.core.files import atomic_write
from tidesim.core.spec import spec_to_json
from tidesim.fitting.errors import FitError
from tidesim.version import __version__

__all__ = ["fingerprint", "save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "tidesim-checkpoint/2"


def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().to(torch.float64).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def fingerprint(problem, loss, method: str, seed: int | None, **settings: Any) -> dict[str, str]:
    """What identifies a fit: a resumed fit must agree on every entry."""
    model_text = json.dumps(spec_to_json(problem.model.spec), sort_keys=True, default=repr)
    data = problem.data
    return {
        "model": hashlib.sha256(model_text.encode()).hexdigest()[:16] + f" ({problem.model.name})",
        "parameters": "; ".join(f"{b['name']} {b['low']}..{b['high']} {b['scale']}"
                                for b in problem.space.describe()),
        "data": f"{_digest(data.voltage, data.current, data.spikes)} ({data.n_sweeps} sweeps x {data.n_steps} "
                f"steps of {data.dt:g} s)",
        "loss": repr(loss),
        "method": method,
        "seed": repr(seed),
        **{k: repr(v) for k, v in sorted(settings.items())},
        "tidesim": __version__,
    }


def save_checkpoint(path: str | Path, state: dict[str, Any], fp: dict[str, str]) -> None:
    """Write ``state`` and the fit's fingerprint atomically (a kill mid-write keeps the previous checkpoint)."""
    doc = {"format": CHECKPOINT_FORMAT, "fingerprint": dict(fp), "state": state}
    atomic_write(path, lambda tmp: torch.save(doc, tmp))


def load_checkpoint(path: str | Path, fp: dict[str, str]) -> dict[str, Any]:
    """The state saved at ``path`` by this same fit; anything else is refused with the reason."""
    path = Path(path)
    if not path.is_file():
        raise FitError(f"no checkpoint to resume from at {path}")
    try:  # weights_only: tensors, numbers, text and containers only; a pickled object is an error, not code run
        doc = torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, EOFError, RuntimeError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise FitError(f"checkpoint {path} cannot be read (truncated, damaged or not a tidesim checkpoint; "
                       f"it may hold objects that could run code): {type(exc).__name__}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise FitError(f"{path} is not a checkpoint this tidesim reads (format {found!r}, expected "
                       f"{CHECKPOINT_FORMAT!r})")
    saved = doc.get("fingerprint") or {}
    differ = [f"{k}: checkpoint {saved.get(k, '-')!r}, this fit {fp.get(k, '-')!r}"
              for k in sorted(set(saved) | set(fp)) if saved.get(k) != fp.get(k)]
    if differ:
        raise FitError(f"checkpoint {path} belongs to another fit; resuming it would give wrong values. "
                       "What differs:\n  " + "\n  ".join(differ))
    return doc["state"]
