"""ts.nir_io: export to NIR and import back give the same spikes and membranes (in memory and through
nir.write/nir.read), snnTorch's NIR export imports with snnTorch's own spikes (and snnTorch imports ours),
and unsupported layers, nodes and graph shapes fail with errors that name them."""

import warnings

import nir
import numpy as np
import pytest
import torch

import tidesim as ts
import tidesim.nn as tnn
from tidesim.nn.nir import (
    SNNTORCH_DT,
    NIRConversionError,
    NIRSemanticsWarning,
    Scale,
    export_nir,
    import_nir,
)

T, B = 40, 3
pytestmark = pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph is being deprecated:DeprecationWarning")


def _export(net, shape, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NIRSemanticsWarning)
        return export_nir(net, shape, **kw)


def _assert_same(net1, net2, x):
    """Every neuron layer: spikes equal, membranes within 1e-6."""
    with torch.no_grad():
        out1, out2 = net1(x, all_layers=True), net2(x, all_layers=True)
    assert len(out1) == len(out2)
    for (s1, m1), (s2, m2) in zip(out1, out2):
        assert torch.equal(s1, s2)
        torch.testing.assert_close(m1, m2, rtol=0, atol=1e-6)
    return out1


def _neuron_layers(net):
    return [layer for layer in net.layers if isinstance(layer, (tnn.Neurons, tnn.Recurrent))]


LINEAR_CASES = {
    # name: (layers, NIR node types in order)
    "subtract_then_zero_per_neuron": (
        lambda: [tnn.Linear(6, 16), tnn.LIF(beta=0.8, threshold=0.7, reset="subtract"),
                 tnn.Linear(16, 4, bias=False),
                 tnn.LIF(beta=torch.linspace(0.3, 0.95, 4), threshold=torch.tensor([0.5, 1.0, 0.8, 0.3]),
                         reset="zero")],
        ["Affine", "LIF", "Linear", "LIF"]),
    "if_then_no_reset": (
        lambda: [tnn.Linear(6, 16), tnn.LIF(beta=1.0, threshold=1.5, reset="zero"), tnn.Linear(16, 4),
                 tnn.LIF(beta=0.6, threshold=0.5, reset="none")],
        ["Affine", "IF", "Affine", "LI", "Threshold"]),
    "no_memory_then_readout": (
        lambda: [tnn.Linear(6, 16), tnn.LIF(beta=0.0, threshold=0.4, reset="subtract"), tnn.Linear(16, 4),
                 tnn.Readout(beta=0.9)],
        ["Affine", "LIF", "Affine", "LI"]),
    "integrators": (
        lambda: [tnn.Linear(6, 16), tnn.LIF(beta=1.0, threshold=2.0, reset="none"), tnn.Linear(16, 4),
                 tnn.Readout(beta=1.0)],
        ["Affine", "I", "Threshold", "Affine", "I"]),
}


@pytest.mark.parametrize("case", sorted(LINEAR_CASES))
def test_linear_network_round_trip(case):
    torch.manual_seed(0)
    layers, types = LINEAR_CASES[case]
    net = tnn.Sequential(*layers())
    graph = _export(net, 6)
    chain = [k for k in graph.nodes if k not in ("input", "output")]
    assert [type(graph.nodes[k]).__name__ for k in chain] == types
    assert graph.metadata["dt"] == 1e-3 and graph.metadata["exporter"] == "tidesim"
    back = import_nir(graph)
    assert [type(a).__name__ for a in _neuron_layers(back)] == [type(a).__name__ for a in _neuron_layers(net)]
    for a, b in zip(_neuron_layers(net), _neuron_layers(back)):
        assert a.model.name == b.model.name  # the reset mode survives
    x = torch.rand(T, B, 6) * 1.5
    outs = _assert_same(net, back, x)
    assert outs[0][0].sum() > 20  # the first layer spikes: resets are exercised


