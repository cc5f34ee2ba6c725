"""Unit handling at the boundary: Brian2 quantities in, SI floats and tensors inside.

Units are checked once, when a model is built or a value is given; the integrator then runs on
plain tensors (Brian2 itself strips units inside its loop for the same reason).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
from brian2 import amp, kelvin, kilogram, metre, mole, second, siemens, volt
from brian2.core.namespace import DEFAULT_UNITS
from brian2.units.allunits import candle
from brian2.units.fundamentalunits import (
    DIMENSIONLESS,
    Dimension,
    Quantity,
    get_dimensions,
    get_unit,
)

from tidesim.core.errors import UnitMismatchError

__all__ = ["DIMENSIONLESS", "Dimension", "fmt", "unit_name", "to_si", "si_float", "dims_of", "lab_unit",
           "display_unit", "to_numpy", "parse_quantity"]


def dims_of(value: Any) -> Dimension:
    """Physical dimensions of a Brian2 quantity (dimensionless for plain numbers)."""
    return get_dimensions(value) if isinstance(value, Quantity) else DIMENSIONLESS


def unit_name(dim: Dimension) -> str:
    """The SI unit of ``dim`` as Brian2 writes it (``'V'``, ``'A'``, ``'1'`` for dimensionless)."""
    if dim is DIMENSIONLESS:
        return "1"
    name = str(get_unit(dim))
    if "^" not in name:
        return name
    for other, suffix in ((second.dim, "/s"), (metre.dim**2, "/m^2"), (second.dim**-1, "*s")):
        candidate = dim * other
        if candidate is DIMENSIONLESS:
            return "1" + suffix
        inner = str(get_unit(candidate))
        if "^" not in inner:
            return inner + suffix
    return name


def fmt(value: float, dim: Dimension) -> str:
    """``value`` (SI) written in a readable unit, e.g. ``fmt(-0.07, volt.dim) == '-70. mV'``."""
    if dim is DIMENSIONLESS:
        return f"{float(value):.4g}"
    try:
        return Quantity(float(value), dim=dim).in_best_unit(precision=4)
    except (TypeError, ValueError, AttributeError):
        return f"{value} {unit_name(dim)}"


_SI_BASE = {"m": metre.dim, "kg": kilogram.dim, "s": second.dim, "A": amp.dim, "K": kelvin.dim, "mol": mole.dim,
            "cd": candle.dim}


def _neo_dims(value: Any) -> Dimension:
    """Brian2 dimensions of a ``quantities`` (neo) quantity, from its SI simplification."""
    out = DIMENSIONLESS
    for unit, power in value.simplified.dimensionality.items():
        out = out * _SI_BASE[unit.symbol] ** power
    return out


def to_si(value: Any, name: str, dim: Dimension | None = None) -> Any:
    """Strip the unit from ``value`` and return it as SI (float, ndarray or tensor).

    The one unit converter: every value a user passes goes through it, once, where the call was
    made. A Brian2 quantity (``10*mV``) or a neo/``quantities`` quantity must have dimensions
    ``dim`` (when given), else :class:`UnitMismatchError` names ``name``; plain numbers, arrays and
    tensors are taken to be SI already.
    """
    if isinstance(value, Quantity):
        got = get_dimensions(value)
        arr = np.asarray(value)
    elif _is_neo_quantity(value):
        got = _neo_dims(value)
        arr = np.asarray(value.simplified.magnitude)
    elif isinstance(value, torch.Tensor):
        return value
    elif isinstance(value, (list, tuple, np.ndarray)):
        return np.asarray(value, dtype=float)
    else:
        return value
    if dim is not None and got is not dim:
        raise UnitMismatchError(
            f"'{name}' was given as {value!r}, with unit {unit_name(got)}, but it must have "
            f"unit {unit_name(dim)}"
        )
    return float(arr) if arr.ndim == 0 else arr.astype(float)


def _is_neo_quantity(value: Any) -> bool:
    # neo's unit package; checked by module name so that importing units never imports neo
    return type(value).__module__.startswith("quantities.") and hasattr(value, "simplified")


def si_float(value: Any, name: str, dim: Dimension | None = None) -> float:
    """``value`` as one finite SI float (see :func:`to_si`); a :class:`ValueError` names ``name``
    for anything else (a string, an array of several values, NaN, infinity)."""
    value = to_si(value, name, dim)
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"'{name}' must be one number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    try:
        out = float(value)
    except (TypeError, ValueError):
        unit = f" (SI, {unit_name(dim)})" if dim is not None else " (SI)"
        raise ValueError(f"'{name}' must be a number{unit} or a Brian2 quantity, got {value!r}") from None
    if not np.isfinite(out):
        raise ValueError(f"'{name}' must be finite, got {out}")
    return out


#: Units labs plot in, by dimension: (SI value of the unit, its name).
_LAB_UNITS = ((volt.dim, 1e-3, "mV"), (amp.dim, 1e-12, "pA"), (siemens.dim, 1e-9, "nS"), (second.dim, 1e-3, "ms"))


def lab_unit(dim: Dimension) -> tuple[float, str]:
    """``(scale, label)`` of the unit a lab plots ``dim`` in (mV, pA, nS, ms); ``(1.0, '')`` else."""
    for base, scale, label in _LAB_UNITS:
        if dim is base:
            return scale, label
    return 1.0, ""


def display_unit(dim: Any, magnitude: float) -> tuple[float, str]:
    """``(scale, unit)`` to show SI values of dimension ``dim`` near ``magnitude``: value/scale is in
    ``unit`` (``display_unit(volt.dim, 0.07) == (0.001, 'mV')``); dimensionless gives ``(1, '1')``."""
    if dim is DIMENSIONLESS:
        return 1.0, "1"
    magnitude = abs(float(magnitude)) if np.isfinite(magnitude) and magnitude else 1.0
    unit = Quantity(magnitude, dim=dim).get_best_unit()
    if "^" in str(unit) or " " in str(unit):  # no named unit: plain SI
        return 1.0, unit_name(dim)
    return float(unit), str(unit)


def to_numpy(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """A tensor, array or number as a contiguous numpy array of ``dtype`` (detached, on the CPU)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.to(torch.float32)
        x = x.numpy()
    arr = np.asarray(x, dtype=dtype)
    return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)


