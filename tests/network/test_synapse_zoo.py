"""The synapse zoo (tidesim.models.synapses): every kind driving zoo LIF and AdEx neurons from a
spike generator, through a delay, in torch and in Brian2 (numpy target, float64); the analytic
post-synaptic current shapes of the alpha and bi-exponential kinds; the errors."""

import math

import brian2 as b2
import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

import tidesim as ts
from tidesim.core.errors import ModelError, TidesimError, UnknownIdentifierError
from tidesim.models import synapses as zs

DT = 1e-4
# weight scale per kind family: volts (delta), amperes (current), siemens (conductance)
SCALE = {"delta": 4e-3, "current": 0.12e-9, "conductance": 1.8e-9}


def _family(kind: zs.SynapticKind) -> str:
    return "delta" if kind.kind == "delta" else ("conductance" if kind.conductance else "current")


def _source_times():
    rng = np.random.default_rng(7)
    times = np.sort(rng.choice(np.arange(20, 700), 24, replace=False)) * DT
    return np.tile(np.arange(3), 8), times


def _network(kinds: list[zs.SynapticKind]) -> ts.Network:
    lif = zs.with_synapses(ts.models.get("lif"), *kinds)
    adex = zs.with_synapses(ts.models.get("adex"), *kinds)
    net = ts.Network()
    idx, times = _source_times()
    net.add_spike_source("inp", 3, indices=idx, times=times)
    net.add_population("lif", lif, 4)
    net.add_population("adex", adex, 1)
    i = np.repeat(np.arange(3), 4)
    j = np.tile(np.arange(4), 3)
    for kind in kinds:
        sign = -0.3 if kind.name == "i" else 1.0  # an inhibitory second kind (conductance, E = -80 mV)
        scale = abs(sign) * SCALE[_family(kind)]
        w = torch.linspace(0.6, 3.0, 12, dtype=torch.float64) * scale
        net.connect("inp", "lif", kind.synapse, connectivity=(i, j), params={"weight": w}, delay=1e-3,
                    name=f"inp->lif_{kind.name}")
        net.connect("inp", "adex", kind.synapse, connectivity="all", params={"weight": 4 * scale}, delay=1.5e-3,
                    name=f"inp->adex_{kind.name}")
    return net


def _assert_same(ours, ref, kinds_label):
    for pop in ("lif", "adex"):
        a, b = ours[pop], ref[pop]
        for var in b.states:
            x, y = a[var], b[var]
            scale = float(y.abs().max())
            err = float((x - y).abs().max())
            assert err <= 1e-9 * max(scale, 1e-300), (kinds_label, pop, var, err, scale)
        for k in range(a.n):
            sa = np.round(np.asarray(a.spike_trains[k]) / DT).astype(int)
            sb = np.round(np.asarray(b.spike_trains[k]) / DT).astype(int)
            assert np.array_equal(sa, sb), (kinds_label, pop, k, sa, sb)


KINDS = [
    zs.delta("e"),
    zs.exp_current("e", tau=4e-3),
    zs.exp_conductance("e"),
    zs.alpha_current("e"),
    zs.alpha_conductance("e"),
    zs.biexp_current("e"),
    zs.biexp_conductance("e", tau_rise=0.5e-3, tau_decay=6e-3),
]


@pytest.mark.brian2
@pytest.mark.parametrize("kind", KINDS, ids=[k.kind for k in KINDS])
def test_kind_matches_brian2(kind):
    net = _network([kind])
    ours = net.run(0.08, dt=DT)
    ref = net.run(0.08, dt=DT, backend="brian2", target="numpy")
    lif_spikes = int(ours["lif"].spikes.sum())
    assert lif_spikes >= 3, (kind.kind, lif_spikes)  # the synapses make neurons fire
    assert int(ours["lif"].spikes[:, 0].sum()) < int(ours["lif"].spikes[:, 3].sum())  # weights matter
    assert int(ours["adex"].spikes.sum()) >= 1, kind.kind
    v = ours["lif"]["v"]
    assert float(v[120:, 0].max() - v[:15, 0].min()) > 1e-3  # inputs move the membrane
    _assert_same(ours, ref, kind.kind)


@pytest.mark.brian2
def test_excitatory_and_inhibitory_conductances_together():
    kinds = [zs.exp_conductance("e", tau=5e-3, E=0.0), zs.alpha_conductance("i", tau=3e-3, E=-80e-3)]
    net = _network(kinds)
    model = net.populations["lif"].model
    assert {"g_e", "g_i", "g_x_i", "E_e", "E_i", "tau_e", "tau_i", "I_ext"} <= set(model.dims)
    ours = net.run(0.08, dt=DT, record={"lif": ["v", "g_e", "g_i", "I"]})
    ref = net.run(0.08, dt=DT, backend="brian2", target="numpy", record={"lif": ["v", "g_e", "g_i", "I"]})
    # the synaptic current as a subexpression: I = I_ext + g_e*(E_e - v) + g_i*(E_i - v)
    a = ours["lif"]
    expected = a["g_e"] * (0.0 - a["v"]) + a["g_i"] * (-80e-3 - a["v"])
    assert torch.allclose(a["I"], expected, rtol=1e-12, atol=1e-24)
    assert float(a["g_i"].max()) > 0 and float(a["g_e"].max()) > 0
    _assert_same(ours, ref, "e+i")


