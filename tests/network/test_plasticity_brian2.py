"""Plastic synapses against Brian2 (numpy target, float64): pair and triplet STDP (all-to-all and
nearest-spike, additive and multiplicative) under given spike trains, on a spiking LIF target,
and clock-driven synaptic equations. Weight and trace trajectories agree to float rounding."""

import brian2 as b2
import numpy as np
import pytest
import torch

import tidesim as ts
from tidesim.models import plasticity as rules
from tidesim.network.plasticity import run_pairs

pytestmark = pytest.mark.brian2

RULES = {
    "pair-additive-all": lambda **kw: rules.stdp_pair("additive", "all", **kw),
    "pair-multiplicative-nearest": lambda **kw: rules.stdp_pair("multiplicative", "nearest", **kw),
    "triplet-all": lambda **kw: rules.stdp_triplet("all", **kw),
    "triplet-nearest": lambda **kw: rules.stdp_triplet("nearest", **kw),
}


def _trains(rng, n, count, steps):
    return [np.sort(rng.choice(steps, count, replace=False)) * 1e-4 for _ in range(n)]


def _sources(net, name, trains):
    net.add_spike_source(name, len(trains), indices=np.repeat(np.arange(len(trains)), [len(t) for t in trains]),
                         times=np.concatenate(trains))


@pytest.mark.parametrize("kind", sorted(RULES))
def test_weight_and_trace_trajectories_match_brian2(kind):
    rng = np.random.default_rng(11)
    pre, post = _trains(rng, 5, 20, 2500), _trains(rng, 5, 20, 2500)
    rule = RULES[kind]()
    net = ts.Network()
    _sources(net, "pre", pre)
    _sources(net, "post", post)
    # every pre unit onto every post unit: 25 synapses see 25 different pairs of trains
    net.connect("pre", "post", rule, connectivity="all", params={"w": 0.5}, delay=3e-4)
    record = {"pre->post": None}
    res_t = net.run(0.26, record=record)["pre->post"]
    res_b = net.run(0.26, record=record, backend="brian2", target="numpy")["pre->post"]
    assert set(res_t.states) == set(rule.variables)
    for var in rule.variables:
        a, b = res_t.states[var], res_b.states[var]
        assert a.shape == b.shape == (2600, 25)
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-14, err_msg=f"{kind}: {var}")
    w = res_t.states["w"]
    assert float((w[-1] - 0.5).abs().max()) > 1e-3  # the weights did change
    # the event engine (what the pairing protocols use) ends where the network did
    i, j = np.meshgrid(np.arange(5), np.arange(5), indexing="ij")
    ev = run_pairs(rule, [pre[a] for a in i.ravel()], [post[b] for b in j.ravel()], initial={"w": 0.5},
                   delay=3e-4)
    np.testing.assert_allclose(ev["w"].numpy(), res_b.states["w"][-1].numpy(), rtol=0, atol=1e-14)


def test_stdp_onto_spiking_lif_with_transmission_matches_brian2():
    """The post-synaptic spikes come from the neurons the plastic synapses drive."""
    lif = ts.NeuronModel(
        equations="""dv/dt = (E_L - v + R*I_syn)/tau_m : volt (unless refractory)
                     dI_syn/dt = -I_syn/tau_s : amp""",
        threshold="v > V_th", reset="v = V_reset", refractory=2 * b2.ms,
        parameters={"E_L": -70 * b2.mV, "R": 100 * b2.Mohm, "tau_m": 10 * b2.ms, "tau_s": 5 * b2.ms,
                    "V_th": -55 * b2.mV, "V_reset": -65 * b2.mV},
        initial={"v": -70 * b2.mV}, method="exact", name="lif_syn")
    rng = np.random.default_rng(5)
    net = ts.Network()
    _sources(net, "inp", _trains(rng, 8, 30, 3000))
    net.add_population("out", lif, 3)
    syn = rules.stdp_pair(transmit="I_syn_post += w*w_scale", A_plus=0.02, constants={"w_scale": 1.5 * b2.nA})
    net.connect("inp", "out", syn, connectivity="all", params={"w": torch.as_tensor(rng.uniform(0.3, 0.9, 24))},
                delay=5e-4)
    record = {"out": ["v"], "inp->out": ["w", "x", "y"]}
    res_t = net.run(0.3, record=record)
    res_b = net.run(0.3, record=record, backend="brian2", target="numpy")
    spikes_t, spikes_b = res_t["out"].spikes, res_b["out"].spikes
    assert spikes_b.sum() >= 10
    assert torch.equal(spikes_t, spikes_b)
    np.testing.assert_allclose(res_t["out"].states["v"].numpy(), res_b["out"].states["v"].numpy(), rtol=1e-10,
                               atol=1e-12)
    for var in ("w", "x", "y"):
        np.testing.assert_allclose(res_t["inp->out"].states[var].numpy(), res_b["inp->out"].states[var].numpy(),
                                   rtol=0, atol=1e-13, err_msg=var)


def test_clock_driven_synaptic_equations_match_brian2():
    syn = ts.SynapseModel("""dg/dt = (h - g)/tau_d : 1 (clock-driven)
                             dh/dt = -h/tau_r : 1 (clock-driven)""",
                          on_pre="h += 1", parameters={"tau_d": 8 * b2.ms, "tau_r": 2 * b2.ms})
    net = ts.Network()
    net.add_spike_source("pre", 2, indices=[0, 1, 0], times=[2e-3, 5e-3, 9e-3])
    net.add_spike_source("post", 2)
    net.connect("pre", "post", syn, connectivity="one_to_one", delay=1e-3)
    res_t = net.run(0.03, record={"pre->post": ["g", "h"]})["pre->post"]
    res_b = net.run(0.03, record={"pre->post": ["g", "h"]}, backend="brian2", target="numpy")["pre->post"]
    assert float(res_t.states["g"].max()) > 0.1
    for var in ("g", "h"):
        np.testing.assert_allclose(res_t.states[var].numpy(), res_b.states[var].numpy(), rtol=1e-12, atol=1e-15)


def test_event_driven_variables_change_only_on_the_pathways_that_exist():
    """No on_post: Brian2 makes no post pathway, so post spikes neither advance the trace nor its
    lastupdate; the recorded trace equals Brian2's bit for bit."""
    syn = ts.SynapseModel("dx/dt = -x/tau : 1 (event-driven)", on_pre="x += 1", parameters={"tau": 7 * b2.ms})
    net = ts.Network()
    net.add_spike_source("pre", 1, indices=[0, 0, 0], times=[2e-3, 4.5e-3, 11e-3])
    net.add_spike_source("post", 1, indices=[0, 0], times=[3e-3, 8e-3])
    net.connect("pre", "post", syn, connectivity="one_to_one")
    res_t = net.run(0.015, record={"pre->post": ["x"]})["pre->post"].states["x"]
    res_b = net.run(0.015, record={"pre->post": ["x"]}, backend="brian2", target="numpy")["pre->post"].states["x"]
    assert float(res_t.max()) > 1.0
    assert torch.equal(res_t, res_b)
    ev = run_pairs(syn, [[2e-3, 4.5e-3, 11e-3]], [[3e-3, 8e-3]])
    assert float(ev["x"][0]) == float(res_b[-1, 0])