def test_lif_parameters_in_the_graph_follow_the_documented_mapping():
    dt = 1e-3
    net = tnn.Sequential(tnn.Linear(2, 3), tnn.LIF(beta=0.75, threshold=0.6, reset="subtract"))
    with pytest.warns(NIRSemanticsWarning, match="subtractive reset"):
        graph = export_nir(net, 2)
    lif = graph.nodes["1"]
    np.testing.assert_allclose(lif.tau, dt / 0.25)
    np.testing.assert_allclose(lif.r, 4.0)  # r = tau/dt: unit input gain
    np.testing.assert_allclose(lif.v_leak, 0.0)
    np.testing.assert_allclose(lif.v_reset, 0.0)
    np.testing.assert_allclose(lif.v_threshold, 0.6)
    assert lif.metadata["reset"] == "subtract" and lif.metadata["dt"] == dt
    net_if = tnn.Sequential(tnn.Linear(2, 3), tnn.LIF(beta=1.0, reset="zero"))
    np.testing.assert_allclose(export_nir(net_if, 2).nodes["1"].r, 1 / dt)  # dv/dt = r I: r in 1/s


def test_import_at_another_dt_rediscretises():
    """At half the step the same continuous LIF decays by 1 - dt/tau per step and takes half the input."""
    net = tnn.Sequential(tnn.Linear(2, 3), tnn.LIF(beta=0.8, reset="zero"))
    graph = export_nir(net, 2)
    back = import_nir(graph, dt=5e-4)
    scale, lif = back.layers[1], back.layers[2]
    assert isinstance(scale, Scale)
    torch.testing.assert_close(scale.scale, torch.full((3,), 0.5))
    torch.testing.assert_close(lif.beta, torch.tensor(0.9))
    assert lif.dt == 5e-4


CONV_CASES = {
    "conv_lif_flatten_linear_lif": (
        lambda: [tnn.Conv2d(1, 4, 3, padding=1),
                 tnn.LIF(beta=torch.tensor([0.5, 0.7, 0.9, 0.95]).reshape(4, 1, 1), threshold=0.5,
                         reset="subtract"),
                 tnn.Flatten(), tnn.Linear(4 * 8 * 8, 5), tnn.LIF(beta=0.9, threshold=1.0, reset="zero")],
        ["Conv2d", "LIF", "Flatten", "Affine", "LIF"]),
    "strided_pool_no_reset": (
        lambda: [tnn.Conv2d(1, 3, 3, stride=2, padding=1, bias=False), tnn.LIF(beta=0.7, threshold=0.3,
                                                                             reset="zero"),
                 torch.nn.AvgPool2d(2), tnn.Flatten(), tnn.Linear(3 * 2 * 2, 4),
                 tnn.LIF(beta=0.8, threshold=0.2, reset="none")],
        ["Conv2d", "LIF", "AvgPool2d", "Flatten", "Affine", "LI", "Threshold"]),
}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_network_round_trip(case):
    torch.manual_seed(1)
    layers, types = CONV_CASES[case]
    net = tnn.Sequential(*layers())
    graph = _export(net, (1, 8, 8))
    assert [type(graph.nodes[k]).__name__ for k in graph.nodes if k not in ("input", "output")] == types
    back = import_nir(graph)
    x = torch.rand(T, B, 1, 8, 8) * 2
    outs = _assert_same(net, back, x)
    assert outs[0][0].sum() > 50


def _recurrent_net(reset):
    torch.manual_seed(2)
    net = tnn.Sequential(tnn.Linear(6, 10), tnn.Recurrent(tnn.LIF(beta=0.85, threshold=0.6, reset=reset), 10,
                                                           bias=True),
                         tnn.Linear(10, 3), tnn.LIF(beta=0.9, threshold=0.8))
    with torch.no_grad():
        net.layers[1].recurrent.weight.mul_(3)
    return net


@pytest.mark.parametrize("reset", ["subtract", "none"])
def test_recurrent_layer_round_trips_as_a_subgraph(reset):
    net = _recurrent_net(reset)
    graph = _export(net, 6)
    sub = graph.nodes["1"]
    assert isinstance(sub, nir.NIRGraph)
    assert {type(n).__name__ for n in sub.nodes.values()} >= {"Input", "Output", "Affine"}
    back = import_nir(graph)
    assert isinstance(back.layers[1], tnn.Recurrent)
    x = torch.rand(T, B, 6) * 1.5
    outs = _assert_same(net, back, x)
    assert outs[0][0].sum() > 20


