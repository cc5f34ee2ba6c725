"""The compiled network engine (the whole time loop in generated C) against the eager torch engine:
the same spikes, traces equal to rounding, in float64; a clear refusal for what it does not run."""

import importlib.util
from pathlib import Path

import brian2 as b2
import numpy as np
import pytest
import torch

import tidesim as ts
from tidesim.core.errors import NumericalInstabilityError, Unsupported
from tidesim.core.inputs import n_steps_for
from tidesim.engines.network_compiled import check_supported
from tidesim.models import synapses as zs


def _sibling(name: str):
    """A test module of tests/network (their networks are reused here, not copied)."""
    path = Path(__file__).resolve().parents[1] / "network" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_compiled_cases_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _brian2_test_network():
    """The deterministic network of test_network_brian2.py (spike generator, LIF, AdEx, delays)."""
    return _sibling("test_network_brian2")._network()


def _assert_same(eager: dict, comp: dict, active: tuple[str, ...]) -> None:
    assert set(eager) == set(comp)
    for name, a in eager.items():
        b = comp[name]
        assert torch.equal(a.spikes, b.spikes), (name, int(a.spikes.sum()), int(b.spikes.sum()))
        if name in active:
            assert int(a.spikes.sum()) >= 5, name  # the population is active
        assert set(a.states) == set(b.states), name
        for var in a.states:
            scale = float(a[var].abs().max()) or 1.0
            err = float((a[var] - b[var]).abs().max())
            assert err <= 1e-12 * scale, (name, var, err, scale)


def test_brian2_test_network_matches_eager():
    net = _brian2_test_network()
    eager = net.run(0.2, 1e-4, dtype=torch.float64, engine="eager")
    comp = net.run(0.2, 1e-4, dtype=torch.float64, engine="compiled")
    _assert_same(eager, comp, ("exc", "adx"))
    for pop in ("exc", "adx"):  # final states too (the reset happened in C)
        for var in net.populations[pop].model.state_names:
            assert torch.allclose(eager[pop].final_state[var], comp[pop].final_state[var], rtol=1e-12, atol=0)


LIF = ts.NeuronModel(
    equations="""dv/dt = (E_L - v + R*(I + I_syn))/tau_m : volt (unless refractory)
                 dI_syn/dt = -I_syn/tau_s : amp
                 I : amp
                 drive = R*I_syn : volt""",
    threshold="v > V_th", reset="v = V_reset", refractory=2 * b2.ms,
    parameters={"E_L": -70 * b2.mV, "R": 100 * b2.Mohm, "tau_m": 10 * b2.ms, "tau_s": 4 * b2.ms,
                "V_th": -55 * b2.mV, "V_reset": -65 * b2.mV, "I": 0 * b2.amp},
    initial={"v": "E_L"}, method="exact", name="lif_input")

COND = ts.NeuronModel(  # refractory while depolarised: a condition, not a time
    equations="""dv/dt = (E_L - v + R*I_syn)/tau_m : volt (unless refractory)
                 dI_syn/dt = -I_syn/tau_s : amp""",
    threshold="v > V_th", reset="v = V_reset", refractory="v > V_reset + 2*mV",
    parameters={"E_L": -70 * b2.mV, "R": 100 * b2.Mohm, "tau_m": 12 * b2.ms, "tau_s": 3 * b2.ms,
                "V_th": -55 * b2.mV, "V_reset": -58 * b2.mV},
    initial={"v": -70 * b2.mV}, method="exact", name="lif_condition")

EXPR = ts.NeuronModel(  # refractory period per neuron: an expression
    equations="""dv/dt = (E_L - v + R*I_syn)/tau_m : volt (unless refractory)
                 dI_syn/dt = -I_syn/tau_s : amp
                 ref_t : second""",
    threshold="v > V_th", reset="v = V_reset", refractory="ref_t",
    parameters={"E_L": -70 * b2.mV, "R": 100 * b2.Mohm, "tau_m": 10 * b2.ms, "tau_s": 3 * b2.ms,
                "V_th": -56 * b2.mV, "V_reset": -66 * b2.mV, "ref_t": 1 * b2.ms},
    initial={"v": -68 * b2.mV}, method="euler", name="lif_ref_expr")


def _feature_network():
    """Every delivery feature at once: Poisson and generator sources, per-synapse delays, several
    statements, '-=', a statement that reads what it writes (two passes), pre-synaptic reads,
    constants, '(unless refractory)' targets under time, condition and expression refractoriness."""
    rng = np.random.default_rng(7)
    net = ts.Network("features")
    net.add_spike_source("noise", 20, rates=60.0)
    times = np.sort(rng.choice(1500, 40, replace=False)) * 1e-4
    net.add_spike_source("gen", 4, indices=rng.integers(0, 4, 40), times=times)
    net.add_population("a", LIF, 10, params={"tau_m": torch.linspace(8e-3, 14e-3, 10, dtype=torch.float64)})
    net.add_population("b", COND, 6)
    net.add_population("c", EXPR, 5, params={"ref_t": torch.tensor([0.0, 0.5e-3, 1e-3, 2e-3, 3.3e-3],
                                                                    dtype=torch.float64)})
    current = ts.SynapseModel("w : amp", on_pre="I_syn_post += w", name="current")
    n_noise = 20 * 10
    net.connect("noise", "a", current, connectivity="all",
                params={"w": torch.as_tensor(rng.uniform(0.01e-9, 0.06e-9, n_noise))},
                delay=rng.integers(0, 5, n_noise) * 1e-4)
    net.connect("gen", "b", ts.SynapseModel("w : volt", on_pre="v_post += w; I_syn -= w/R_post*0.1",
                                            name="two_statements"),
                connectivity="all", params={"w": 6e-3}, delay=0.3e-3)
    jump = ts.SynapseModel("", on_pre="v_post += k_frac*(E_exc - v_post); I_syn_post -= k_frac*I_syn_post",
                           parameters={"k_frac": 0.01, "E_exc": 0 * b2.mV}, name="conductance_jumps")
    net.connect("a", "b", jump, connectivity=0.6, delay=1e-3, seed=2)
    net.connect("b", "c", ts.SynapseModel("g : siemens", on_pre="I_syn_post += g*(v_pre - E_rev)",
                                          parameters={"E_rev": -90 * b2.mV}, name="pre_read"),
                connectivity="all", params={"g": 2e-9})
    net.connect("a", "a", ts.SynapseModel("w : volt", on_pre="v += w", name="recurrent"), connectivity=0.5,
                params={"w": 0.8e-3}, delay=1.5e-3, seed=3)
    net.connect("c", "a", ts.SynapseModel("w : amp", on_pre="I_syn -= w", name="minus"), connectivity="all",
                params={"w": 0.05e-9})
    return net


