"""Brian2 semantics beyond the zoo: every state updater, noise, subexpressions, time, refractoriness."""

import brian2 as b2
import pytest
import torch

import tidesim as ts

pytestmark = pytest.mark.brian2

# A 2-D model with a quadratic nonlinearity and adaptation, in units, spiking under a step.
QIF = """dv/dt = (k*(v - E_L)*(v - V_t) - u + I)/C : volt (unless refractory)
         du/dt = (b*(v - E_L) - u)/tau_u : amp"""
QIF_PARAMS = {"k": 1 * b2.nS / b2.mV, "E_L": -65 * b2.mV, "V_t": -50 * b2.mV, "C": 100 * b2.pF,
              "b": 2 * b2.nS, "tau_u": 50 * b2.ms, "I": 0 * b2.nA, "V_reset": -60 * b2.mV,
              "d": 50 * b2.pA, "V_peak": 20 * b2.mV}


@pytest.mark.parametrize("method", ["euler", "rk2", "rk4", "heun"])
def test_every_state_updater_agrees_with_brian2(method):
    model = ts.NeuronModel(QIF, threshold="v > V_peak", reset="v = V_reset; u += d", refractory=1 * b2.ms,
                           parameters=QIF_PARAMS, initial={"v": "E_L"}, method=method, name=f"qif-{method}")
    amps = torch.tensor([0.2e-9, 0.4e-9], dtype=torch.float64)
    report = ts.crossvalidate(model, duration=0.3, dt=5e-5, params={"I": amps}, target="numpy")
    assert report.passed, str(report)
    assert report.spikes.counts_brian2.min() >= 3


def test_exponential_euler_on_adaptive_lif():
    # conditionally linear (the rates depend on other variables only), with refractoriness
    model = ts.NeuronModel(
        """dv/dt = (E_L - v + R*(I - w))/tau : volt (unless refractory)
           dw/dt = (a*(v - E_L) - w)/tau_w : amp""",
        threshold="v > V_th", reset="v = V_reset; w += d", refractory=2 * b2.ms,
        parameters={"E_L": -70 * b2.mV, "R": 100 * b2.Mohm, "tau": 10 * b2.ms, "a": 2 * b2.nS,
                    "tau_w": 100 * b2.ms, "V_th": -50 * b2.mV, "V_reset": -60 * b2.mV, "d": 20 * b2.pA,
                    "I": 0 * b2.nA}, initial={"v": "E_L"}, method="exponential_euler", name="alif")
    report = ts.crossvalidate(model, duration=0.5, dt=1e-4, params={"I": torch.tensor([0.3e-9, 0.5e-9])},
                              target="numpy")
    assert report.passed, str(report)
    assert report.spikes.counts_brian2.min() >= 5


def test_exact_method_for_linear_equations():
    model = ts.NeuronModel("dv/dt = (E_L - v + R*I)/tau : volt\nI : amp", parameters={
        "E_L": -70 * b2.mV, "R": 50 * b2.Mohm, "tau": 20 * b2.ms}, initial={"v": -70 * b2.mV},
        method="exact", name="linear")
    ramp = torch.linspace(0, 0.4e-9, 1000, dtype=torch.float64)
    report = ts.crossvalidate(model, duration=0.1, dt=1e-4, n=2, inputs={"I": ramp}, target="numpy")
    assert report.passed, str(report)
    assert report.spikes is None


def test_automatic_method_choice_matches_brian2():
    lin = ts.NeuronModel("dv/dt = -v/tau : volt", parameters={"tau": 10 * b2.ms})
    nonlin = ts.NeuronModel("dv/dt = -v**3/(tau*mV**2) : volt", parameters={"tau": 10 * b2.ms})
    assert lin.method == "exact" and nonlin.method == "euler"


def test_time_dependent_equations_and_subexpressions():
    model = ts.NeuronModel(
        """dv/dt = (E_L - v + R*I_syn)/tau : volt
           I_syn = I0*sin(2*pi*f*t) + I1*clip(v/mV + 60, 0, 5) : amp""",
        parameters={"E_L": -70 * b2.mV, "R": 100 * b2.Mohm, "tau": 10 * b2.ms, "I0": 0.2 * b2.nA,
                    "f": 10 * b2.Hz, "I1": 10 * b2.pA}, initial={"v": "E_L"}, method="rk4", name="sine")
    report = ts.crossvalidate(model, duration=0.2, dt=1e-4, n=2, record=["v", "I_syn"], target="numpy")
    assert report.passed, str(report)
    assert report.torch_result["I_syn"].abs().max() > 0.1e-9


def test_refractory_condition_matches_brian2():
    model = ts.NeuronModel("dv/dt = (v_inf - v)/tau + 5*mV*int(v > 10*mV)/ms : volt (unless refractory)",
                           threshold="v > 12*mV", reset="v = 0*mV", refractory="v > 6*mV",
                           parameters={"tau": 5 * b2.ms, "v_inf": 20 * b2.mV}, method="euler", name="cond")
    report = ts.crossvalidate(model, duration=0.1, dt=1e-4, n=1, target="numpy")
    assert report.passed, str(report)
    assert report.spikes.counts_brian2[0] >= 5


