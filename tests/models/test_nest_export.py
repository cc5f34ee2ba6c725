"""NEST export: the dictionary is NEST's parameters in NEST's units, and NEST's own equations (from its model
documentation), simulated by Brian2 with those numbers, fire like the tidesim model."""

import brian2 as b2
import numpy as np
import pytest
import torch
from brian2.codegen.runtime.numpy_rt import NumpyCodeObject

import tidesim as ts


def _nest_spikes(equations: str, threshold: str, reset: str, params: dict, refractory: float,
                 duration: float = 0.5) -> np.ndarray:
    """NEST's model, written from its documentation, with the exported numbers (NEST units), in Brian2."""
    b2.start_scope()
    b2.defaultclock.dt = 0.01 * b2.ms
    units = {"C_m": b2.pF, "g_L": b2.nS, "E_L": b2.mV, "V_th": b2.mV, "Delta_T": b2.mV, "tau_w": b2.ms, "a": b2.nS,
             "b": b2.pA, "V_reset": b2.mV, "V_peak": b2.mV, "I_e": b2.pA, "tau_m": b2.ms}
    ns = {k: v * units[k] for k, v in params.items() if k in units}
    group = b2.NeuronGroup(1, equations, threshold=threshold, reset=reset, refractory=refractory * b2.ms,
                           method="rk4", namespace=ns, codeobj_class=NumpyCodeObject)  # no compile wait
    group.V = params["E_L"] * b2.mV
    mon = b2.SpikeMonitor(group, codeobj_class=NumpyCodeObject)
    net = b2.Network(group, mon)
    net.run(duration * b2.second, namespace=ns)
    return np.asarray(mon.t / b2.second)


def _tidesim_spikes(model, current: float, duration: float = 0.5) -> np.ndarray:
    res = ts.simulate(model, duration=duration, dt=1e-5, inputs={"I": current}, dtype=torch.float64)
    return np.asarray(res.spike_trains[0])


def test_lif_as_iaf_psc_delta():
    model = ts.models.get("lif")
    d = ts.export_nest(model)
    p = model.parameters
    assert d["model"] == "iaf_psc_delta"
    assert d["params"]["C_m"] == pytest.approx(float(p["tau_m"]) / float(p["R"]) * 1e12)
    assert d["params"]["tau_m"] == pytest.approx(float(p["tau_m"]) * 1e3)
    assert d["params"]["t_ref"] == pytest.approx(2.0)
    current = 2.0 * (float(p["V_th"]) - float(p["E_L"])) / float(p["R"])  # twice the rheobase
    d = ts.export_nest(ts.models.get("lif", I=current))
    nest = _nest_spikes("dV/dt = -(V - E_L)/tau_m + I_e/C_m : volt (unless refractory)", "V >= V_th",
                        "V = V_reset", d["params"], d["params"]["t_ref"])
    ours = _tidesim_spikes(ts.models.get("lif"), current)
    assert len(nest) == len(ours) > 5
    np.testing.assert_allclose(nest, ours, atol=1e-4)


def test_adex_as_aeif_psc_delta():
    current = 0.8e-9
    d = ts.export_nest(ts.models.get("adex", I=current))
    assert d["model"] == "aeif_psc_delta"
    p = ts.models.get("adex").parameters
    assert d["params"]["V_peak"] == pytest.approx((float(p["VT"]) + 5 * float(p["DeltaT"])) * 1e3)
    assert d["params"]["b"] == pytest.approx(float(p["b"]) * 1e12)  # pA
    assert d["params"]["I_e"] == pytest.approx(800.0)
    eqs = """dV/dt = (-g_L*(V - E_L) + g_L*Delta_T*exp((V - V_th)/Delta_T) - w + I_e)/C_m : volt
             dw/dt = (a*(V - E_L) - w)/tau_w : amp"""
    nest = _nest_spikes(eqs, "V >= V_peak", "V = V_reset; w += b", d["params"], 0.0)
    ours = _tidesim_spikes(ts.models.get("adex"), current)
    assert len(nest) == len(ours) > 3
    np.testing.assert_allclose(nest, ours, atol=3e-4)


def test_gif_as_gif_psc_exp():
    model = ts.models.get("gif")
    d = ts.export_nest(model)
    p = {k: float(v) for k, v in model.parameters.items()}
    assert d["model"] == "gif_psc_exp"
    assert d["params"]["q_stc"] == pytest.approx([p[f"a_eta_{k}"] * 1e9 for k in range(1, 6)])  # nA
    assert d["params"]["tau_sfa"] == pytest.approx([p[f"tau_gamma_{k}"] * 1e3 for k in range(1, 6)])  # ms
    assert d["params"]["lambda_0"] == pytest.approx(p["lambda0"])  # 1/s
    assert d["params"]["Delta_V"] == pytest.approx(p["DV"] * 1e3)


def test_what_nest_cannot_express_is_refused():
    with pytest.raises(ValueError, match="a_v"):
        ts.export_nest(ts.models.get("gif", a_v=0.3))
    with pytest.raises(ValueError, match="gif_hazard"):
        ts.export_nest(ts.models.get("gif_hazard"))
    with pytest.raises(ValueError, match="no NEST model"):
        ts.export_nest(ts.models.get("izhikevich"))
    model = ts.models.get("lif", tau_m=torch.tensor([0.01, 0.02]))
    with pytest.raises(ValueError, match="one value per neuron"):
        ts.export_nest(model)
