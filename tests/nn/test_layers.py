"""ts.nn layers: the LIF layer against snnTorch's Leaky (same spikes, membranes and gradients), layers
from any NeuronModel against ts.simulate, sequences with checkpointing and truncated BPTT, online
(stateful) use, and errors."""

import pytest
import snntorch as snn
import torch
from snntorch import surrogate as snn_surrogate

import tidesim as ts
import tidesim.nn as tnn
from tidesim.core.errors import ModelError, ShapeError

SURROGATES = {
    "fast_sigmoid": (lambda: ts.surrogate.fast_sigmoid(25.0), lambda: snn_surrogate.fast_sigmoid(slope=25)),
    "atan": (lambda: ts.surrogate.atan(2.0), lambda: snn_surrogate.atan(alpha=2.0)),
}


def _snntorch_run(leaky, x):
    mem = leaky.init_leaky()
    spikes, mems = [], []
    for t in range(x.shape[0]):
        s, mem = leaky(x[t], mem)
        spikes.append(s)
        mems.append(mem)
    return torch.stack(spikes), torch.stack(mems)


@pytest.mark.parametrize("engine", ["auto", "compiled", "eager"])
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
def test_lif_layer_equals_snntorch_leaky(reset, surrogate, engine):
    """float32, as snnTorch runs (its spikes are float32 whatever the input dtype)."""
    torch.manual_seed(0)
    x = torch.randn(40, 8, 16) * 0.6 + 0.3
    weights = torch.randn(40, 8, 16)
    ours, theirs = SURROGATES[surrogate]
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    layer = tnn.LIF(beta=0.8, threshold=1.0, reset=reset, surrogate=ours(), learn_beta=True, engine=engine)
    leaky = snn.Leaky(beta=0.8, threshold=1.0, reset_mechanism=reset, spike_grad=theirs(), learn_beta=True)
    s1, m1, _ = layer.run(x1)
    s2, m2 = _snntorch_run(leaky, x2)
    assert s1.sum() > 100
    assert torch.equal(s1, s2)
    torch.testing.assert_close(m1, m2, rtol=1e-6, atol=1e-6)
    loss1 = (s1 * weights).sum() + (m1 ** 2).sum()
    loss2 = (s2 * weights).sum() + (m2 ** 2).sum()
    g1 = torch.autograd.grad(loss1, (x1, layer.beta))
    g2 = torch.autograd.grad(loss2, (x2, leaky.beta))
    torch.testing.assert_close(g1[0], g2[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1[1], g2[1], rtol=1e-5, atol=1e-4)
    assert float(g1[0].abs().sum()) > 0


def test_learnable_threshold_gets_a_gradient_like_snntorch():
    torch.manual_seed(1)
    x = torch.rand(30, 4, 5)
    layer = tnn.LIF(beta=0.9, threshold=torch.full((5,), 1.2), learn_threshold=True)
    leaky = snn.Leaky(beta=0.9, threshold=1.2, learn_threshold=True,
                      spike_grad=snn_surrogate.fast_sigmoid(slope=25))
    s1, m1, _ = layer.run(x)
    s2, m2 = _snntorch_run(leaky, x)
    assert torch.equal(s1, s2) and s1.sum() > 10
    (g1,) = torch.autograd.grad(s1.sum(), layer.theta)
    (g2,) = torch.autograd.grad(s2.sum(), leaky.threshold)
    assert g1.shape == (5,)  # one threshold per neuron
    torch.testing.assert_close(g1.sum(), g2, rtol=1e-5, atol=1e-6)


def test_layer_from_a_zoo_model_steps_like_ts_simulate():
    """An AdEx layer driven by a current is the AdEx population of ts.simulate (Brian2's schedule),
    which the validation suite checks against Brian2."""
    adex = ts.models.get("adex")
    layer = tnn.Neurons(adex, input="I", dt=1e-4).double()
    T, n = 3000, 4
    current = torch.linspace(0.5e-9, 1.0e-9, n, dtype=torch.float64).expand(T, 1, n).clone()
    spikes, v, _ = layer.run(current)
    ref = ts.simulate(adex, duration=T * 1e-4, dt=1e-4, n=n, inputs={"I": current[:, 0, :]}, engine="eager")
    assert spikes.sum() >= 20
    assert torch.equal(spikes[:, 0, :], ref.spikes)


def test_layer_dynamics_run_in_brian2():
    """The LIF layer is a NeuronModel: Brian2 runs it with the same input and gives the same spikes."""
    torch.manual_seed(2)
    T, n = 200, 6
    x = torch.rand(T, 1, n, dtype=torch.float64) * 0.5
    layer = tnn.LIF(beta=0.85, threshold=1.0, reset="subtract").double()
    spikes, _, _ = layer.run(x)
    ref = ts.simulate(layer.model, duration=T * 1e-3, dt=1e-3, n=n, params={"beta": 0.85, "theta": 1.0},
                      inputs={"x": x[:, 0, :]}, backend="brian2", target="numpy")
    assert spikes.sum() > 20
    assert torch.equal(spikes[:, 0, :], ref.spikes)


def test_checkpointing_and_stateful_steps_give_the_same_numbers():
    torch.manual_seed(3)
    net = tnn.Sequential(torch.nn.Linear(20, 30), tnn.LIF(beta=0.9), torch.nn.Linear(30, 5), tnn.Readout(0.8))
    net = net.double()
    x = torch.rand(50, 3, 20, dtype=torch.float64)
    outs = []
    for checkpoint, engine in ((None, "eager"), (8, "eager"), (None, "compiled"), (8, "compiled"), (None, "auto"),
                               (8, "auto")):
        net[1].engine = net[3].engine = engine
        net.zero_grad()
        _, mem = net(x, checkpoint=checkpoint)
        mem.sum().backward()
        outs.append((mem.detach(), [p.grad.clone() for p in net.parameters()]))
    for other in outs[1:]:
        torch.testing.assert_close(outs[0][0], other[0], rtol=1e-12, atol=1e-12)
        for a, b in zip(outs[0][1], other[1]):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # online: one step per call with carried state equals the sequence
    lif = tnn.LIF(beta=0.9, stateful=True).double()
    seq_spikes, seq_mem, _ = tnn.LIF(beta=0.9).double().run(x[:, :, :10])
    for t in range(50):
        s, m = lif(x[t, :, :10])
        assert torch.equal(s, seq_spikes[t])
        torch.testing.assert_close(m, seq_mem[t], rtol=1e-14, atol=1e-14)


def test_truncated_bptt_cuts_every_state_including_recurrent_spikes():
    torch.manual_seed(4)
    rec = tnn.Recurrent(tnn.LIF(beta=0.9), 8).double()
    torch.nn.init.uniform_(rec.recurrent.weight, 0.2, 0.6)
    x = (torch.rand(20, 2, 8, dtype=torch.float64) * 0.8).requires_grad_(True)
    spikes, mem, _ = rec.run(x, tbptt=5)
    assert spikes.sum() > 5
    (g,) = torch.autograd.grad(mem[9].sum(), x)  # a step in the second segment
    assert float(g[5:10].abs().sum()) > 0
    assert float(g[:5].abs().sum()) == 0  # nothing flows across the cut, not even through recurrent spikes
    spikes_full, mem_full, _ = rec.run(x)
    assert torch.equal(spikes, spikes_full)  # truncation changes gradients, not the forward pass
    (g_full,) = torch.autograd.grad(mem_full[9].sum(), x)
    assert float(g_full[:5].abs().sum()) > 0


def test_train_tbptt_carries_detached_state_and_learns():
    torch.manual_seed(5)
    net = tnn.Sequential(torch.nn.Linear(4, 16), tnn.LIF(beta=0.9), torch.nn.Linear(16, 1), tnn.Readout(0.5))
    x = torch.rand(60, 8, 4)
    target = x.sum(-1, keepdim=True) * 0.5
    opt = torch.optim.Adam(net.parameters(), lr=0.02)

    def loss_fn(spikes, mem, t0, t1):
        return ((mem - target[t0:t1]) ** 2).mean()

    first = tnn.train_tbptt(net, x, loss_fn, opt, k=15)
    for _ in range(30):
        last = tnn.train_tbptt(net, x, loss_fn, opt, k=15)
    assert len(first) == 4
    assert sum(last) < 0.5 * sum(first)


def test_layer_bad_input():
    with pytest.raises(ModelError, match="has no parameter 'J' for the layer input"):
        tnn.Neurons(ts.models.get("adex"), input="J")
    with pytest.raises(ModelError, match="refractoriness"):
        tnn.Neurons(ts.models.get("lif"), input="I")  # the zoo LIF has a refractory period
    with pytest.raises(ModelError, match="no parameter 'tau'"):
        tnn.Neurons(ts.models.get("adex"), input="I", learn=["tau"])
    with pytest.raises(ValueError, match="reset must be one of"):
        tnn.LIF(reset="hard")
    with pytest.raises(ShapeError, match=r"\[T, batch, \.\.\.\] input; got shape \(5, 3\)"):
        tnn.Sequential(tnn.LIF())(torch.zeros(5, 3))
    with pytest.raises(ShapeError, match=r"must be \[T, batch, \.\.\.\]"):
        tnn.LIF().run(torch.zeros(5))


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_fused_lif_backward_equals_autograd_through_the_steps(reset):
    """The hand-derived adjoint (engine="auto") against autograd through eager steps, with the reset
    not detached, per-neuron learnable beta and threshold, a carried initial state, and tbptt."""
    torch.manual_seed(6)
    x = torch.randn(30, 3, 7, dtype=torch.float64) * 0.7 + 0.4
    v0 = torch.rand(3, 7, dtype=torch.float64)
    grads = {}
    for engine in ("auto", "eager"):
        layer = tnn.LIF(beta=torch.linspace(0.6, 0.95, 7), threshold=torch.linspace(0.8, 1.2, 7), reset=reset,
                        learn_beta=True, learn_threshold=True, detach_reset=False, engine=engine).double()
        xi, vi = x.clone().requires_grad_(True), v0.clone().requires_grad_(True)
        state = {"v": vi} if reset == "none" else {"v": vi, "z": torch.zeros_like(vi)}
        for tbptt in (None, 10):
            s, m, _ = layer.run(xi, state, tbptt=tbptt)
            loss = (s * torch.arange(30.0, dtype=torch.float64)[:, None, None]).sum() + (m ** 3).sum()
            grads[engine, tbptt] = (s.detach(), torch.autograd.grad(loss, (xi, vi, layer.beta, layer.theta)))
    for tbptt in (None, 10):
        (s_a, g_a), (s_e, g_e) = grads["auto", tbptt], grads["eager", tbptt]
        assert torch.equal(s_a, s_e) and s_a.sum() > 50
        for a, e in zip(g_a, g_e):
            torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(grads["auto", None][1][0], grads["auto", 10][1][0])  # truncation matters


@pytest.mark.parametrize("name", ["fast_sigmoid", "sigmoid", "atan"])
def test_learnable_surrogate_slope_gets_the_gradient_of_its_primitive(name):
    """The slope's gradient is the gradient of the smooth function whose derivative the surrogate is
    (written out here independently), and the layer trains it."""
    primitives = {
        "fast_sigmoid": lambda x, k: x / (1 + k * x.abs()),
        "sigmoid": lambda x, k: torch.sigmoid(k * x),
        "atan": lambda x, k: torch.atan(torch.pi / 2 * k * x) / torch.pi,
    }
    sur = getattr(ts.surrogate, name)(3.0, learnable=True)
    torch.manual_seed(7)
    x = torch.randn(50, dtype=torch.float64, requires_grad=True)
    w = torch.randn(50, dtype=torch.float64)
    (g_k, g_x) = torch.autograd.grad((sur(x) * w).sum(), (sur.shape_param, x))
    k = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    (ref_k, ref_x) = torch.autograd.grad((primitives[name](x2, k) * w).sum(), (k, x2))
    torch.testing.assert_close(g_k, ref_k)
    torch.testing.assert_close(g_x, ref_x)
    layer = tnn.LIF(beta=0.9, surrogate=sur)
    assert any(p is sur.shape_param for p in layer.parameters())
    spikes, _, _ = layer.run(torch.rand(20, 4, 6) * 0.5)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    spikes.sum().backward()
    before = sur.shape_param.detach().item()
    opt.step()
    assert sur.shape_param.detach().item() != before