def test_per_neuron_refractory_time_matches_brian2():
    model = ts.NeuronModel("dv/dt = (v_inf - v)/tau : volt (unless refractory)\nref : second",
                           threshold="v > 10*mV", reset="v = 0*mV", refractory="ref",
                           parameters={"tau": 5 * b2.ms, "v_inf": 20 * b2.mV}, name="ref")
    report = ts.crossvalidate(model, duration=0.1, dt=1e-4, params={"ref": torch.tensor([1e-3, 2.5e-3, 4e-3])},
                              target="numpy")
    assert report.passed, str(report)
    counts = report.spikes.counts_brian2
    assert counts[0] > counts[1] > counts[2]


def test_noise_agrees_in_distribution():
    # Ornstein-Uhlenbeck membrane with a threshold: rates and trace statistics, not samples.
    model = ts.NeuronModel("dv/dt = (mu - v)/tau + sigma*xi*tau**-0.5 : volt",
                           threshold="v > -50*mV", reset="v = -60*mV",
                           parameters={"tau": 10 * b2.ms, "mu": -55 * b2.mV, "sigma": 5 * b2.mV},
                           initial={"v": -60 * b2.mV}, method="euler", name="ou")
    report = ts.crossvalidate(model, duration=1.0, dt=1e-4, n=200, target="numpy", stat_rtol=0.1)
    assert report.stochastic
    assert report.passed, str(report)
    rate = report.spikes.counts_brian2.mean()
    assert rate > 5  # the comparison is about real spiking
    # the noise is not the same sample by sample
    assert not torch.allclose(report.torch_result["v"], report.brian2_result["v"])


def test_milstein_for_multiplicative_noise():
    model = ts.NeuronModel("dx/dt = -x/tau + s*x*xi*tau**-0.5 : 1",
                           parameters={"tau": 10 * b2.ms, "s": 0.3}, initial={"x": 1.0}, method="milstein")
    res_t = ts.simulate(model, duration=0.05, n=4000, seed=0)
    res_b = ts.simulate(model, duration=0.05, n=4000, seed=0, backend="brian2", target="numpy")
    mt, mb = res_t["x"][-1].mean().item(), res_b["x"][-1].mean().item()
    st, sb = res_t["x"][-1].std().item(), res_b["x"][-1].std().item()
    assert mt == pytest.approx(mb, rel=0.05)
    assert st == pytest.approx(sb, rel=0.1)
    assert st > 0.3 * mt  # the noise term is really there


FUNCTIONS = """dv/dt = (E_L - v + R*I_f)/tau : volt (unless refractory)
               I_f = I0*(1 + 0.1*sin(2*pi*f*t) + 0.1*cos(2*pi*f*t))*(1 + 0.05*tanh((v - E_L)/mV)) + I1*clip(abs(v - E_L)/mV, 0, 3) + I1*log(1 + sqrt(abs(v/mV))) + I1*int(v > E_L) + I1*exp(-abs(v - E_L)/(5*mV)) : amp"""  # noqa: E501


@pytest.mark.parametrize("engine", ["compiled", "eager"])
def test_supported_functions_agree_with_brian2(engine):
    # exp, log, sqrt, abs, clip, sin, cos, tanh, int and the constant pi, in both engines
    model = ts.NeuronModel(FUNCTIONS, threshold="v > -50*mV", reset="v = -60*mV", refractory=1 * b2.ms,
                           parameters={"E_L": -70 * b2.mV, "R": 100 * b2.Mohm, "tau": 10 * b2.ms,
                                       "I0": 0.15 * b2.nA, "I1": 10 * b2.pA, "f": 20 * b2.Hz},
                           initial={"v": "E_L"}, method="euler", name="functions")
    res_t = ts.simulate(model, 0.3, n=2, params={"I0": torch.tensor([0.15e-9, 0.3e-9])},
                        record=["v", "I_f"], engine=engine)
    res_b = ts.simulate(model, 0.3, n=2, params={"I0": torch.tensor([0.15e-9, 0.3e-9])},
                        record=["v", "I_f"], backend="brian2", target="numpy")
    from tidesim.validation.neuron import compare

    variables, spikes, _ = compare(res_t, res_b)
    assert all(v.passed for v in variables), variables
    assert spikes.passed and spikes.counts_brian2[1] >= 3


def test_gradient_through_clip_falls_back_to_eager_and_agrees():
    model = ts.NeuronModel(FUNCTIONS, threshold="v > -50*mV", reset="v = -60*mV", refractory=1 * b2.ms,
                           parameters={"E_L": -70 * b2.mV, "R": 100 * b2.Mohm, "tau": 10 * b2.ms,
                                       "I0": 0.15 * b2.nA, "I1": 10 * b2.pA, "f": 20 * b2.Hz},
                           initial={"v": "E_L"}, method="euler", name="functions")
    with pytest.raises(ts.SimulationError, match="derivative"):
        ts.simulate(model, 0.05, params={"I0": torch.tensor(0.2e-9, dtype=torch.float64, requires_grad=True)},
                    engine="compiled")
    grads = []
    for engine in ("auto", "eager"):
        I0 = torch.tensor(0.2e-9, dtype=torch.float64, requires_grad=True)
        res = ts.simulate(model, 0.05, params={"I0": I0}, engine=engine)
        (g,) = torch.autograd.grad(res["v"].sum(), I0)
        grads.append(g)
    assert torch.equal(grads[0], grads[1]) and grads[0] > 0