_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")
_UNIT_TOKEN = re.compile(r"\s*(?:(?P<op>[*/])|(?P<name>[A-Za-z_]\w*)(?:\s*(?:\^|\*\*)\s*(?P<exp>[-+]?\d+))?)")
#: SI symbols Brian2 spells out (it has ``second``, ``amp``, ...; ``ms``, ``pA`` are its own).
_SI_SYMBOLS = {"s": second, "A": amp, "V": volt, "S": siemens, "m": metre, "mS": siemens * 1e-3}


def parse_quantity(text: str, what: str, dim: Dimension | None = None) -> Any:
    """``"100pA"`` → a Brian2 quantity, ``"1e-10"`` → a float (SI, taken to be in ``dim``).

    The unit is read token by token (names of Brian2's units, ``*``, ``/``, integer powers with
    ``^`` or ``**`` up to 8): no ``eval``, nothing that can run long. ``dim``: the dimension the
    value must have; ``what`` names the value in errors.
    """
    if not isinstance(text, str) or len(text) > 80:
        raise UnitMismatchError(f"{what}: expected a number with an optional unit (e.g. 100pA), got {text!r}")
    m = _QUANTITY.match(text)
    if not m:
        raise UnitMismatchError(f"{what}: cannot read {text!r} as a number with an optional unit "
                                "(e.g. 100pA, -70mV)")
    number, unit_text = float(m.group(1)), m.group(2)
    if not np.isfinite(number):
        raise UnitMismatchError(f"{what}: {text!r} is not a finite number")
    if not unit_text:
        return number
    units = {**DEFAULT_UNITS, **_SI_SYMBOLS}
    value, op, pos, expect_name = 1.0 * number, "*", 0, True
    if unit_text.startswith("/"):
        op, pos = "/", 1
    while pos < len(unit_text):
        tok = _UNIT_TOKEN.match(unit_text, pos)
        if tok is None or tok.end() == pos or (tok.group("op") is not None) == expect_name:
            raise UnitMismatchError(f"{what}: cannot read the unit {unit_text!r} of {text!r} (write e.g. nS, "
                                    "pA, mV, 1/ms, nS/um^2)")
        pos = tok.end()
        if tok.group("op"):
            op, expect_name = tok.group("op"), True
            continue
        name, power = tok.group("name"), int(tok.group("exp") or 1)
        if name not in units:
            raise UnitMismatchError(f"{what}: unknown unit {name!r} in {text!r}")
        if abs(power) > 8:
            raise UnitMismatchError(f"{what}: the power {power} in {text!r} is out of range (at most 8)")
        factor = units[name] ** power
        value = value * factor if op == "*" else value / factor
        expect_name = False
    if expect_name:
        raise UnitMismatchError(f"{what}: the unit {unit_text!r} of {text!r} ends with an operator")
    if dim is not None and get_dimensions(value) is not dim:
        raise UnitMismatchError(f"{what}: {text!r} is in {unit_name(get_dimensions(value))}, but {what} takes "
                                f"{unit_name(dim)}")
    return value
