"""Deterministic small networks in torch and in Brian2 (numpy target, float64): spike generators
driving LIF and AdEx populations through exponential current synapses, with delays, and a
recurrent projection."""

import brian2 as b2
import numpy as np
import pytest
import torch

import tidesim as ts

LIF_SYN = ts.NeuronModel(
    equations="""dv/dt = (E_L - v + R*I_syn)/tau_m : volt (unless refractory)
                 dI_syn/dt = -I_syn/tau_s : amp""",
    threshold="v > V_th", reset="v = V_reset", refractory=2 * b2.ms,
    parameters={"E_L": -70 * b2.mV, "R": 100 * b2.Mohm, "tau_m": 10 * b2.ms, "tau_s": 5 * b2.ms,
                "V_th": -55 * b2.mV, "V_reset": -65 * b2.mV},
    initial={"v": -70 * b2.mV}, method="exact", name="lif_exp_syn")


def _network():
    rng = np.random.default_rng(3)
    net = ts.Network()
    times = np.sort(rng.choice(1800, 60, replace=False)) * 1e-4
    net.add_spike_source("inp", 6, indices=rng.integers(0, 6, 60), times=times)
    net.add_population("exc", LIF_SYN, 8, params={"tau_m": torch.linspace(8e-3, 15e-3, 8, dtype=torch.float64)})
    params = {k: v for k, v in ts.models.module("adex").PARAMETERS.items() if k != "I"}
    adex_syn = ts.NeuronModel(  # the zoo's AdEx with an exponential synaptic current I
        equations="""dv/dt = (gL*(EL - v) + gL*DeltaT*exp((v - VT)/DeltaT) + I - w)/C : volt
                     dw/dt = (a*(v - EL) - w)/tau_w : amp
                     dI/dt = -I/tau_s : amp""",
        threshold="v > VT + 5*DeltaT", reset="v = V_reset; w += b",
        parameters={**params, "tau_s": 3 * b2.ms}, initial={"v": "EL"},
        method="exponential_euler", name="adex_exp_syn")
    net.add_population("adx", adex_syn, 4)
    current = ts.SynapseModel("w : amp", on_pre="I_syn_post += w", name="exp_current")
    i = np.repeat(np.arange(6), 8)
    j = np.tile(np.arange(8), 6)
    w = torch.as_tensor(rng.uniform(0.2e-9, 0.8e-9, len(i)))
    delays = rng.integers(0, 4, len(i)) * 1e-4 * 5  # 0, 0.5, 1, 1.5 ms
    net.connect("inp", "exc", current, connectivity=(i, j), params={"w": w}, delay=delays)
    net.connect("exc", "exc", ts.SynapseModel("w : volt", on_pre="v += w", name="delta"), connectivity=0.4,
                params={"w": 1.5e-3}, delay=1e-3, seed=1)
    net.connect("exc", "adx", ts.SynapseModel("w_syn : amp", on_pre="I += w_syn", name="to_adex"),
                connectivity="all", params={"w_syn": 0.9e-9}, delay=2e-3)
    return net


@pytest.mark.brian2
def test_small_network_matches_brian2_spike_for_spike():
    net = _network()
    ours = net.run(0.2, dt=1e-4)
    ref = net.run(0.2, dt=1e-4, backend="brian2", target="numpy")
    for pop in ("exc", "adx"):
        a, b = ours[pop], ref[pop]
        assert int(a.spikes.sum()) > 5, pop  # the network is active
        for k in range(a.n):
            ta, tb = np.asarray(a.spike_trains[k]), np.asarray(b.spike_trains[k])
            assert len(ta) == len(tb), (pop, k, ta, tb)
            assert np.all(np.abs(ta - tb) <= 1e-4 + 1e-12), (pop, k)
        assert torch.allclose(a["v"], b["v"], atol=1e-9, rtol=0), (pop, float((a["v"] - b["v"]).abs().max()))
