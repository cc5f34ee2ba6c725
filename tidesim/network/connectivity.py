"""Structured connectivity for :meth:`tidesim.Network.connect`.

:class:`Convolution` lays the pre-synaptic population out on a grid ``(channels_in, H, W)``
(neuron ``c*H*W + y*W + x``, C order, as ``tensor.reshape(-1)``) and connects it to a post-synaptic
population on the grid ``(channels_out, H_out, W_out)`` the way ``torch.nn.functional.conv2d``
connects an input to its output: cross-correlation, zero padding (synapses from padded positions
do not exist), stride and dilation. Every synapse takes its weight from the shared kernel, so the
gradient of a simulation reaches the kernel.

>>> conv = ts.connectivity.Convolution(kernel, input_shape=(1, 28, 28), stride=2, padding=1)
>>> net.add_population("out", lif, conv.n_post)
>>> net.connect("img", "out", ts.SynapseModel("w : volt", on_pre="v_post += w"), connectivity=conv)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tidesim.core.errors import ShapeError, TidesimError

__all__ = ["Convolution", "conv2d"]


def _pair(value: Any, what: str, minimum: int) -> tuple[int, int]:
    a, b = (value, value) if np.ndim(value) == 0 else tuple(value)
    a, b = int(a), int(b)
    if a < minimum or b < minimum:
        raise TidesimError(f"convolution {what} must be >= {minimum}, got {value!r}")
    return a, b


@dataclass
class Convolution:
    """A 2-D convolutional projection.

    Parameters
    ----------
    kernel
        ``[channels_out, channels_in, kh, kw]``: the weight (SI value of the synapse's first
        variable, e.g. volts for ``w : volt``) from input channel ``ci`` at kernel offset
        ``(ky, kx)`` to output channel ``co``. A tensor (may require grad; the weights are gathered
        from it, so gradients reach it), an array or a Brian2 quantity.
    input_shape
        ``(channels_in, H, W)``: the pre-synaptic grid; the pre population has ``channels_in*H*W``
        neurons.
    stride, padding, dilation
        As in ``torch.nn.functional.conv2d``: ints or ``(y, x)`` pairs (padding is zero padding).
    """

    kernel: Any
    input_shape: tuple[int, int, int]
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1

    def __post_init__(self) -> None:
        k = self.kernel
        if not isinstance(k, torch.Tensor):
            k = torch.as_tensor(np.asarray(k, dtype=float), dtype=torch.float64)
        if k.ndim != 4:
            raise ShapeError(f"a convolution kernel has shape [channels_out, channels_in, kh, kw]; got "
                             f"{list(k.shape)}")
        self.kernel = k
        shape = tuple(int(s) for s in self.input_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ShapeError(f"input_shape is (channels_in, H, W), got {self.input_shape!r}")
        if shape[0] != k.shape[1]:
            raise ShapeError(f"the kernel {list(k.shape)} reads {k.shape[1]} input channels, but input_shape "
                             f"{shape} has {shape[0]}")
        self.input_shape = shape
        self.stride = _pair(self.stride, "stride", 1)
        self.padding = _pair(self.padding, "padding", 0)
        self.dilation = _pair(self.dilation, "dilation", 1)
        if min(self.output_shape) < 1:
            raise ShapeError(f"a {k.shape[2]}x{k.shape[3]} kernel (dilation {self.dilation}) does not fit the "
                             f"{shape[1]}x{shape[2]} input with padding {self.padding}")

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """``(channels_out, H_out, W_out)``, as ``torch.nn.functional.conv2d`` computes it."""
        _, h, w = self.input_shape
        out = []
        for size, k, s, p, d in zip((h, w), self.kernel.shape[2:], self.stride, self.padding, self.dilation):
            out.append((size + 2 * p - d * (int(k) - 1) - 1) // s + 1)
        return int(self.kernel.shape[0]), out[0], out[1]

    @property
    def n_pre(self) -> int:
        """Neurons the pre-synaptic population must have: ``channels_in*H*W``."""
        return int(np.prod(self.input_shape))

    @property
    def n_post(self) -> int:
        """Neurons the post-synaptic population must have: ``channels_out*H_out*W_out``."""
        return int(np.prod(self.output_shape))

    def indices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per synapse: pre index ``i``, post index ``j`` and the flat kernel index of its weight."""
        cin, h, w = self.input_shape
        cout, ho, wo = self.output_shape
        kh, kw = (int(s) for s in self.kernel.shape[2:])
        co, oy, ox, ci, ky, kx = np.meshgrid(np.arange(cout), np.arange(ho), np.arange(wo), np.arange(cin),
                                             np.arange(kh), np.arange(kw), indexing="ij")
        iy = oy * self.stride[0] - self.padding[0] + ky * self.dilation[0]
        ix = ox * self.stride[1] - self.padding[1] + kx * self.dilation[1]
        keep = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)  # zero padding: no synapse
        co, oy, ox, ci, ky, kx, iy, ix = (a[keep] for a in (co, oy, ox, ci, ky, kx, iy, ix))
        i = (ci * h + iy) * w + ix
        j = (co * ho + oy) * wo + ox
        k = ((co * cin + ci) * kh + ky) * kw + kx
        return i, j, k

    def synapses(self, n_pre: int, n_post: int, pre: str = "pre", post: str = "post"
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(i, j, weights)`` for :meth:`tidesim.Network.connect`: source and target index per
        synapse (long tensors) and its weight gathered from the kernel (carries its gradient).

        ``n_pre``/``n_post`` are the populations' sizes, checked against the grids.
        """
        if n_pre != self.n_pre:
            raise ShapeError(f"the convolution reads a {self.input_shape} grid (channels_in, H, W) = {self.n_pre} "
                             f"neurons, but the pre-synaptic population {pre!r} has {n_pre}")
        if n_post != self.n_post:
            raise ShapeError(f"the convolution of {pre!r} gives a {self.output_shape} grid (channels_out, H_out, "
                             f"W_out) = {self.n_post} neurons, but the post-synaptic population {post!r} has "
                             f"{n_post}")
        i, j, k = self.indices()
        weights = self.kernel.reshape(-1)[torch.as_tensor(k, dtype=torch.long)]
        return torch.as_tensor(i, dtype=torch.long), torch.as_tensor(j, dtype=torch.long), weights

    def __repr__(self) -> str:
        return (f"Convolution(kernel {list(self.kernel.shape)}, {self.input_shape} -> {self.output_shape}, "
                f"stride {self.stride}, padding {self.padding}, dilation {self.dilation})")


def conv2d(kernel: Any, input_shape: tuple[int, int, int], stride: Any = 1, padding: Any = 0,
           dilation: Any = 1) -> Convolution:
    """A :class:`Convolution` (the name of ``torch.nn.functional.conv2d``)."""
    return Convolution(kernel, input_shape, stride, padding, dilation)
