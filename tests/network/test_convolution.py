"""Convolutional connectivity (ts.connectivity.Convolution): a source firing a binary image once,
through delta synapses onto non-leaky neurons, leaves exactly torch.nn.functional.conv2d of the
image in their voltages, in torch and in Brian2; the gradient reaches the shared kernel."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tidesim as ts
from tidesim.core.errors import ShapeError

# a neuron that only integrates its synaptic jumps (no leak; a threshold it never reaches, since
# the Brian2 network backend monitors every population's spikes)
INTEGRATOR = ts.NeuronModel("dv/dt = 0*volt/second : volt", threshold="v > 1*volt", name="integrator")
DELTA = ts.SynapseModel("w : volt", on_pre="v_post += w", name="delta")
DT = 1e-4


def _image(shape, seed=0):
    return torch.as_tensor(np.random.default_rng(seed).random(shape) < 0.5, dtype=torch.float64)


def _network(image: torch.Tensor, conv: ts.connectivity.Convolution, n_post: int | None = None) -> ts.Network:
    net = ts.Network()
    units = np.nonzero(image.reshape(-1).numpy())[0]
    net.add_spike_source("img", image.numel(), indices=units, times=np.full(len(units), 1e-3))
    net.add_population("out", INTEGRATOR, conv.n_post if n_post is None else n_post)
    net.connect("img", "out", DELTA, connectivity=conv, delay=0.5e-3)
    return net


CASES = [  # (input shape, kernel shape, stride, padding, dilation)
    ((2, 6, 5), (3, 2, 3, 3), 1, 0, 1),
    ((2, 7, 6), (3, 2, 3, 2), 2, 1, 1),
    ((1, 8, 8), (2, 1, 3, 3), (1, 2), (2, 0), 2),
]


@pytest.mark.parametrize("in_shape,k_shape,stride,padding,dilation", CASES)
def test_convolution_equals_conv2d(in_shape, k_shape, stride, padding, dilation):
    image = _image(in_shape)
    kernel = torch.as_tensor(np.random.default_rng(1).normal(0, 1e-3, k_shape))
    conv = ts.connectivity.Convolution(kernel, in_shape, stride=stride, padding=padding, dilation=dilation)
    expected = F.conv2d(image[None], kernel, stride=stride, padding=padding, dilation=dilation)[0]
    assert conv.output_shape == tuple(expected.shape)
    v = _network(image, conv).run(3e-3, dt=DT)["out"]["v"]
    assert torch.all(v[:16] == 0)  # nothing before the spikes arrive (1 ms + 0.5 ms delay)
    assert torch.allclose(v[-1], expected.reshape(-1), rtol=1e-12, atol=1e-18)
    assert float(expected.abs().max()) > 1e-4


@pytest.mark.brian2
def test_brian2_gives_the_same_convolution():
    in_shape, k_shape = (2, 7, 6), (3, 2, 3, 2)
    image = _image(in_shape, seed=4)
    kernel = torch.as_tensor(np.random.default_rng(5).normal(0, 1e-3, k_shape))
    conv = ts.connectivity.conv2d(kernel, in_shape, stride=2, padding=1)
    net = _network(image, conv)
    ref = net.run(3e-3, dt=DT, backend="brian2", target="numpy")["out"]["v"]
    expected = F.conv2d(image[None], kernel, stride=2, padding=1)[0].reshape(-1)
    assert torch.allclose(ref[-1], expected, rtol=1e-12, atol=1e-18)
    assert torch.equal(net.run(3e-3, dt=DT)["out"]["v"], ref)


def test_gradient_reaches_the_kernel():
    in_shape, k_shape = (2, 6, 5), (3, 2, 3, 3)
    image = _image(in_shape, seed=2)
    rng = np.random.default_rng(3)
    kernel = torch.as_tensor(rng.normal(0, 1e-3, k_shape)).requires_grad_(True)
    readout = torch.as_tensor(rng.normal(size=(3, 4, 3)))
    conv = ts.connectivity.Convolution(kernel, in_shape, stride=(1, 2), padding=(0, 1))
    v = _network(image, conv).run(3e-3, dt=DT)["out"]["v"]
    (grad,) = torch.autograd.grad((v[-1] * readout.reshape(-1)).sum(), kernel)
    # the reference: the same objective on conv2d's output, differentiated by torch
    k2 = kernel.detach().clone().requires_grad_(True)
    out = F.conv2d(image[None], k2, stride=(1, 2), padding=(0, 1))[0]
    (expected,) = torch.autograd.grad((out * readout).sum(), k2)
    assert torch.allclose(grad, expected, rtol=1e-12, atol=1e-15)
    assert float(grad.abs().sum()) > 0


def test_synapses_and_weight_sharing():
    kernel = torch.arange(1.0, 5.0, dtype=torch.float64).reshape(1, 1, 2, 2)
    conv = ts.connectivity.Convolution(kernel, (1, 3, 3))
    i, j, w = conv.synapses(9, 4)
    assert len(i) == 16  # 4 outputs x 4 kernel taps, no padding
    # output (0, 0) reads inputs 0, 1, 3, 4 with weights 1, 2, 3, 4
    sel = (j == 0).numpy()
    assert sorted(zip(i[sel].tolist(), w[sel].tolist())) == [(0, 1.0), (1, 2.0), (3, 3.0), (4, 4.0)]
    # padding drops synapses from outside the grid: the corner output has only one in-grid tap
    padded = ts.connectivity.Convolution(kernel, (1, 3, 3), padding=1)
    i, j, w = padded.synapses(9, 16)
    assert padded.output_shape == (1, 4, 4)
    assert i[j == 0].tolist() == [0] and w[j == 0].tolist() == [4.0]


def test_wrong_post_size_names_the_expected_shape():
    kernel = torch.zeros(3, 2, 3, 3, dtype=torch.float64)
    conv = ts.connectivity.Convolution(kernel, (2, 6, 5))
    with pytest.raises(ShapeError, match=r"the convolution of 'img' gives a \(3, 4, 3\) grid \(channels_out, "
                                         r"H_out, W_out\) = 36 neurons, but the post-synaptic population 'out' "
                                         r"has 40"):
        _network(_image((2, 6, 5)), conv, n_post=40)


def test_other_shape_errors():
    with pytest.raises(ShapeError, match=r"the convolution reads a \(2, 6, 5\) grid \(channels_in, H, W\) = 60 "
                                         r"neurons, but the pre-synaptic population 'a' has 50"):
        ts.connectivity.Convolution(torch.zeros(1, 2, 3, 3), (2, 6, 5)).synapses(50, 12, "a", "b")
    with pytest.raises(ShapeError, match=r"reads 2 input channels, but input_shape \(3, 6, 5\) has 3"):
        ts.connectivity.Convolution(torch.zeros(1, 2, 3, 3), (3, 6, 5))
    with pytest.raises(ShapeError, match=r"\[channels_out, channels_in, kh, kw\]; got \[3, 3\]"):
        ts.connectivity.Convolution(torch.zeros(3, 3), (1, 6, 5))
    with pytest.raises(ShapeError, match=r"a 7x3 kernel .* does not fit the 6x5 input"):
        ts.connectivity.Convolution(torch.zeros(1, 1, 7, 3), (1, 6, 5))
