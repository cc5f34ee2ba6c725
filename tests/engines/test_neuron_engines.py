"""The compiled engine (generated C forward and adjoint kernels) against the eager torch engine.

The eager engine steps in torch and differentiates with autograd; the compiled engine runs the
time loop in C and its gradients come from sympy-generated adjoint code. Both must agree to
rounding, for every zoo model, every parameter layout and every memory option.
"""

import brian2 as b2
import pytest
import torch

import tidesim as ts
from tidesim.engines.simulate import n_steps_for


def _inputs(name, duration, n=3, requires_grad=False):
    spec = ts.models.module(name).VALIDATION
    T = n_steps_for(duration, spec["dt"])
    amps = torch.tensor(spec["amplitudes"], dtype=torch.float64)[:n]
    ramp = torch.linspace(0.6, 1.2, T, dtype=torch.float64)[:, None] * amps[None, :]
    return ramp.clone().requires_grad_(requires_grad), spec["dt"]


# the zoo, each in a deterministic variant (escape noise is drawn by torch: the compiled engine refuses it)
DETERMINISTIC = [(name, {"spikes": "hazard"} if name == "gif" else {}) for name in ts.models.available()]
DETERMINISTIC += [("gif", {"spikes": "threshold"}), ("adex", {"adaptive_threshold": True})]
DETERMINISTIC += [("glif", {"level": level}) for level in (1, 2, 3, 4)]


@pytest.mark.parametrize("name, options", DETERMINISTIC, ids=lambda v: str(v))
def test_forward_identical(name, options):
    model = ts.models.get(name, **options)
    I, dt = _inputs(name, 0.2)
    record = model.state_names + model.subexpression_names[:1]
    a = ts.simulate(model, 0.2, dt=dt, inputs={"I": I}, record=record, engine="eager")
    b = ts.simulate(model, 0.2, dt=dt, inputs={"I": I}, record=record, engine="compiled")
    assert torch.equal(a.spikes, b.spikes) and a.spikes.sum() > 3
    for name_ in record:
        scale = a[name_].abs().max()
        if scale == 0:  # a state its default parameters leave at 0 (gif's theta_v with a_v = 0)
            assert torch.equal(b[name_], a[name_]), name_
            continue
        assert ((a[name_] - b[name_]).abs().max() / scale) < 1e-11, name_


@pytest.mark.parametrize("name, param", [("lif", "tau_m"), ("adex", "b"), ("adex", "VT"),
                                         ("izhikevich", "d"), ("hodgkin_huxley", "g_K"), ("mat", "alpha_1"),
                                         ("glif", "theta_inf"), ("gif_hazard", "DV"),
                                         ("gif_threshold", "a_gamma_1")])
@pytest.mark.parametrize("options", [{}, {"checkpoint": 37}, {"tbptt": 25}, {"detach_reset": False}])
def test_adjoint_gradients_equal_autograd(name, param, options):
    model = ts.models.get(name)
    duration = 0.05 if name == "hodgkin_huxley" else 0.15
    grads = []
    for engine in ("eager", "compiled"):
        I, dt = _inputs(name, duration, requires_grad=True)
        p = torch.full((3,), float(model.parameters[param]), dtype=torch.float64, requires_grad=True)
        res = ts.simulate(model, duration, dt=dt, params={param: p}, inputs={"I": I}, engine=engine, **options)
        ramp = torch.linspace(0, 1, len(res.t), dtype=torch.float64)[:, None]
        loss = res.spikes.sum() + (res["v"] * 1e3).sum() + (res.spikes * ramp).sum()
        grads.append(torch.autograd.grad(loss, [p, I]))
    for ge, gc in zip(*grads):
        assert torch.all(torch.isfinite(gc))
        assert (ge - gc).abs().max() <= 1e-9 * ge.abs().max()


def test_scalar_parameter_and_initial_value_gradients():
    model = ts.models.get("adex")
    out = []
    for engine in ("eager", "compiled"):
        a = torch.tensor(4e-9, dtype=torch.float64, requires_grad=True)
        v0 = torch.tensor([-0.07, -0.065], dtype=torch.float64, requires_grad=True)
        res = ts.simulate(model, 0.1, n=2, params={"a": a, "I": 0.9e-9}, initial={"v": v0}, engine=engine,
                          record=["w"])
        out.append(torch.autograd.grad(res["w"].sum() * 1e12, [a, v0]))
    for ge, gc in zip(*out):
        assert torch.allclose(ge, gc, rtol=1e-9, atol=0)


def test_float32_compiled_close_to_eager():
    model = ts.models.get("adex")
    kw = dict(duration=0.3, params={"I": torch.tensor([0.8e-9, 1.0e-9])}, dtype=torch.float32)
    a = ts.simulate(model, engine="eager", **kw)
    b = ts.simulate(model, engine="compiled", **kw)
    assert b["v"].dtype == torch.float32
    assert (a.spike_counts - b.spike_counts).abs().max() <= 1


def test_engine_choice_and_fallback():
    noisy = ts.NeuronModel("dv/dt = -v/tau + sigma*xi*tau**-0.5 : volt",
                           parameters={"tau": 10 * b2.ms, "sigma": 1 * b2.mV}, method="euler")
    with pytest.raises(ts.SimulationError, match="noise"):
        ts.simulate(noisy, 0.01, engine="compiled")
    assert ts.simulate(noisy, 0.01, n=2, seed=0)["v"].shape == (100, 2)  # auto: falls back to eager
    with pytest.raises(ValueError, match="engine"):
        ts.simulate(noisy, 0.01, engine="fast")
    # a custom surrogate needs the eager engine for gradients; the forward is the same
    model = ts.models.get("lif")
    I = torch.tensor([0.3e-9, 0.5e-9], dtype=torch.float64, requires_grad=True)
    custom = ts.surrogate.custom(lambda x: torch.exp(-x.abs()))
    res = ts.simulate(model, 0.05, params={"I": I}, surrogate=custom)
    res.spikes.sum().backward()
    assert torch.all(I.grad > 0)


def test_nan_reported_by_eager_engine_too():
    model = ts.NeuronModel("dv/dt = v**2/(tau*mV) : volt", parameters={"tau": 10 * b2.ms}, method="euler")
    with pytest.raises(ts.NumericalInstabilityError) as err:
        ts.simulate(model, duration=0.2, n=3, initial={"v": torch.tensor([0.0, 1e-3, 5e-3])}, engine="eager")
    assert "'v'" in str(err.value) and "neuron 2" in str(err.value)
