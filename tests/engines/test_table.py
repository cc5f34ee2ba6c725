"""The engine table: one place decides which engine runs a simulation, and every result says which did."""

import brian2 as b2
import pytest
import torch

import tidesim as ts
from tidesim.engines.table import AUTO, ENGINES

NOISY = ts.NeuronModel("dv/dt = -v/tau + sigma*xi*tau**-0.5 : volt",
                       parameters={"tau": 10 * b2.ms, "sigma": 1 * b2.mV}, method="euler", name="ou")


def test_the_table_holds_three_engines_per_kind():
    kinds, engines = ("neuron", "network"), ("eager", "compiled", "brian2")
    assert sorted(ENGINES) == sorted((k, e) for k in kinds for e in engines)
    assert AUTO["neuron"] == ("compiled", "eager")


def test_every_neuron_result_names_its_engine():
    adex = ts.models.get("adex")
    assert ts.simulate(adex, 0.02, inputs={"I": 0.5e-9}).engine == "compiled"
    assert ts.simulate(adex, 0.02, inputs={"I": 0.5e-9}, engine="eager").engine == "eager"
    assert ts.simulate(NOISY, 0.02, seed=0).engine == "eager"  # auto falls back: noise is drawn by torch
    assert ts.simulate(adex, 0.02, inputs={"I": 0.5e-9}, backend="brian2", target="numpy").engine == "brian2"
    with pytest.raises(ts.Unsupported, match="compiled engine cannot run.*noise"):
        ts.simulate(NOISY, 0.02, engine="compiled")
    with pytest.raises(ValueError, match="unknown engine 'fast'"):
        ts.simulate(adex, 0.02, engine="fast")


def test_every_network_result_names_its_engine():
    lif = ts.models.get("lif")
    net = ts.Network()
    net.add_spike_source("inp", 2, indices=[0, 1], times=[1e-3, 2e-3])
    net.add_population("exc", lif, 3)
    w = torch.full((6,), 5e-3, dtype=torch.float64)
    net.connect("inp", "exc", ts.SynapseModel("w : volt", on_pre="v_post += w"), params={"w": w})
    assert {r.engine for r in net.run(0.01).values()} == {"compiled"}
    w.requires_grad_(True)  # a gradient is asked for: the eager engine runs it
    assert {r.engine for r in net.run(0.01).values()} == {"eager"}
    with pytest.raises(ts.Unsupported, match="requires grad"):
        net.run(0.01, engine="compiled")