def test_graphs_round_trip_through_nir_files(tmp_path):
    nets = {"conv": (tnn.Sequential(*CONV_CASES["conv_lif_flatten_linear_lif"][0]()), (1, 8, 8)),
            "recurrent": (_recurrent_net("subtract"), (6,)),
            "readout": (tnn.Sequential(*LINEAR_CASES["no_memory_then_readout"][0]()), (6,))}
    for name, (net, shape) in nets.items():
        graph = _export(net, shape, dt=2e-3)
        path = tmp_path / f"{name}.nir"
        nir.write(path, graph)
        read = nir.read(path)
        assert float(read.metadata["dt"]) == 2e-3
        back = import_nir(read)
        assert all(getattr(layer, "layer", layer).dt == 2e-3 for layer in _neuron_layers(back))
        x = torch.rand(T, B, *shape) * 1.5
        _assert_same(net, back, x)
    lif = nir.read(tmp_path / "conv.nir").nodes["1"]
    assert str(lif.metadata["reset"]) == "subtract"


# ---------------------------------------------------------------------------------------- snnTorch
@pytest.fixture
def snn():
    """snnTorch, with nirtorch (its NIR export and import need it): test dependencies, so a missing
    one fails the tests instead of skipping them."""
    import nirtorch  # noqa: F401
    import snntorch

    return snntorch


def _snntorch_run(net, x):
    """An init_hidden snnTorch Sequential over time: spikes and membranes [T, ...] of its last layer."""
    from snntorch import utils

    utils.reset(net)
    with torch.no_grad():
        outs = [net(x[t]) for t in range(x.shape[0])]
    return torch.stack([o[0] for o in outs]), torch.stack([o[1] for o in outs])


def _snntorch_export(net, sample):
    from snntorch.export_nir import export_to_nir

    return export_to_nir(net, sample, ignore_dims=[0])


def _leaky(snn, n, beta, threshold, reset, **kw):
    # per-neuron tensors: snnTorch's exporter writes a scalar beta/threshold as a 0-d array that fails NIR's
    # shape checks
    return snn.Leaky(beta=torch.full(n, beta), threshold=torch.full(n, threshold), reset_mechanism=reset,
                     init_hidden=True, **kw)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_snntorch_export_imports_with_snntorchs_spikes(reset, snn):
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(6, 12), _leaky(snn, (12,), 0.8, 0.5, reset), torch.nn.Linear(12, 4),
                              _leaky(snn, (4,), 0.9, 0.3, reset, output=True))
    graph = _snntorch_export(net, torch.randn(1, 6))
    x = torch.rand(60, 4, 6) * 2
    s_ref, m_ref = _snntorch_run(net, x)
    assert s_ref.sum() > 20
    for dt in (SNNTORCH_DT, "infer"):
        ours = import_nir(graph, dt=dt, reset=reset)
        assert not any(isinstance(layer, Scale) for layer in ours.layers)  # unit gain at snnTorch's dt
        with torch.no_grad():
            s, m = ours(x)
        assert torch.equal(s, s_ref)
        torch.testing.assert_close(m, m_ref, rtol=0, atol=1e-5)  # float32 beta through tau = 1e-4/(1-beta)
    if reset == "subtract":  # snnTorch's graph says "reset to 0": read literally, its default Leaky changes
        with torch.no_grad():
            s, _ = import_nir(graph, dt=SNNTORCH_DT)(x)
        assert not torch.equal(s, s_ref)


def test_snntorch_graph_without_dt_warns_and_a_too_long_step_fails(snn):
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), _leaky(snn, (5,), 0.8, 0.7, "zero", output=True))
    graph = _snntorch_export(net, torch.randn(1, 6))
    with pytest.warns(NIRSemanticsWarning, match="records no time step"), \
            pytest.raises(NIRConversionError, match=r"node '1' \(LIF\).*beta = 1 - dt/tau"):
        import_nir(graph)  # 1e-3 s > tau = 5e-4 s: Euler would decay by -1 per step


