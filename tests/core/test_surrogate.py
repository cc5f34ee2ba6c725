"""Surrogates: exact step forward, the documented pulse backward."""

import math

import pytest
import torch

import tidesim as ts

x = torch.linspace(-2, 2, 41, dtype=torch.float64)


@pytest.mark.parametrize("name", ["fast_sigmoid", "sigmoid", "atan", "triangular", "straight_through"])
def test_forward_is_exact_step(name):
    s = ts.surrogate.get(name)(x)
    assert torch.equal(s, (x > 0).double())
    cond = torch.zeros_like(x, dtype=torch.bool)
    assert torch.equal(ts.surrogate.get(name)(x, cond), torch.zeros_like(x))


def _grad(surrogate):
    xr = x.clone().requires_grad_(True)
    surrogate(xr).sum().backward()
    return xr.grad


def test_fast_sigmoid_derivative():
    assert torch.allclose(_grad(ts.surrogate.fast_sigmoid(slope=10)), 1 / (10 * x.abs() + 1) ** 2)


def test_sigmoid_derivative_is_that_of_the_logistic():
    xr = x.clone().requires_grad_(True)
    torch.sigmoid(5 * xr).sum().backward()
    assert torch.allclose(_grad(ts.surrogate.sigmoid(slope=5)), xr.grad)


def test_atan_derivative_is_that_of_arctan():
    xr = x.clone().requires_grad_(True)
    (torch.atan(math.pi / 2 * 2.0 * xr) / math.pi).sum().backward()
    assert torch.allclose(_grad(ts.surrogate.atan(alpha=2.0)), xr.grad)


def test_triangular_and_straight_through():
    g = _grad(ts.surrogate.triangular(width=0.5))
    assert torch.allclose(g, torch.clamp(1 - x.abs() / 0.5, min=0) / 0.5)
    assert torch.equal(_grad(ts.surrogate.straight_through()), torch.ones_like(x))
    with pytest.raises(ValueError):
        ts.surrogate.triangular(width=0)


def test_custom_and_lookup():
    g = _grad(ts.surrogate.custom(lambda z: torch.exp(-z * z)))
    assert torch.allclose(g, torch.exp(-x * x))
    assert isinstance(ts.surrogate.get(None), ts.surrogate.fast_sigmoid)
    with pytest.raises(ValueError, match="unknown surrogate"):
        ts.surrogate.get("gaussian-ish")
