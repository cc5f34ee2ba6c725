"""Gradients reach the synaptic weights through the network's event-driven propagation."""

import torch

import tidesim as ts


def _trace_sum(w: torch.Tensor) -> torch.Tensor:
    net = ts.Network()
    net.add_spike_source("inp", 3, indices=[0, 1, 2, 0], times=[1e-3, 2e-3, 3.5e-3, 6e-3])
    net.add_population("post", ts.models.get("lif"), 2)
    net.connect("inp", "post", ts.SynapseModel("w : volt", on_pre="v_post += w"), connectivity="all",
                params={"w": w}, delay=0.5e-3)
    return net.run(0.01, dt=1e-4)["post"]["v"].sum()


def test_weight_gradient_equals_finite_differences():
    w = torch.linspace(0.5e-3, 2e-3, 6, dtype=torch.float64, requires_grad=True)  # sub-threshold
    (grad,) = torch.autograd.grad(_trace_sum(w), w)
    h = 1e-6
    fd = torch.stack([(_trace_sum(w.detach() + h * e) - _trace_sum(w.detach() - h * e)) / (2 * h)
                      for e in torch.eye(6, dtype=torch.float64)])
    assert torch.allclose(grad, fd, rtol=1e-6, atol=0), (grad, fd)
    assert (grad > 0).all()  # every synapse received a spike and raised v afterwards


def _spiking_net(w: torch.Tensor, plastic_scale: torch.Tensor | None = None) -> ts.Network:
    """Inputs drive LIF neurons over threshold through plastic (pair STDP) synapses with delays."""
    import brian2 as b2
    import numpy as np

    from tidesim.models import plasticity

    rng = np.random.default_rng(0)
    times = np.sort(rng.choice(400, 40, replace=False)) * 1e-4
    net = ts.Network()
    net.add_spike_source("inp", 5, indices=rng.integers(0, 5, 40), times=times)
    net.add_population("post", ts.models.get("lif"), 3)
    rule = plasticity.stdp_pair(transmit="v_post += w*w_unit", A_plus=0.05, A_minus=0.05, w_max=20.0,
                                constants={"w_unit": 1 * b2.mV})
    params = {"w": w}
    if plastic_scale is not None:
        params["A_plus"] = plastic_scale
    net.connect("inp", "post", rule, connectivity="all", params=params, delay=0.3e-3)
    return net


def test_checkpointing_gives_the_same_result_and_gradients():
    """Recomputing segments in the backward pass changes memory, not numbers (spikes, plastic
    weights, and the gradients to initial weights and a rule parameter)."""
    w = torch.full((15,), 8.0, dtype=torch.float64, requires_grad=True)
    a_plus = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    out = []
    for checkpoint in (None, 7):
        res = _spiking_net(w, a_plus).run(0.04, record={"inp->post": ["w"]}, checkpoint=checkpoint)
        loss = res["post"]["v"].sum() + res["inp->post"].states["w"].sum()
        out.append((res["post"].spikes, res["inp->post"].states["w"].detach(),
                    torch.autograd.grad(loss, (w, a_plus))))
    (s0, w0, g0), (s1, w1, g1) = out
    assert s0.sum() >= 3
    assert torch.equal(s0, s1) and torch.equal(w0, w1)
    assert float((w0[-1] - 8.0).abs().max()) > 0  # the weights did learn
    for a, b in zip(g0, g1):
        assert torch.allclose(a, b, rtol=1e-12, atol=0) and float(a.abs().sum()) > 0
