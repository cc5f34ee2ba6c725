"""``tidesim demo``: the main job on a shipped real recording.

Loads a real whole-cell current-clamp recording through neo (the shipped ``regular_spiking``
cell: 17 sweeps, each a current step, a hyperpolarising step and the step again), fits AdEx to
some sweeps with ``ts.fit`` (differential evolution on the batched torch simulator, then gradient
polishing of the sub-threshold trace), scores the fitted model on the held-out sweeps against a
rate-matched Poisson baseline, runs the fitted model in Brian2 to cross-validate it, and writes
the parameter table, scores, figures and a short report. The same as::

    tidesim fit regular_spiking --model adex --sweeps 2,6,8,10,12,14,16 --test 7,9,11,13,15 \\
        --window 0.1:2.2 --dt 0.2ms
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tidesim as ts
from tidesim.fitting.report import write_report

__all__ = ["run_demo", "DEMO"]

#: What the demo fits: the file, training and held-out sweeps (the file's numbering), the part of
#: each 3 s sweep with the stimulus (s), the integration step (s), and the search's size.
DEMO: dict[str, Any] = {
    "recording": "regular_spiking",
    "model": "adex",
    "train": [2, 6, 8, 10, 12, 14, 16],
    "test": [7, 9, 11, 13, 15],
    "window": (0.1, 2.2),
    "dt": 2e-4,
    "n_starts": 64,
    "max_iter": 60,
    "seed": 0,
}


def run_demo(out: str | Path = "tidesim-demo", target: str = "auto", **overrides: Any) -> dict[str, Any]:
    """Run the demo (``overrides`` change :data:`DEMO`'s settings); returns
    :func:`~tidesim.fitting.report.write_report`'s dictionary plus the ``fit``."""
    cfg = {**DEMO, **overrides}
    rec = ts.datasets.load_bundled(cfg["recording"])
    print(f"loaded {rec.name} through neo: {len(rec)} sweeps of {rec.duration:g} s at "
          f"{rec.sampling_rate / 1e3:g} kHz ({rec.annotations['current_source']})")
    model = ts.models.get(cfg["model"])
    bounds = dict(ts.models.module(cfg["model"]).FIT_BOUNDS)
    print(f"fitting {model.name} ({', '.join(bounds)}) to sweeps {cfg['train']}, "
          f"{cfg['window'][0]:g}-{cfg['window'][1]:g} s, dt {cfg['dt'] * 1e3:g} ms; held out: {cfg['test']}")
    fit = ts.fit(model, rec, params=bounds, sweeps=cfg["train"], window=cfg["window"], dt=cfg["dt"],
                 n_starts=cfg["n_starts"], max_iter=cfg["max_iter"], seed=cfg["seed"], progress=True)
    result = write_report(fit, out, test=rec.select(cfg["test"]), window=cfg["window"], target=target)
    result["fit"] = fit
    return result