def test_every_delivery_feature_matches_eager():
    net = _feature_network()
    T = n_steps_for(0.15, 1e-4)
    ramp = torch.linspace(0.0, 0.12e-9, T, dtype=torch.float64)  # an input that varies in time
    kw = dict(inputs={"a": {"I": ramp}}, record={"a": ["v", "I_syn", "drive", "I"], "a->a": ["w"]}, seed=11)
    eager = net.run(0.15, 1e-4, dtype=torch.float64, **kw, engine="eager")
    comp = net.run(0.15, 1e-4, dtype=torch.float64, **kw, engine="compiled")
    _assert_same(eager, comp, ("noise", "gen", "a", "b", "c"))


ZOO = _sibling("test_synapse_zoo")


@pytest.mark.parametrize("kinds", [[k] for k in ZOO.KINDS] + [[zs.exp_conductance("e"), zs.exp_conductance("i")]],
                         ids=[k.kind for k in ZOO.KINDS] + ["exc_and_inh_conductances"])
def test_synapse_zoo_matches_eager(kinds):
    """Every synapse kind of the zoo (synaptic states added to LIF and AdEx, on_pre into them)."""
    net = ZOO._network(kinds)
    _assert_same(net.run(0.08, 1e-4, dtype=torch.float64, engine="eager"),
                 net.run(0.08, 1e-4, dtype=torch.float64, engine="compiled"), ("lif",))


def test_float32_runs_and_stays_close():
    net = _brian2_test_network()
    ref = net.run(0.2, 1e-4, dtype=torch.float64, engine="compiled")
    f32 = net.run(0.2, 1e-4, engine="compiled", dtype=torch.float32)
    assert f32["exc"].spikes.dtype == torch.float32
    for pop in ("exc", "adx"):
        assert abs(int(f32[pop].spikes.sum()) - int(ref[pop].spikes.sum())) <= 2, pop
        assert float((f32[pop]["v"].double() - ref[pop]["v"]).abs().max()) < 2e-3  # a spike a step apart at most


def test_refuses_what_it_does_not_run():
    lif = ts.models.get("lif")
    net = ts.Network()
    net.add_spike_source("inp", 2, indices=[0, 1], times=[1e-3, 2e-3])
    net.add_population("p", lif, 2)
    w = torch.full((4,), 1e-3, dtype=torch.float64, requires_grad=True)
    net.connect("inp", "p", ts.SynapseModel("w : volt", on_pre="v_post += w"), params={"w": w})
    with pytest.raises(Unsupported, match="requires grad"):
        net.run(0.01, 1e-4, engine="compiled", dtype=torch.float32)
    with torch.no_grad():  # no gradient asked for: it runs
        assert net.run(0.01, 1e-4, dtype=torch.float64, engine="compiled")["p"].spikes.shape == (100, 2)

    plastic = ts.Network()
    plastic.add_spike_source("inp", 2, indices=[0], times=[1e-3])
    plastic.add_population("p", lif, 2)
    plastic.connect("inp", "p", ts.SynapseModel("w : volt", on_pre="v_post += w; w = 0.5*w"),
                    params={"w": 1e-3})
    with pytest.raises(Unsupported, match="writes the synaptic variable 'w'"):
        check_supported(plastic)
    with pytest.raises(Unsupported, match="dtype"):
        check_supported(net, torch.float16)
    noisy = ts.Network()
    noisy.add_population("p", ts.NeuronModel("dv/dt = -v/(10*ms) + xi/sqrt(ms) : 1", name="ou"), 3)
    with pytest.raises(Unsupported, match="noise"):
        noisy.run(0.01, 1e-4, engine="compiled", dtype=torch.float32)
    assert issubclass(Unsupported, NotImplementedError)


def test_blow_up_names_population_neuron_and_step():
    net = ts.Network()
    net.add_spike_source("inp", 1, indices=[0], times=[1e-3])
    model = ts.NeuronModel("dv/dt = v/tau : 1", parameters={"tau": 0.1 * b2.ms}, initial={"v": 0.0},
                           method="euler", name="unstable")
    net.add_population("p", model, 3)
    net.connect("inp", "p", ts.SynapseModel("", on_pre="v_post += 1"), connectivity=([0], [2]))
    with pytest.raises(NumericalInstabilityError, match="neuron 2") as info:
        net.run(0.2, 1e-4, dtype=torch.float64, engine="compiled")
    assert "'v'" in str(info.value) and info.value.neuron == 2
