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