def test_external_current_still_drives_the_neuron():
    model = zs.with_synapses(ts.models.get("lif", I=0.1e-9), zs.exp_current("e"))
    assert "I" in model.subexpression_names and "I_ext" in model.parameter_names
    assert model.parameters["I_ext"] == pytest.approx(0.1e-9)  # the old default moves to I_ext
    res = ts.simulate(model, 0.05, n=1, inputs={"I_ext": 0.15e-9}, record=["v", "I"])
    assert torch.allclose(res["I"], torch.full_like(res["I"], 0.15e-9))
    # no synaptic input: the LIF's own analytic approach to E_L + R*I_ext (exponential Euler is exact here)
    t = res.t
    expected = -70e-3 + 100e6 * 0.15e-9 * (1 - torch.exp(-t / 10e-3))
    assert torch.allclose(res["v"][:, 0], expected, rtol=0, atol=1e-12)


def _single_spike_psc(kind: zs.SynapticKind, record: str, method: str | None, w: float, dt: float = DT):
    net = ts.Network()
    net.add_spike_source("inp", 1, indices=[0], times=[1e-3])
    net.add_population("post", zs.with_synapses(ts.models.get("lif"), kind, method=method), 1)
    net.connect("inp", "post", kind.synapse, params={"weight": w}, delay=0.5e-3)
    res = net.run(0.03, dt=dt, record={"post": [record]})["post"]
    # delivered in the step at 1.5 ms, after that step's update; the monitor sees it one step later
    s = res.t.numpy() - 1.5e-3 - dt
    return s, res[record][:, 0].numpy()


def _alpha_error(kind, record, method, w, dt):
    s, x = _single_spike_psc(kind, record, method, w, dt)
    on = s > -1e-12
    assert np.all(x[~on] == 0.0)
    expected = w * (s[on] / 2e-3) * np.exp(1 - s[on] / 2e-3)
    return s, x, float(np.max(np.abs(x[on] - expected)))


def test_alpha_peak_equals_weight_at_tau_exact_integration():
    w = 0.4e-9
    s, x, err = _alpha_error(zs.alpha_current("e", tau=2e-3), "I_e", "exact", w, DT)
    assert err <= 1e-9 * w  # the analytic alpha function, sample for sample
    k_peak = int(np.argmax(x))
    assert s[k_peak] == pytest.approx(2e-3, abs=1e-9)  # the peak at t = tau
    assert x[k_peak] == pytest.approx(w, rel=1e-9)  # equals the weight


def test_alpha_conductance_converges_to_the_analytic_shape():
    # the conductance form makes the membrane non-linear, so no exact integrator: exponential Euler
    # freezes the drive within a step, an O(dt/tau) error (2.5 % of the peak at dt = tau/20)
    w = 3e-9
    kind = zs.alpha_conductance("e", tau=2e-3)
    s, x, err = _alpha_error(kind, "g_e", None, w, DT)
    assert err <= 0.03 * w
    assert s[int(np.argmax(x))] == pytest.approx(2e-3, abs=1.01 * DT)
    s, x, err_fine = _alpha_error(kind, "g_e", None, w, DT / 10)
    assert err_fine <= err / 8  # first-order convergence
    assert x.max() == pytest.approx(w, rel=0.004)
    assert s[int(np.argmax(x))] == pytest.approx(2e-3, abs=0.05e-3)


@pytest.mark.parametrize("kind,record", [
    (zs.biexp_current("e", tau_rise=0.7e-3, tau_decay=6e-3), "I_e"),
    (zs.biexp_conductance("e", tau_rise=0.7e-3, tau_decay=6e-3), "g_e"),
])
def test_biexp_peak_equals_weight(kind, record):
    w = 0.4e-9 if record == "I_e" else 3e-9
    s, x = _single_spike_psc(kind, record, None, w)
    tr, td = 0.7e-3, 6e-3

    def kernel(t):
        return np.exp(-t / td) - np.exp(-t / tr)

    opt = minimize_scalar(lambda t: -kernel(t), bounds=(0, 20e-3), method="bounded",
                          options={"xatol": 1e-12})
    t_peak, k_peak = opt.x, kernel(opt.x)
    on = s > -1e-12
    expected = w * kernel(s[on]) / k_peak
    # each exponential decays exactly under exponential Euler: the trace is the analytic one
    assert np.max(np.abs(x[on] - expected)) <= 1e-9 * w
    assert np.all(x[~on] == 0.0)
    # peak: w at t_peak (the sampled maximum is the grid point nearest t_peak)
    assert abs(s[int(np.argmax(x))] - t_peak) <= DT
    assert x.max() <= w * (1 + 1e-12)
    assert x.max() >= w * (1 - 0.5 * (DT / tr) ** 2)
    assert w * kernel(t_peak) / k_peak == pytest.approx(w)
    assert t_peak == pytest.approx(tr * td / (td - tr) * math.log(td / tr), rel=1e-6)


