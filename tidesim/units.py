"""Unit handling at the boundary: Brian2 quantities in, SI floats and tensors inside.

Units are checked once, when a model is built or a value is given; the integrator then runs on
plain tensors (Brian2 itself strips units inside its loop for the same reason).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from brian2.units.fundamentalunits import (
    DIMENSIONLESS,
    Dimension,
    Quantity,
    get_dimensions,
    get_unit,
)

from .errors import UnitMismatchError

__all__ = ["DIMENSIONLESS", "Dimension", "fmt", "unit_name", "to_si", "dims_of"]


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
    from brian2 import metre, second

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


def to_si(value: Any, name: str, dim: Dimension | None = None) -> Any:
    """Strip the unit from ``value`` and return it as SI (float, ndarray or tensor).

    A Brian2 quantity must have dimensions ``dim`` (when given); plain numbers and tensors are
    taken to be SI already.
    """
    if isinstance(value, Quantity):
        got = get_dimensions(value)
        if dim is not None and got is not dim:
            raise UnitMismatchError(
                f"'{name}' was given as {value!r}, with unit {unit_name(got)}, but it must have "
                f"unit {unit_name(dim)}"
            )
        arr = np.asarray(value)
        return float(arr) if arr.ndim == 0 else arr.astype(float)
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        return np.asarray(value, dtype=float)
    return value
