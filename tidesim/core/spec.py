"""A model's specification as plain JSON data, and back: how fits and checkpoints store models.

Nothing is pickled: equations are text (or, for a ``brian2.Equations`` object, each equation's
name, type, unit exponents, expression and flags), numbers are SI floats with the unit's
exponents. Reading accepts only these shapes, so a crafted file can give wrong numbers at worst,
never run code; the rebuilt model is checked by :class:`~tidesim.NeuronModel` like any other.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
from brian2 import Equations, Quantity
from brian2.equations.equations import Expression, SingleEquation
from brian2.units.fundamentalunits import Dimension, get_or_create_dimension

from tidesim.core.errors import ModelError

__all__ = ["spec_to_json", "spec_from_json", "SPEC_FORMAT"]

#: Version of the stored form; readers refuse other versions by name.
SPEC_FORMAT = "tidesim-model-spec/1"
_KEYS = ("equations", "threshold", "reset", "refractory", "parameters", "initial", "method", "threshold_scale",
         "name", "reference")


_BASE = ("m", "kg", "s", "A", "K", "mol", "cd")


def _dim(d: Dimension) -> list[float]:
    return [float(d.get_dimension(b)) for b in _BASE]


def _value(x: Any, where: str) -> Any:
    """A JSON form of one value: str/bool/None/number as is, a quantity or array as {"si", "dim"}."""
    if x is None or isinstance(x, (str, bool)):
        return x
    if isinstance(x, Quantity):
        return {"si": np.asarray(x).tolist(), "dim": _dim(x.dim)}
    if isinstance(x, torch.Tensor):
        return {"si": x.detach().cpu().double().tolist(), "dim": None}
    if isinstance(x, (int, float, np.integer, np.floating, np.ndarray)):
        return {"si": np.asarray(x, dtype=float).tolist(), "dim": None}
    raise ModelError(f"{where}: a {type(x).__name__} cannot be stored with the model")


def _equations(eqs: Any) -> Any:
    if isinstance(eqs, str):
        return eqs
    return [{"type": e.type, "varname": e.varname, "dim": _dim(e.dim), "var_type": e.var_type,
             "expr": None if e.expr is None else e.expr.code, "flags": list(e.flags)} for e in eqs.ordered]


def spec_to_json(spec: Mapping[str, Any]) -> dict:
    """``NeuronModel.spec`` as JSON-ready data."""
    doc = {"format": SPEC_FORMAT, "equations": _equations(spec["equations"])}
    for key in ("threshold", "reset", "method", "name", "reference"):
        doc[key] = spec.get(key)
    doc["refractory"] = _value(spec.get("refractory"), "refractory")
    doc["threshold_scale"] = spec.get("threshold_scale")
    for key in ("parameters", "initial"):
        doc[key] = {str(k): _value(v, f"{key}[{k!r}]") for k, v in (spec.get(key) or {}).items()}
    return doc


def _number_list(x: Any, where: str) -> Any:
    if isinstance(x, bool) or not (isinstance(x, (int, float)) or isinstance(x, list)):
        raise ModelError(f"{where}: expected numbers, found {type(x).__name__}")
    if isinstance(x, list):
        return [_number_list(v, where) for v in x]
    return float(x)


def _read_dim(d: Any, where: str) -> Dimension:
    numbers = isinstance(d, list) and all(isinstance(v, (int, float)) and math.isfinite(v) for v in d)
    if not numbers or len(d) != 7:
        raise ModelError(f"{where}: a unit must be 7 exponents of the SI base units")
    return get_or_create_dimension(tuple(float(v) for v in d))


def _read_value(x: Any, where: str) -> Any:
    if x is None or isinstance(x, (str, bool)):
        return x
    if not isinstance(x, dict) or set(x) != {"si", "dim"}:
        raise ModelError(f"{where}: expected a text, a boolean or {{'si': number, 'dim': exponents}}")
    si = np.asarray(_number_list(x["si"], where), dtype=float)
    value = float(si) if si.ndim == 0 else si
    return value if x["dim"] is None else Quantity(value, dim=_read_dim(x["dim"], where))


def _read_equations(x: Any) -> Any:
    if isinstance(x, str):
        return x
    if not isinstance(x, list) or not all(isinstance(e, dict) for e in x):
        raise ModelError("equations: expected text or a list of equations")
    out = []
    for e in x:
        where = f"equation {e.get('varname')!r}"
        texts = [e.get(k) for k in ("type", "varname", "var_type")]
        flags = e.get("flags")
        if not all(isinstance(t, str) for t in texts) or not isinstance(flags, list) or \
                not all(isinstance(f, str) for f in flags) or not isinstance(e.get("expr"), (str, type(None))):
            raise ModelError(f"{where}: malformed stored equation")
        expr = None if e["expr"] is None else Expression(e["expr"])
        out.append(SingleEquation(e["type"], e["varname"], dimensions=_read_dim(e.get("dim"), where),
                                  var_type=e["var_type"], expr=expr, flags=e["flags"]))
    return Equations(out)  # parse_equations checks every part again when the model is built


def spec_from_json(doc: Any) -> dict:
    """The keyword arguments of :class:`~tidesim.NeuronModel` from :func:`spec_to_json`'s data."""
    if not isinstance(doc, dict) or doc.get("format") != SPEC_FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ModelError(f"not a stored tidesim model (format {found!r}; this version reads {SPEC_FORMAT!r})")
    spec: dict[str, Any] = {"equations": _read_equations(doc.get("equations"))}
    for key in ("threshold", "reset", "method", "name", "reference"):
        value = doc.get(key)
        if value is not None and not isinstance(value, str):
            raise ModelError(f"{key}: expected text, found {type(value).__name__}")
        spec[key] = value
    spec["name"] = spec["name"] or "model"
    spec["reference"] = spec["reference"] or ""
    spec["refractory"] = _read_value(doc.get("refractory"), "refractory")
    scale = doc.get("threshold_scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float))):
        raise ModelError("threshold_scale: expected a number")
    spec["threshold_scale"] = scale
    for key in ("parameters", "initial"):
        table = doc.get(key) or {}
        if not isinstance(table, dict):
            raise ModelError(f"{key}: expected a table of names and values")
        spec[key] = {str(k): _read_value(v, f"{key}[{k!r}]") for k, v in table.items()}
    unknown = set(doc) - set(_KEYS) - {"format"}
    if unknown:
        raise ModelError(f"stored model has unknown fields {sorted(unknown)}")
    return spec
