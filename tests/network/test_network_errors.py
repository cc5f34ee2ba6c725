"""Networks built wrongly say what and where."""

import numpy as np
import pytest
import torch

import tidesim as ts
from tidesim.core.errors import (
    ModelError,
    ShapeError,
    TidesimError,
    UnknownIdentifierError,
)


@pytest.fixture
def net():
    net = ts.Network()
    net.add_population("exc", ts.models.get("lif"), 4)
    net.add_population("inh", ts.models.get("lif"), 3)
    return net


DELTA = ts.SynapseModel("w : volt", on_pre="v_post += w", name="delta")


def test_connecting_a_population_the_network_does_not_own(net):
    with pytest.raises(TidesimError, match=r"no population 'other' to connect as post; it has exc, inh"):
        net.connect("exc", "other", DELTA)


def test_weight_matrix_of_the_wrong_shape_names_both(net):
    with pytest.raises(ShapeError, match=r"weight matrix of exc->inh has shape \(3, 4\); expected "
                                         r"\[n_pre, n_post\] = \[4, 3\] \(exc x inh\)"):
        net.connect("exc", "inh", DELTA, connectivity=torch.ones(3, 4))


def test_weight_matrix_gives_the_synapses_and_their_weights(net):
    m = torch.zeros(4, 3, dtype=torch.float64)
    m[0, 2], m[3, 1] = 1e-3, 2e-3
    proj = net.connect("exc", "inh", DELTA, connectivity=m)
    assert proj.i.tolist() == [0, 3] and proj.j.tolist() == [2, 1]
    assert proj.values["w"].tolist() == [1e-3, 2e-3]


def test_negative_delay_and_delay_off_the_grid(net):
    with pytest.raises(TidesimError, match=r"delays of exc->inh must be finite and >= 0 s"):
        net.connect("exc", "inh", DELTA, delay=-1e-3)
    net.connect("exc", "inh", DELTA, delay=0.25e-3)
    with pytest.raises(TidesimError, match=r"delay 0.25 ms of exc->inh is not a whole number of steps of "
                                           r"dt = 0.1 ms"):
        net.run(0.01, dt=1e-4)


def test_synapse_naming_a_variable_the_neuron_lacks(net):
    bad = ts.SynapseModel("w : amp", on_pre="g_e_post += w", name="cond")
    with pytest.raises(UnknownIdentifierError, match=r"synapse 'cond' on_pre uses unknown identifier 'g_e_post'"):
        net.connect("exc", "inh", bad)
    with pytest.raises(ModelError, match=r"synaptic variable 'v' has the name of a variable of the post-synaptic"):
        net.connect("exc", "inh", ts.SynapseModel("v : volt", on_pre="v_post += v"))


def test_synapse_units_are_checked_against_the_neuron(net):
    with pytest.raises(TidesimError, match="synapse 'amps' on_pre"):
        net.connect("exc", "inh", ts.SynapseModel("w : amp", on_pre="v_post += w", name="amps"))


def test_spike_source_with_two_spikes_of_one_unit_in_a_step():
    net = ts.Network()
    net.add_spike_source("inp", 2, indices=[1, 1], times=[1.00e-3, 1.04e-3])
    with pytest.raises(TidesimError, match=r"unit 1 has more than one spike in the step at t = 1 ms"):
        net.run(0.005, dt=1e-4)


def test_connection_probability_is_reproducible_by_seed(net):
    a = net.connect("exc", "inh", DELTA, connectivity=0.5, seed=3)
    b = net.connect("exc", "inh", DELTA, connectivity=0.5, seed=3)
    assert torch.equal(a.i, b.i) and torch.equal(a.j, b.j)
    assert 0 < a.n_synapses < 12
    assert np.all(a.i.numpy() < 4) and np.all(a.j.numpy() < 3)


def test_synapse_reading_a_pre_variable_the_neuron_lacks(net):
    bad = ts.SynapseModel("w : volt", on_pre="v_post += w*x_pre/mV", name="readpre")
    with pytest.raises(UnknownIdentifierError, match=r"synapse 'readpre' on_pre uses unknown identifier 'x_pre'"):
        net.connect("exc", "inh", bad)
    post_bad = ts.SynapseModel("w : 1", on_post="w += u_post", name="readpost")
    with pytest.raises(UnknownIdentifierError,
                       match=r"synapse 'readpost' on_post uses unknown identifier 'u_post'"):
        net.connect("exc", "inh", post_bad)


def test_synaptic_equations_out_of_scope_say_why():
    with pytest.raises(ModelError, match=r"'g_syn_post' has flag summed"):
        ts.SynapseModel("g_syn_post = w : 1 (summed)\nw : 1", name="s")
    with pytest.raises(ModelError, match=r"the equation for 'x' uses neuron variable 'v_post'"):
        ts.SynapseModel("dx/dt = (v_post/mV - x)/(10*ms) : 1 (clock-driven)")
    with pytest.raises(UnknownIdentifierError, match=r"the equation for 'x' uses unknown identifier 'tau_x'"):
        ts.SynapseModel("dx/dt = -x/tau_x : 1 (event-driven)")
    with pytest.raises(ts.UnitMismatchError, match=r"the equation for 'x'"):
        ts.SynapseModel("dx/dt = -x : 1 (event-driven)")


def test_plastic_synapses_onto_a_spike_source_may_not_touch_neurons(net):
    net.add_spike_source("src", 2, indices=[0], times=[1e-3])
    with pytest.raises(TidesimError, match=r"'src' is a spike source; synapses onto it cannot change"):
        net.connect("exc", "src", DELTA)


def test_recording_names_a_projection_or_population(net):
    net.connect("exc", "inh", ts.SynapseModel("w : volt", on_pre="v_post += w"), params={"w": 1e-3})
    with pytest.raises(KeyError, match=r"record names 'exc->ihn'; network has populations exc, inh and "
                                       r"projections exc->inh"):
        net.run(0.002, record={"exc->ihn": ["w"]})
    with pytest.raises(KeyError, match=r"projection exc->inh has no synaptic variable 'g'"):
        net.run(0.002, record={"exc->inh": ["g"]})
    with pytest.raises(TidesimError, match=r"already has a population or projection named 'exc->inh'"):
        net.connect("exc", "inh", DELTA, name="exc->inh")