def test_snntorch_rleaky_and_conv_networks_import(snn):
    torch.manual_seed(4)
    rleaky = snn.RLeaky(beta=torch.full((5,), 0.8), threshold=torch.full((5,), 0.7), linear_features=5,
                        init_hidden=True, output=True)
    rnet = torch.nn.Sequential(torch.nn.Linear(6, 5), rleaky)
    x = torch.rand(60, 4, 6) * 1.2
    s_ref, m_ref = _snntorch_run(rnet, x)
    ours = import_nir(_snntorch_export(rnet, torch.randn(1, 6)), dt=SNNTORCH_DT, reset="subtract")
    assert isinstance(ours.layers[1], tnn.Recurrent)
    with torch.no_grad():
        s, m = ours(x)
    assert torch.equal(s, s_ref) and s.sum() > 20
    torch.testing.assert_close(m, m_ref, rtol=0, atol=1e-5)

    cnet = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), _leaky(snn, (2, 6, 6), 0.8, 0.5, "zero"),
                               torch.nn.Flatten(), torch.nn.Linear(72, 3),
                               _leaky(snn, (3,), 0.9, 0.5, "zero", output=True))
    x = torch.rand(30, 2, 1, 6, 6) * 2
    s_ref, _ = _snntorch_run(cnet, x)
    ours = import_nir(_snntorch_export(cnet, torch.randn(1, 1, 6, 6)), dt="infer")
    with torch.no_grad():
        s, _ = ours(x)
    assert torch.equal(s, s_ref) and s.sum() > 5


def test_snntorch_imports_our_export(snn):
    """snnTorch's import_from_nir reads LIF at its fixed dt = 1e-4 s with reset to zero: a tidesim network
    with reset='zero' exported at SNNTORCH_DT gives the same spikes there."""
    from snntorch import utils
    from snntorch.import_nir import import_from_nir

    torch.manual_seed(5)
    net = tnn.Sequential(tnn.Linear(6, 8), tnn.LIF(beta=0.8, threshold=0.5, reset="zero"), tnn.Linear(8, 3),
                         tnn.LIF(beta=0.9, threshold=0.3, reset="zero"))
    theirs = import_from_nir(export_nir(net, 6, dt=SNNTORCH_DT))
    x = torch.rand(60, 4, 6) * 2
    with torch.no_grad():
        s, _ = net(x)
        utils.reset(theirs)
        s_theirs = torch.stack([theirs(x[t])[0] for t in range(x.shape[0])])
    assert torch.equal(s, s_theirs) and s.sum() > 20


@pytest.mark.parametrize("reset", ["zero"])
def test_export_for_snntorch_needs_no_recipe(snn, reset):
    """export_nir(net, shape, target="snntorch") with nothing else: snnTorch's importer spikes as tidesim
    does (with default arguments and no target it reads other dynamics: the dt is not its own)."""
    from snntorch import utils
    from snntorch.import_nir import import_from_nir

    torch.manual_seed(5)
    net = tnn.Sequential(tnn.Linear(6, 8), tnn.LIF(beta=0.8, threshold=0.5, reset=reset), tnn.Linear(8, 3),
                         tnn.LIF(beta=0.9, threshold=0.3, reset=reset))
    x = torch.rand(60, 4, 6) * 2

    def theirs_spikes(graph):
        theirs = import_from_nir(graph)
        utils.reset(theirs)
        with torch.no_grad():
            return torch.stack([theirs(x[t])[0] for t in range(x.shape[0])])

    with torch.no_grad():
        s, _ = net(x)
    assert torch.equal(theirs_spikes(export_nir(net, 6, target="snntorch")), s) and s.sum() > 20
    assert not torch.equal(theirs_spikes(export_nir(net, 6)), s)  # the layers' own dt: why the target exists


