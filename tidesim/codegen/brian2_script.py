"""A model (fitted or not) as a standalone Brian2 script: the way a model leaves tidesim.

The script needs Brian2 and numpy only. It builds a ``NeuronGroup`` from the model's equations (written
with units Brian2's equation parser reads), sets every parameter and initial value in SI with its unit,
drives ``n`` neurons with constant inputs, runs, and saves the recorded traces and spikes to an ``.npz``
file. ``tests/codegen/test_brian2_script.py`` runs an exported script and compares it with tidesim.
"""

from __future__ import annotations

import datetime
import itertools
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from brian2.equations.equations import DIFFERENTIAL_EQUATION, PARAMETER, SUBEXPRESSION
from brian2.units import allunits
from brian2.units.fundamentalunits import DIMENSIONLESS, Dimension, get_dimensions

from tidesim.core.files import atomic_write_text, check_new
from tidesim.core.model import NeuronModel
from tidesim.core.units import to_si
from tidesim.version import __version__

__all__ = ["export_brian2", "unit_text"]

#: The units Brian2's equation parser accepts by name.
_NAMED = ("volt", "amp", "siemens", "ohm", "farad", "second", "hertz", "coulomb", "henry", "joule", "watt",
          "weber", "tesla", "metre", "kilogram", "mole", "kelvin", "newton", "pascal", "candle")
_BASE = ("metre", "kilogram", "second", "amp", "kelvin", "mole", "candle")


def unit_text(dim: Dimension) -> str:
    """A unit of dimension ``dim`` as Brian2's equation parser reads it (``volt``, ``siemens / second``,
    ``metre ** -2 * siemens``)."""
    if dim is DIMENSIONLESS:
        return "1"
    dims = {name: get_dimensions(getattr(allunits, name)) for name in _NAMED}
    for name, d in dims.items():
        if d is dim:
            return name
    rank = {name: k for k, name in enumerate(_NAMED)}  # commoner units first: siemens / second, not amp / weber
    pairs = sorted(itertools.product(dims.items(), repeat=2), key=lambda p: rank[p[0][0]] + rank[p[1][0]])
    for (a, da), (b, db) in pairs:
        if da / db is dim:
            return f"{a} / {b}"
        if da * db is dim and a <= b:
            return f"{a} * {b}"
    symbols = ("m", "kg", "s", "A", "K", "mol", "cd")
    powers = [(name, dim.get_dimension(sym)) for name, sym in zip(_BASE, symbols)]
    return " * ".join(f"{name} ** {p:g}" if p != 1 else name for name, p in powers if p != 0)


def _equation_lines(model: NeuronModel) -> list[str]:
    lines = []
    for eq in model.equations.ordered:
        unit = {"boolean": "boolean", "integer": "integer"}.get(eq.var_type, unit_text(eq.dim))
        flags = f" ({', '.join(eq.flags)})" if eq.flags else ""
        if eq.type == DIFFERENTIAL_EQUATION:
            lines.append(f"d{eq.varname}/dt = {eq.expr.code} : {unit}{flags}")
        elif eq.type == SUBEXPRESSION:
            lines.append(f"{eq.varname} = {eq.expr.code} : {unit}{flags}")
        elif eq.type == PARAMETER:
            lines.append(f"{eq.varname} : {unit}{flags}")
    return lines


def _value(value: Any, dim: Dimension, n: int) -> str:
    unit = unit_text(dim)
    arr = np.asarray(value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value, dtype=float)
    number = repr(float(arr)) if arr.ndim == 0 else f"np.array({np.broadcast_to(arr, (n,)).tolist()!r})"
    return number if unit == "1" else f"{number} * {unit.replace(' ** ', '**')}"


def export_brian2(model: NeuronModel, n: int = 1, duration: float = 1.0, dt: float = 1e-4,
                  params: Mapping[str, Any] | None = None, record: Sequence[str] = ("v",), target: str = "numpy",
                  path: str | Path | None = None, overwrite: bool = False) -> str:
    """The text of a standalone Brian2 script running ``model``: ``n`` neurons for ``duration`` s at step
    ``dt`` s, with the model's parameter values overridden by ``params`` (SI or quantities; a scalar or
    one value per neuron, e.g. each neuron's injected current), recording ``record``; Brian2's code
    ``target``. The script saves ``t``, the recorded traces (``[T, n]``, SI), ``spike_i`` and ``spike_t``
    to the ``.npz`` file named on its command line. With ``path``, the script is also written there
    (an existing file only with ``overwrite=True``)."""
    given = {k: to_si(v, f"parameter '{k}'", model.dims[k]) for k, v in (params or {}).items()}
    values = {**model.parameters, **given}
    missing = [p for p in model.parameter_names if p not in values]
    if missing:
        raise ValueError(f"{model.name}: give values for {', '.join(missing)} in params= (they have no default)")
    unknown = [r for r in record if r not in model.state_names + model.subexpression_names]
    if unknown:
        raise ValueError(f"{model.name} has no state or subexpression {', '.join(map(repr, unknown))} to record")
    refractory = ("False" if model.refractory_kind is None else f"{model.refractory_period!r} * second"
                  if model.refractory_kind == "time" else repr(model.refractory))
    lines = [
        f'"""{model.name}, exported by tidesim {__version__} on {datetime.date.today()}: {model.reference or ""}',
        "",
        f"Runs in Brian2 alone: {n} neuron(s), {duration:g} s at dt = {dt:g} s.",
        "Usage: python this_script.py out.npz (saves t, the recorded traces [T, n] in SI, spike_i, spike_t)",
        '"""',
        "import sys",
        "",
        "import numpy as np",
        "from brian2 import *  # noqa: F401,F403 (units and Brian2's objects)",
        "",
        f"prefs.codegen.target = {target!r}",
        "eqs = Equations('''",
        *[f"    {line}" for line in _equation_lines(model)],
        "''')",
        f"clock = Clock(dt={dt!r} * second)",
        f"group = NeuronGroup({n}, eqs, threshold={model.threshold!r}, reset={model.reset!r}, "
        f"refractory={refractory}, method={model.method!r}, clock=clock)",
    ]
    lines += [f"group.{p} = {_value(values[p], model.dims[p], n)}" for p in model.parameter_names]
    for state, init in model.initial.items():
        lines.append(f"group.{state} = {init!r}" if isinstance(init, str) else
                     f"group.{state} = {_value(init, model.dims[state], n)}")
    lines += [
        f"states = StateMonitor(group, {list(record)!r}, record=True, clock=clock)",
        "spikes = SpikeMonitor(group)",
        "net = Network(group, states, spikes)",
        f"net.run({duration!r} * second)",
        "if __name__ == '__main__':",
        "    out = sys.argv[1] if len(sys.argv) > 1 else 'brian2_run.npz'",
        "    np.savez(out, t=np.asarray(states.t_), spike_i=np.asarray(spikes.i[:]),",
        "             spike_t=np.asarray(spikes.t_[:]),",
        "             **{name: np.asarray(getattr(states, name + '_')).T for name in " + repr(list(record)) + "})",
        "",
    ]
    text = "\n".join(lines)
    if path is not None:
        check_new([path], overwrite, "exporting the Brian2 script")
        atomic_write_text(path, text)
    return text
