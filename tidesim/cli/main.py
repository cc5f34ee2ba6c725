"""Command line: ``tidesim models``, ``tidesim validate MODEL``, ``tidesim fit FILE``, ``tidesim demo``."""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
import torch
from brian2 import second

import tidesim as ts
from tidesim import models
from tidesim.cli import fit as fit_command
from tidesim.cli.demo import run_demo
from tidesim.core.errors import TidesimError
from tidesim.core.files import atomic_write, check_new, check_writable_dir
from tidesim.core.inputs import n_steps_for
from tidesim.core.units import parse_quantity

__all__ = ["main"]


def _models(args) -> int:
    for name in models.available():
        mod = models.module(name)
        model = models.get(name)
        print(f"\n{name} ({model.method}) - {mod.REFERENCE}")
        table = pd.DataFrame(model.describe()).set_index("name")
        print(table.to_string())
        if hasattr(mod, "PRESETS"):
            print(f"presets: {', '.join(mod.PRESETS)}")
        named = [v for v, (family, _) in models.variants().items() if family == name]
        if named:
            print(f"variants: {', '.join(named)} (tidesim fit FILE --model {named[0]})")
    return 0


def _validation_inputs(name: str, n: int, amplitude: float | None, duration: float, dt: float):

    spec = models.module(name).VALIDATION
    if amplitude is not None:
        lo = hi = amplitude
    else:
        lo, hi = min(spec["amplitudes"]), max(spec["amplitudes"])
    amps = np.linspace(lo, hi, n)
    return {spec["input"]: amps}, spec


def _validate(args) -> int:
    out = check_writable_dir(args.out, "--out") if args.out else None
    if out is not None:  # refuse before the (slow) Brian2 run
        check_new([out / f"{args.model}_crossvalidation.csv"], args.force, "writing the cross-validation",
                  "pass --force to replace it")
    model = models.get(args.model, preset=args.preset) if args.preset else models.get(args.model)
    spec = models.module(args.model).VALIDATION
    duration = float(parse_quantity(args.duration, "--duration", second.dim))
    dt = float(parse_quantity(args.dt, "--dt", second.dim)) if args.dt is not None else spec["dt"]
    amplitude = (float(parse_quantity(args.input, "--input", model.dims[spec["input"]]))
                 if args.input is not None else None)
    inputs, spec = _validation_inputs(args.model, args.n, amplitude, duration, dt)
    # constant per-neuron step currents, switched on after 10 ms
    steps = n_steps_for(duration, dt)
    name = spec["input"]
    series = torch.zeros(steps, args.n, dtype=torch.float64)
    series[int(round(0.01 / dt)):] = torch.as_tensor(inputs[name], dtype=torch.float64)
    report = ts.crossvalidate(model, duration=duration, n=args.n, dt=dt, inputs={name: series},
                              target=args.target)
    print(report)
    if out is not None:
        table, figure = out / f"{model.name}_crossvalidation.csv", out / f"{model.name}_crossvalidation.png"
        check_new([table, figure], args.force, "writing the cross-validation", "pass --force to replace them")
        atomic_write(table, lambda tmp: report.to_dataframe().to_csv(tmp))
        fig = report.plot()
        atomic_write(figure, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
        print(f"table and figure written to {out}/")
    return 0 if report.passed else 1


def _demo(args) -> int:
    result = run_demo(args.out, target=args.target, overwrite=args.force)
    report = result["crossvalidation"]
    return 0 if report is None or report.passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tidesim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("models", help="table of the zoo's models and their parameters with units")
    val = sub.add_parser("validate", help="cross-validate a zoo model against Brian2 (exit 1 on failure)")
    val.add_argument("model")
    val.add_argument("--preset", default=None, help="published parameter set (izhikevich: RS, FS, ...)")
    val.add_argument("--n", type=int, default=5, help="neurons, each with its own step current")
    val.add_argument("--duration", default="1s", help="run length, e.g. 2s or 500ms (default 1 s)")
    val.add_argument("--dt", default=None, help="integration step, e.g. 0.1ms (default: the model's)")
    val.add_argument("--input", default=None, help="one step amplitude for every neuron, e.g. 500pA (default: "
                     "a range of amplitudes, one per neuron)")
    val.add_argument("--target", default="auto", choices=["auto", "cython", "numpy"], help="Brian2 target")
    val.add_argument("--out", default=None, help="folder for the table (CSV) and figure (PNG)")
    val.add_argument("--force", action="store_true", help="replace the table and figure already in --out")
    fit_command.add_parser(sub)
    demo = sub.add_parser("demo", help="the main job on a shipped real recording (tidesim/cli/demo.py)")
    demo.add_argument("--out", default=None, help="folder for tables and figures (default: tidesim-demo, or "
                      "tidesim-demo-2, ... if that holds an earlier report)")
    demo.add_argument("--force", action="store_true", help="replace the report already in --out")
    demo.add_argument("--target", default="auto", choices=["auto", "cython", "numpy"], help="Brian2 target")
    args = parser.parse_args(argv)
    try:
        commands = {"models": _models, "validate": _validate, "fit": fit_command.run, "demo": _demo}
        return commands[args.command](args)
    except (TidesimError, ValueError) as exc:  # the user's mistake: say it plainly, no traceback
        print(f"tidesim: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
