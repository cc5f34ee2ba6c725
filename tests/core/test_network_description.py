"""A network description checks every value when it is given (not when it runs), in the user's units."""

import brian2 as b2
import numpy as np
import pytest

import tidesim as ts
from tidesim.core.errors import NetworkError, ShapeError, UnitMismatchError, UnknownIdentifierError

COND = ts.SynapseModel("w : siemens", on_pre="g_e_post += w", name="conductance")


def _net():
    model = ts.NeuronModel("""dv/dt = (-v + g_e*(E_e - v)/g_L)/tau : volt
                              dg_e/dt = -g_e/tau_e : siemens""", threshold="v > 10*mV", reset="v = 0*mV",
                           parameters={"tau": 10 * b2.ms, "tau_e": 5 * b2.ms, "E_e": 60 * b2.mV,
                                       "g_L": 10 * b2.nS})
    net = ts.Network()
    net.add_spike_source("inp", 3, indices=[0], times=[1e-3])
    net.add_population("exc", model, 4)
    return net


def test_a_conductance_weight_given_in_millivolts_is_refused_naming_it():
    net = _net()
    with pytest.raises(UnitMismatchError, match=r"'w' of 'inp->exc'.*unit V.*must have unit S"):
        net.connect("inp", "exc", COND, params={"w": 0.5 * b2.mV})
    assert net.projections == []  # nothing half-built
    proj = net.connect("inp", "exc", COND, params={"w": 2 * b2.nS})
    assert float(proj.values["w"][0]) == pytest.approx(2e-9)


def test_delays_and_weight_shapes_are_checked_at_connect():
    net = _net()
    with pytest.raises(UnitMismatchError, match="delay"):
        net.connect("inp", "exc", COND, params={"w": 1e-9}, delay=1 * b2.mV)
    with pytest.raises(ShapeError, match=r"'w' of inp->exc has shape \(5,\)"):
        net.connect("inp", "exc", COND, params={"w": np.ones(5)})
    with pytest.raises(UnknownIdentifierError, match="'q'"):
        net.connect("inp", "exc", COND, params={"q": 1.0})
    with pytest.raises(NetworkError, match="finite and >= 0"):
        net.connect("inp", "exc", COND, params={"w": 1e-9}, delay=-1e-3)


def test_populations_are_checked_when_added():
    net = _net()
    model = net.populations["exc"].model
    with pytest.raises(NetworkError, match="whole number"):
        net.add_population("inh", model, 2.5)
    with pytest.raises(UnitMismatchError, match="population 'inh': parameter 'tau'"):
        net.add_population("inh", model, 2, params={"tau": 3 * b2.mV})
    with pytest.raises(UnknownIdentifierError, match="'u'"):
        net.add_population("inh", model, 2, initial={"u": 0.0})
    with pytest.raises(UnitMismatchError, match="rates"):
        net.add_spike_source("poisson", 2, rates=5 * b2.mV)
    assert list(net.populations) == ["inp", "exc"]


def test_unusable_population_and_projection_values_are_named():
    net = ts.Network()
    with pytest.raises(ts.InputError, match="population 'exc': parameter 'tau_m' is nan"):
        net.add_population("exc", ts.models.get("lif"), 3, params={"tau_m": float("nan")})
    with pytest.raises(ts.InputError, match="population 'exc': parameter 'tau_m' is the text"):
        net.add_population("exc", ts.models.get("lif"), 3, params={"tau_m": "10 ms"})
    net.add_population("exc", ts.models.get("lif"), 3)
    with pytest.raises(NetworkError, match="needs a ts.SynapseModel as synapse, got str"):
        net.connect("exc", "exc", "exp_current")
    with pytest.raises(ts.InputError, match="synaptic variable 'w' of exc->exc is nan"):
        net.connect("exc", "exc", ts.SynapseModel("w : volt", on_pre="v_post += w"), params={"w": float("nan")})
