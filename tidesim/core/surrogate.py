"""Surrogate gradients for spikes: the forward pass is the exact step, the backward a smooth pulse.

Each surrogate is called with the distance to threshold ``x`` (already divided by the model's
``threshold_scale``, so ``x`` is in mV for voltage thresholds) and, optionally, the exact spike
condition; it returns 0/1 spikes whose gradient with respect to ``x`` is ``derivative(x)``.
Definitions follow snnTorch's (``fast_sigmoid``: Zenke & Ganguli 2018; ``atan``: Fang et al. 2021).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

__all__ = ["Surrogate", "fast_sigmoid", "sigmoid", "atan", "triangular", "straight_through", "custom",
           "get"]


class _SpikeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cond, surrogate, shape_param):
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        spikes = (x > 0) if cond is None else cond
        return spikes.to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        sur = ctx.surrogate
        g_param = None
        if ctx.needs_input_grad[3]:  # a learnable slope: the gradient of the smooth primitive
            g_param = (grad * sur.param_derivative(x)).sum().reshape(sur.shape_param.shape)
        return grad * sur.derivative(x), None, None, g_param


def _learnable(value: float, learnable: bool):
    """The shape parameter: a float, or a trainable scalar ``nn.Parameter``."""
    if not learnable:
        return float(value)
    return torch.nn.Parameter(torch.tensor(float(value), dtype=torch.float64))


class Surrogate:
    """Base class: subclasses define ``derivative(x)``, the pulse used in the backward pass."""

    name = "surrogate"

    def derivative(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """d(spike)/dx for the backward pass at ``x``, the distance to threshold / ``threshold_scale``."""
        raise NotImplementedError

    #: the learnable shape parameter (``nn.Parameter``) of surrogates made with ``learnable=True``
    shape_param = None

    @property
    def learnable(self) -> bool:
        """Whether the shape parameter is a trainable ``nn.Parameter`` (``learnable=True``)."""
        return isinstance(self.shape_param, torch.nn.Parameter)

    def param_derivative(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """d(primitive)/d(shape parameter): what a learnable slope's gradient is made of."""
        raise NotImplementedError(f"{self.name} has no learnable shape parameter")

    def __call__(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Spikes (0/1, dtype of ``x``): ``cond`` if given, else ``x > 0``."""
        return _SpikeFunction.apply(x, cond, self, self.shape_param if self.learnable else None)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={float(v) if isinstance(v, torch.Tensor) else v}" for k, v in vars(self).items()
                         if k != "_fn")
        return f"{self.name}({args})"


class fast_sigmoid(Surrogate):
    """Derivative ``1 / (slope*|x| + 1)**2`` (SuperSpike; snnTorch's default, slope 25), the
    derivative of the primitive ``x / (1 + slope*|x|)``. ``learnable=True``: the slope is an
    ``nn.Parameter`` whose gradient is that of the primitive (Lian et al. 2023's learnable
    surrogate); layers register it."""

    name = "fast_sigmoid"

    def __init__(self, slope: float = 25.0, learnable: bool = False):
        self.shape_param = _learnable(slope, learnable)

    @property
    def slope(self):
        """The slope (per unit of the scaled distance ``x``): a float or a trainable ``nn.Parameter``."""
        return self.shape_param

    def derivative(self, x):
        return 1.0 / (self.slope * x.abs() + 1.0) ** 2

    def param_derivative(self, x):
        return -x * x.abs() / (1.0 + self.slope * x.abs()) ** 2


class sigmoid(Surrogate):
    """Derivative of the logistic function ``sigma(slope*x)`` (``learnable=True`` as for
    :class:`fast_sigmoid`)."""

    name = "sigmoid"

    def __init__(self, slope: float = 25.0, learnable: bool = False):
        self.shape_param = _learnable(slope, learnable)

    @property
    def slope(self):
        """The slope (per unit of the scaled distance ``x``): a float or a trainable ``nn.Parameter``."""
        return self.shape_param

    def derivative(self, x):
        s = torch.sigmoid(self.slope * x)
        return self.slope * s * (1.0 - s)

    def param_derivative(self, x):
        s = torch.sigmoid(self.slope * x)
        return x * s * (1.0 - s)


class atan(Surrogate):
    """Derivative of ``arctan(pi/2*alpha*x)/pi + 1/2``: ``alpha/2 / (1 + (pi/2*alpha*x)**2)``
    (``learnable=True`` as for :class:`fast_sigmoid`)."""

    name = "atan"

    def __init__(self, alpha: float = 2.0, learnable: bool = False):
        self.shape_param = _learnable(alpha, learnable)

    @property
    def alpha(self):
        """The width parameter (per unit of the scaled distance ``x``): a float or an ``nn.Parameter``."""
        return self.shape_param

    def derivative(self, x):
        return (self.alpha / 2.0) / (1.0 + (math.pi / 2.0 * self.alpha * x) ** 2)

    def param_derivative(self, x):
        return (x / 2.0) / (1.0 + (math.pi / 2.0 * self.alpha * x) ** 2)


class triangular(Surrogate):
    """Triangle of half-width ``width`` and unit area: ``max(0, 1 - |x|/width) / width``."""

    name = "triangular"

    def __init__(self, width: float = 1.0):
        if width <= 0:
            raise ValueError(f"triangular surrogate width must be positive, got {width}")
        self.width = float(width)

    def derivative(self, x):
        return torch.clamp(1.0 - x.abs() / self.width, min=0.0) / self.width


class straight_through(Surrogate):
    """Passes the gradient unchanged (derivative 1 everywhere)."""

    name = "straight_through"

    def derivative(self, x):
        return torch.ones_like(x)


class custom(Surrogate):
    """A user surrogate: ``custom(lambda x: ...)`` returns the pulse for distance ``x``."""

    name = "custom"

    def __init__(self, derivative: Callable[[torch.Tensor], torch.Tensor]):
        self._fn = derivative

    def derivative(self, x):
        return self._fn(x)


_BY_NAME = {c.name: c for c in (fast_sigmoid, sigmoid, atan, triangular, straight_through)}


def get(spec: str | Surrogate | None) -> Surrogate:
    """A surrogate from its name (``"atan"``), an instance, or ``None`` (fast_sigmoid)."""
    if spec is None:
        return fast_sigmoid()
    if isinstance(spec, Surrogate):
        return spec
    if isinstance(spec, str) and spec in _BY_NAME:
        return _BY_NAME[spec]()
    raise ValueError(f"unknown surrogate {spec!r}; choose one of {', '.join(_BY_NAME)} or pass an instance")
