"""What NIR export and import share: the step convention, errors, the ``Scale`` layer, small converters
(see :mod:`tidesim.nn.nir` for the mapping)."""


from __future__ import annotations

from typing import Any

import nir
import numpy as np
import torch
from torch import nn

from tidesim.core.errors import TidesimError

__all__ = ["Scale", "NIRConversionError", "NIRSemanticsWarning", "SNNTORCH_DT"]

#: The time step (s) snnTorch's ``export_to_nir`` assumes for every ``Leaky`` (not recorded in its graphs).
SNNTORCH_DT = 1e-4

_DEFAULT_DT = 1e-3
_GAIN_TOL = 1e-5  # exporters write float32: gains within this of 1 are 1
_LEAKY = {"leaky_subtract": "subtract", "leaky_zero": "zero", "leaky_none": "none"}
_NEURON_NODES = (nir.LIF, nir.IF, nir.LI, nir.I, nir.Threshold)


class NIRConversionError(TidesimError, NotImplementedError):
    """A layer or node has no counterpart on the other side (the message names it)."""


class NIRSemanticsWarning(UserWarning):
    """A conversion is exact for tidesim but relies on something other NIR consumers may not read."""


class Scale(nn.Module):
    """Elementwise gain ``y = x * scale`` (NIR's ``Scale``): ``scale`` has the shape of one sample
    (without time and batch dimensions) or broadcasts to it; dimensionless."""

    def __init__(self, scale: Any):
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale), dtype=torch.get_default_dtype()).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x * scale`` (dimensionless gain), in ``x``'s dtype."""
        return x * self.scale.to(x.dtype)

    def extra_repr(self) -> str:
        return f"shape={tuple(self.scale.shape)}"




def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    v = tuple(int(a) for a in np.ravel(v))
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


def _value(a: np.ndarray) -> float | torch.Tensor:
    """A scalar if all entries are equal, else a tensor of the neuron shape."""
    a = np.asarray(a, dtype=np.float64)
    if a.size and np.all(a == a.flat[0]):
        return float(a.flat[0])
    return _t(a)


def _t(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.array(a, dtype=np.float64), dtype=torch.get_default_dtype())