def test_exp_and_delta_shapes():
    s, x = _single_spike_psc(zs.exp_current("e", tau=3e-3), "I_e", None, 0.2e-9)
    on = s > -1e-12
    assert np.allclose(x[on], 0.2e-9 * np.exp(-s[on] / 3e-3), rtol=1e-10, atol=0)
    s, v = _single_spike_psc(zs.delta("e"), "v", None, 2e-3)
    k = int(np.argmax(s > -1e-12))
    assert v[k] - v[k - 1] == pytest.approx(2e-3, rel=1e-9)  # a jump of w in one step


def test_unknown_kind_name():
    with pytest.raises(UnknownIdentifierError, match=r"no synapse kind 'gaussian' in the zoo; available: "
                                                     r"alpha_conductance, alpha_current, biexp_conductance"):
        zs.get("gaussian")
    with pytest.raises(UnknownIdentifierError, match="no synapse kind 'exp'"):
        zs.with_synapses(ts.models.get("lif"), "exp")
    assert zs.available() == sorted(["delta", "exp_current", "exp_conductance", "alpha_current",
                                     "alpha_conductance", "biexp_current", "biexp_conductance"])
    assert zs.get("exp_current", "x", tau=2e-3).parameters == {"tau_x": 2e-3}


def test_model_without_the_current_parameter():
    hh_like = ts.NeuronModel("dv/dt = (E_L - v + R*I_in)/tau_m : volt\nI_in : amp",
                             parameters={"E_L": -70 * b2.mV, "R": 100 * b2.Mohm, "tau_m": 10 * b2.ms},
                             name="plain")
    with pytest.raises(UnknownIdentifierError, match=r"plain has no input-current parameter 'I' to receive "
                                                     r"synaptic currents; its parameters are "
                                                     r"I_in, E_L, R, tau_m"):
        zs.with_synapses(hh_like, zs.exp_current("e"))
    ok = zs.with_synapses(hh_like, zs.exp_current("e"), current="I_in")
    assert "I_in_ext" in ok.parameter_names
    with pytest.raises(UnknownIdentifierError,
                       match=r"'v' of plain is a state variable, not an input-current parameter"):
        zs.with_synapses(hh_like, zs.exp_current("e"), current="v")


def test_other_errors():
    lif = ts.models.get("lif")
    with pytest.raises(ModelError, match=r"two synapses are named 'e'"):
        zs.with_synapses(lif, zs.exp_current("e"), zs.alpha_conductance("e"))
    with pytest.raises(ModelError, match=r"tau_rise \(5 ms\) must be shorter than tau_decay \(1 ms\)"):
        zs.biexp_current("e", tau_rise=5e-3, tau_decay=1e-3)
    with pytest.raises(UnknownIdentifierError, match=r"acts on the voltage 'V_m', which is not a state of lif"):
        zs.with_synapses(lif, zs.exp_conductance("e", voltage="V_m"))
    with pytest.raises(ModelError, match=r"would add 'tau_m'"):
        zs.with_synapses(lif, zs.exp_current("m"))
    with pytest.raises(TidesimError, match="identifier suffix"):
        zs.exp_current("1x")


def test_transmit_feeds_a_plastic_synapse():
    from tidesim.models.plasticity import stdp_pair

    exc = zs.exp_conductance("e", tau=5e-3)
    assert exc.transmit("w*g_max") == "g_e_post += (w*g_max)"
    assert zs.biexp_current("x").transmit("2*w") == "I_rise_x_post += (2*w); I_decay_x_post += (2*w)"
    stdp = stdp_pair(transmit=exc.transmit("w*g_max"), constants={"g_max": 2 * b2.nS})
    net = ts.Network()
    net.add_spike_source("inp", 1, indices=[0], times=[1e-3])
    net.add_population("post", zs.with_synapses(ts.models.get("lif"), exc), 1)
    net.connect("inp", "post", stdp, params={"w": 0.5})
    g = net.run(0.004, dt=DT, record={"post": ["g_e"]})["post"]["g_e"][:, 0]
    k = int(torch.nonzero(g)[0])
    assert k == 11  # delivered in the step at 1 ms, seen one step later
    assert float(g[k]) == pytest.approx(0.5 * 2e-9, rel=1e-12)  # w * g_max
    assert float(g[k + 1]) == pytest.approx(1e-9 * math.exp(-DT / 5e-3), rel=1e-12)
