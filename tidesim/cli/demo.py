"""``tidesim demo``: the main job on a shipped real recording.

Loads a real whole-cell current-clamp recording through neo (the shipped ``regular_spiking``
cell: 17 sweeps, each a current step, a hyperpolarising step and the step again), fits a generalized
integrate-and-fire model (GIF, Pozzorini et al. 2015; deterministic spikes at the escape process's
median time) to some sweeps with ``ts.fit``'s staged fit (sub-threshold regression, then the threshold's
likelihood: every parameter from the data, no bounds), scores the fitted model on the held-out sweeps
against rate-matched Poisson trains, runs it in Brian2 to cross-validate it, and writes the parameter
table, scores, figures and a short report. The same as::

    tidesim fit regular_spiking --model gif_hazard --sweeps 2,6,8,10,12,14,16 --test 7,9,11,13,15 \\
        --window 0.1:1.1 --dt 0.2ms

The window is each sweep's first step from rest and the half second after it: the rest of the sweep
follows a hyperpolarising step whose after-effects (rebound currents) the GIF does not have;
``benchmarks/spike_timing.py`` scores the whole sweep too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tidesim as ts
from tidesim.cli.fit import free_folder
from tidesim.fitting.report import check_report_folder, timing_summary, write_report

__all__ = ["run_demo", "DEMO"]

#: What the demo fits: the file, training and held-out sweeps (the file's numbering), the part of
#: each 3 s sweep (s) and the integration step (s).
DEMO: dict[str, Any] = {
    "recording": "regular_spiking",
    "model": "gif_hazard",
    "train": [2, 6, 8, 10, 12, 14, 16],
    "test": [7, 9, 11, 13, 15],
    "window": (0.1, 1.1),
    "dt": 2e-4,
    "seed": 0,
}


def run_demo(out: str | Path | None = None, target: str = "auto", overwrite: bool = False,
             **overrides: Any) -> dict[str, Any]:
    """Run the demo (``overrides`` change :data:`DEMO`'s settings); returns
    :func:`~tidesim.fitting.report.write_report`'s dictionary plus the ``fit``. ``out``: the report
    folder (default ``tidesim-demo``, or ``tidesim-demo-2``, ... when that holds an earlier report);
    an existing report is replaced only with ``overwrite=True``."""
    cfg = {**DEMO, **overrides}
    out = check_report_folder(out if out is not None else free_folder("tidesim-demo"), overwrite)
    rec = ts.datasets.load_bundled(cfg["recording"])
    print(f"loaded {rec.name} through neo: {len(rec)} sweeps of {rec.duration:g} s at "
          f"{rec.sampling_rate / 1e3:g} kHz ({rec.annotations['current_source']})")
    model = ts.models.get(cfg["model"])
    print(f"fitting {model.name} (staged: every parameter from the data) to sweeps {cfg['train']}, "
          f"{cfg['window'][0]:g}-{cfg['window'][1]:g} s, dt {cfg['dt'] * 1e3:g} ms; held out: {cfg['test']}")
    fit = ts.fit(model, rec, sweeps=cfg["train"], window=cfg["window"], dt=cfg["dt"], seed=cfg["seed"])
    result = write_report(fit, out, test=rec.select(cfg["test"]), window=cfg["window"], target=target,
                          overwrite=overwrite)
    print("\n" + timing_summary(result["test"]))
    result["fit"] = fit
    return result
