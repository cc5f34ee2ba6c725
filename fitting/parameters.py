"""Bounded parameters in an unbounded space: the smooth transforms optimisers work in.

A parameter bounded by (low, high) is ``low + (high - low) * sigmoid(z)`` (linear scale) or
``exp(log low + (log high - log low) * sigmoid(z))`` (log scale, for positive ranges spanning a
factor of 20 or more), so any real ``z`` is a valid parameter and gradients stay smooth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from brian2 import farad, ohm, second, siemens
from brian2.units.fundamentalunits import Quantity, get_dimensions
from scipy.stats import qmc

from tidesim.core.errors import UnitMismatchError, UnknownIdentifierError
from tidesim.core.units import fmt, si_float, unit_name
from tidesim.fitting.errors import BoundsError

__all__ = ["Bound", "ParameterSpace"]

# Quantities that are positive by their physics: time constants, capacitances, resistances,
# and conductances named g* (leak/maximal conductances; AdEx's coupling `a` may be negative).
_POSITIVE_DIMS = (second.dim, farad.dim, ohm.dim)


def _must_be_positive(name: str, dim) -> bool:
    return dim in _POSITIVE_DIMS or (dim is siemens.dim and name.lower().startswith("g"))


@dataclass(frozen=True)
class Bound:
    """One fitted parameter: SI bounds and the scale its transform works on."""

    name: str
    low: float
    high: float
    scale: str  # "linear" or "log"

    def to_physical(self, z: torch.Tensor) -> torch.Tensor:
        u = torch.sigmoid(z)
        if self.scale == "log":
            lo, hi = np.log(self.low), np.log(self.high)
            return torch.exp(lo + (hi - lo) * u)
        return self.low + (self.high - self.low) * u

    def to_free(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == "log":
            lo, hi = np.log(self.low), np.log(self.high)
            u = (torch.log(x) - lo) / (hi - lo)
        else:
            u = (x - self.low) / (self.high - self.low)
        u = u.clamp(1e-6, 1 - 1e-6)
        return torch.log(u) - torch.log1p(-u)


def _si(value: Any, name: str, which: str, dim, model_name: str) -> float:
    """One bound in SI, through the one unit converter; a problem is a :class:`BoundsError` naming it."""
    try:
        return si_float(value, f"{which} bound of '{name}'", dim)
    except UnitMismatchError:
        given = unit_name(get_dimensions(value)) if isinstance(value, Quantity) else "another unit"
        raise BoundsError(f"{which} bound of {name!r} is in {given} but {model_name}'s "
                          f"{name} is in {unit_name(dim)}") from None
    except ValueError as exc:
        what = "finite" if isinstance(value, (int, float)) else f"a number (SI, {unit_name(dim)}) or a quantity"
        raise BoundsError(f"{which} bound of {name!r} must be {what}, got {value!r}") from exc


class ParameterSpace:
    """The fitted parameters of a model with their bounds, and the fixed ones.

    Parameters
    ----------
    model
        The :class:`~tidesim.NeuronModel` being fitted.
    bounds
        ``{name: (low, high)}`` in SI or as Brian2 quantities, optionally ``(low, high, "log")``.
    """

    def __init__(self, model, bounds: Mapping[str, Any]):
        if not bounds:
            raise BoundsError("give at least one parameter to fit: params={name: (low, high)}")
        self.model = model
        out = []
        for name, spec in bounds.items():
            if name not in model.parameter_names:
                raise UnknownIdentifierError(
                    f"{model.name} has no parameter {name!r} to fit; its parameters are "
                    f"{', '.join(model.parameter_names)}")
            dim = model.dims[name]
            if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
                raise BoundsError(f"bounds of {name!r} must be (low, high) or (low, high, scale), got {spec!r}")
            low = _si(spec[0], name, "lower", dim, model.name)
            high = _si(spec[1], name, "upper", dim, model.name)
            if not (np.isfinite(low) and np.isfinite(high)):
                raise BoundsError(f"bounds of {name!r} must be finite, got ({low}, {high})")
            if low >= high:
                raise BoundsError(f"bounds of {name!r} are empty: low {fmt(low, dim)} >= high {fmt(high, dim)}")
            if _must_be_positive(name, dim) and low <= 0:
                raise BoundsError(f"{name!r} is a {unit_name(dim)} quantity that must be positive, but its "
                                  f"lower bound is {fmt(low, dim)}")
            scale = spec[2] if len(spec) == 3 else ("log" if low > 0 and high / low >= 20 else "linear")
            if scale not in ("linear", "log"):
                raise BoundsError(f"scale of {name!r} must be 'linear' or 'log', got {scale!r}")
            if scale == "log" and low <= 0:
                raise BoundsError(f"log scale for {name!r} needs a positive lower bound, got {fmt(low, dim)}")
            out.append(Bound(name, low, high, scale))
        self.bounds = out

    @property
    def names(self) -> list[str]:
        """Names of the fitted parameters, in column order."""
        return [b.name for b in self.bounds]

    def __len__(self) -> int:
        return len(self.bounds)

    def to_physical(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, d]`` free values → ``[B, d]`` SI parameter values."""
        return torch.stack([b.to_physical(z[:, j]) for j, b in enumerate(self.bounds)], dim=1)

    def to_free(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, d]`` SI parameter values → ``[B, d]`` free values (the inverse of :meth:`to_physical`)."""
        return torch.stack([b.to_free(x[:, j]) for j, b in enumerate(self.bounds)], dim=1)

    def from_unit(self, u: np.ndarray) -> torch.Tensor:
        """Points of the unit cube ``[B, d]`` → SI values (uniform on each parameter's scale)."""
        u = torch.as_tensor(np.clip(u, 1e-6, 1 - 1e-6), dtype=torch.float64)
        return self.to_physical(torch.log(u) - torch.log1p(-u))

    def starts(self, n: int, seed: int | None = 0, method: str = "sobol") -> torch.Tensor:
        """``n`` starting points (SI, ``[n, d]``) spread over the bounds (Sobol or Latin hypercube),
        kept a little inside them so the transform's gradient is not vanishing."""
        if method == "sobol":
            sampler = qmc.Sobol(len(self), scramble=True, seed=seed)
            m = int(np.ceil(np.log2(max(n, 1))))
            u = sampler.random_base2(m)[:n]
        elif method in ("lhs", "latin"):
            u = qmc.LatinHypercube(len(self), seed=seed).random(n)
        else:
            raise ValueError(f"start method must be 'sobol' or 'lhs', got {method!r}")
        return self.from_unit(0.05 + 0.9 * u)

    def as_dict(self, x: torch.Tensor) -> dict[str, float]:
        """One SI point ``[d]`` as ``{name: value}``."""
        return {b.name: float(v) for b, v in zip(self.bounds, x.detach().cpu().tolist())}

    def on_bounds(self, point: Mapping[str, float], margin: float = 0.01) -> list[str]:
        """A sentence per parameter of ``point`` (SI) within ``margin`` of a bound (as a share of the range, on
        the parameter's scale): a value that ends there is set by the bounds, not the data."""
        out = []
        for b in self.bounds:
            v = float(point[b.name])
            if b.scale == "log":
                u = (np.log(v) - np.log(b.low)) / (np.log(b.high) - np.log(b.low))
            else:
                u = (v - b.low) / (b.high - b.low)
            if u <= margin or u >= 1 - margin:
                side, edge = ("lower", b.low) if u <= margin else ("upper", b.high)
                dim = self.model.dims[b.name]
                out.append(f"{b.name} = {fmt(v, dim)} ended on its {side} bound ({fmt(edge, dim)}): the bounds, "
                           "not the data, set it; widen them or check the recording")
        return out

    def describe(self) -> list[dict[str, str]]:
        """One row per parameter: ``name``, ``low``/``high`` (text, with units), ``scale`` (linear/log)."""
        return [{"name": b.name, "low": fmt(b.low, self.model.dims[b.name]),
                 "high": fmt(b.high, self.model.dims[b.name]), "scale": b.scale} for b in self.bounds]


