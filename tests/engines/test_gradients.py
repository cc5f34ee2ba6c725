"""Gradients through the simulator: gradcheck on sub-threshold dynamics, surrogate vs finite differences."""

import brian2 as b2
import numpy as np
import pytest
import torch

import tidesim as ts


def test_gradcheck_lif_subthreshold():
    lif = ts.models.get("lif")

    def final_v(tau_m, R):
        res = ts.simulate(lif, duration=0.02, dt=2e-4, params={"tau_m": tau_m, "R": R},
                          inputs={"I": 0.1e-9}, n=2)
        return res["v"][-1] * 1e3  # mV: keeps gradcheck's absolute tolerance meaningful

    tau = torch.tensor([0.01, 0.02], dtype=torch.float64, requires_grad=True)
    R = torch.tensor([1e8, 1.5e8], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: final_v(t, R.detach()), (tau,), eps=1e-7, atol=1e-6)
    assert torch.autograd.gradcheck(lambda r: final_v(tau.detach(), r), (R,), eps=1e2, atol=1e-6)


def test_gradcheck_adex_subthreshold():
    adex = ts.models.get("adex")

    def traces(a, tau_w):
        res = ts.simulate(adex, duration=0.03, dt=2e-4, params={"a": a, "tau_w": tau_w},
                          inputs={"I": 0.3e-9}, n=2)
        return torch.cat([res["v"][-1] * 1e3, res["w"][-1] * 1e12])  # mV and pA

    a = torch.tensor([2e-9, 6e-9], dtype=torch.float64, requires_grad=True)
    tau_w = torch.tensor([0.1, 0.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: traces(x, tau_w.detach()), (a,), eps=1e-12, atol=1e-5)
    assert torch.autograd.gradcheck(lambda x: traces(a.detach(), x), (tau_w,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name, param, p0, h, lo, hi", [
    ("adex", "b", 60e-12, 20e-12, 0.4e-9, 1.2e-9),  # stronger adaptation, fewer spikes
    ("adex", "tau_w", 0.144, 0.02, 0.4e-9, 1.2e-9),  # slower adaptation decay, fewer spikes
    ("lif", "tau_m", 0.01, 0.001, 0.2e-9, 0.6e-9),  # slower membrane, fewer spikes
])
def test_surrogate_spike_count_gradient_matches_finite_differences(name, param, p0, h, lo, hi):
    # A population with a spread of drives makes the total spike count a smooth function of a
    # parameter; its surrogate gradient should agree in sign and rough size with central
    # finite differences. (A sharp surrogate is needed for the size: summed over time steps,
    # the surrogate pulse also counts time spent near threshold.)
    model = ts.models.get(name)
    n = 200
    drive = torch.linspace(lo, hi, n, dtype=torch.float64)

    def count(p):
        res = ts.simulate(model, duration=0.3, n=n, params={param: p, "I": drive}, record=[],
                          surrogate=ts.surrogate.fast_sigmoid(slope=200))
        return res.spikes.sum()

    p = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(count(p), p)
    with torch.no_grad():
        fd = (count(torch.tensor(p0 + h)) - count(torch.tensor(p0 - h))).item() / (2 * h)
    assert fd < 0 and grad.item() < 0
    assert 0.2 < grad.item() / fd < 5


def test_gradient_reaches_initial_values_and_inputs():
    lif = ts.models.get("lif")
    v0 = torch.tensor([-0.07, -0.06], dtype=torch.float64, requires_grad=True)
    I = torch.full((100, 2), 0.1e-9, dtype=torch.float64, requires_grad=True)
    res = ts.simulate(lif, duration=0.01, n=2, inputs={"I": I}, initial={"v": v0})
    res["v"][-1].sum().backward()
    # dv(T)/dv0 = exp(-T/tau) for the linear ODE (T = 99 steps after the first record)
    assert np.allclose(v0.grad.numpy(), np.exp(-99e-4 / 0.01), rtol=1e-12)
    assert torch.all(I.grad[:-1] > 0) and I.grad[-1].abs().max() == 0  # last input is never used


def test_detach_reset_changes_gradient_only():
    lif = ts.models.get("lif", tau_m=10 * b2.ms)
    I = torch.tensor([0.3e-9, 0.5e-9], dtype=torch.float64, requires_grad=True)
    a = ts.simulate(lif, duration=0.05, params={"I": I}, detach_reset=False)
    b = ts.simulate(lif, duration=0.05, params={"I": I})
    assert torch.equal(a["v"], b["v"])
    (ga,) = torch.autograd.grad(a["v"].sum(), I)
    (gb,) = torch.autograd.grad(b["v"].sum(), I)
    assert not torch.allclose(ga, gb)