def test_export_for_snntorch_refuses_what_it_reads_differently():
    subtracting = tnn.Sequential(tnn.Linear(3, 4), tnn.LIF(beta=0.8, reset="subtract"))
    with pytest.raises(NIRConversionError, match=r"layer 1 \(LIF\) resets by 'subtract'.*always resets to zero"):
        export_nir(subtracting, 3, target="snntorch")
    recurrent = tnn.Sequential(tnn.Linear(3, 4), tnn.Recurrent(tnn.LIF(beta=0.8, reset="zero"), 4))
    with pytest.raises(NIRConversionError, match=r"layer 1 \(Recurrent\).*RLeaky"):
        export_nir(recurrent, 3, target="snntorch")
    plain = tnn.Sequential(tnn.Linear(3, 4), tnn.LIF(beta=0.8, reset="zero"))
    with pytest.raises(NIRConversionError, match="steps at 0.0001 s"):
        export_nir(plain, 3, dt=1e-3, target="snntorch")
    with pytest.raises(ValueError, match="target must be None or one of snntorch"):
        export_nir(plain, 3, target="norse")
    assert export_nir(plain, 3, target="snntorch").metadata["dt"] == SNNTORCH_DT


# ---------------------------------------------------------------------------------------- errors
def test_export_names_layers_nir_cannot_express():
    adex = tnn.Sequential(tnn.Linear(3, 4), tnn.Neurons(ts.models.get("adex"), input="I"))
    with pytest.raises(NIRConversionError, match=r"layer 1 \(Neurons\): adex cannot be expressed in NIR"):
        export_nir(adex, 3)
    with pytest.raises(NIRConversionError, match=r"layer 1 \(ReLU\) has no NIR primitive"):
        export_nir(tnn.Sequential(tnn.Linear(3, 4), torch.nn.ReLU(), tnn.Linear(4, 2), tnn.LIF()), 3)
    with pytest.raises(NIRConversionError, match=r"layer 1 \(Readout\): a Readout must be the last layer"):
        export_nir(tnn.Sequential(tnn.Linear(3, 4), tnn.Readout(), tnn.Linear(4, 2), tnn.LIF()), 3)
    with pytest.raises(NIRConversionError, match=r"layer 1 \(LIF\): some neurons have beta = 1"):
        export_nir(tnn.Sequential(tnn.Linear(3, 2), tnn.LIF(beta=torch.tensor([0.5, 1.0]))), 3)
    with pytest.raises(ts.ShapeError, match=r"layer 0 \(Linear\)"):
        export_nir(tnn.Sequential(tnn.Linear(3, 2), tnn.LIF()), 5)


def _lif(n, **kw):
    return nir.LIF(tau=np.full(n, 5e-3), r=np.full(n, 5.0), v_leak=np.zeros(n), v_threshold=np.ones(n), **kw)


def test_import_rejects_branching_graphs_and_unknown_nodes():
    w = np.ones((3, 2))
    branching = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([2])), "a": nir.Affine(weight=w, bias=np.zeros(3)), "l1": _lif(3),
               "l2": _lif(3), "o1": nir.Output(np.array([3])), "o2": nir.Output(np.array([3]))},
        edges=[("input", "a"), ("a", "l1"), ("a", "l2"), ("l1", "o1"), ("l2", "o2")])
    with pytest.raises(NIRConversionError, match=r"node 'a' \(Affine\) branches to 'l1', 'l2'"):
        import_nir(branching, dt=1e-3)
    cuba = nir.NIRGraph.from_list(
        nir.Affine(weight=w, bias=np.zeros(3)),
        nir.CubaLIF(tau_syn=np.full(3, 5e-3), tau_mem=np.full(3, 5e-3), r=np.ones(3), v_leak=np.zeros(3),
                    v_threshold=np.ones(3)))
    with pytest.raises(NIRConversionError, match=r"node 'cubalif' \(CubaLIF\) has no ts.nn counterpart"):
        import_nir(cuba, dt=1e-3)
    leak = nir.NIRGraph.from_list(nir.Affine(weight=w, bias=np.zeros(3)),
                                  nir.LIF(tau=np.full(3, 5e-3), r=np.full(3, 5.0), v_leak=np.full(3, 0.1),
                                          v_threshold=np.ones(3)))
    with pytest.raises(NIRConversionError, match=r"node 'lif' \(LIF\): v_leak != 0"):
        import_nir(leak, dt=1e-3)
    with pytest.raises(ValueError, match="reset must be"):
        import_nir(leak, reset="none")
