"""Differentiable statistics of ``[T, n]`` spike tensors (e.g. ``res.spikes``) for fitting.

They agree with the elephant-based functions on the same spike trains (tests check it) and pass
gradients through the surrogate spikes.
"""

from __future__ import annotations

import math

import torch

__all__ = ["firing_rate", "spike_count", "filtered", "van_rossum_distance"]


def spike_count(spikes: torch.Tensor) -> torch.Tensor:
    """``[n]`` spike counts of ``[T, n]`` spikes."""
    return spikes.sum(0)


def firing_rate(spikes: torch.Tensor, dt: float) -> torch.Tensor:
    """``[n]`` mean rates (Hz) over the whole run (T steps of ``dt`` seconds)."""
    return spikes.sum(0) / (spikes.shape[0] * dt)


def filtered(spikes: torch.Tensor, dt: float, tau: float) -> torch.Tensor:
    """Spikes filtered by a causal exponential of time constant ``tau``: f_k = q f_{k-1} + s_k.

    Vectorised in blocks: inside a block of L steps f = q^j cumsum(q^-i s_i) plus the carried
    value, so the Python loop runs T/L times. L keeps q^-L below e^4 for float32 accuracy.
    """
    q = math.exp(-dt / tau)
    T = spikes.shape[0]
    L = int(max(1, min(256, 4 * tau / dt, T)))
    nb = -(-T // L)
    pad = nb * L - T
    x = torch.cat([spikes, spikes.new_zeros((pad,) + tuple(spikes.shape[1:]))]) if pad else spikes
    x = x.reshape((nb, L) + tuple(spikes.shape[1:]))
    j = torch.arange(L, dtype=spikes.dtype, device=spikes.device).reshape((1, L) + (1,) * (spikes.ndim - 1))
    up, down = q ** (-j), q ** j
    local = down * torch.cumsum(x * up, dim=1)  # [nb, L, ...]
    decay = q * down  # q^(j+1): how much of the previous block's last value reaches step j
    out, carry = [], torch.zeros_like(local[0, 0])
    for b in range(nb):
        block = local[b] + decay[0] * carry
        out.append(block)
        carry = block[-1]
    return torch.cat(out)[:T]


def van_rossum_distance(a: torch.Tensor, b: torch.Tensor, dt: float, tau: float) -> torch.Tensor:
    """``[n]`` van Rossum distances between spike tensors ``a`` and ``b`` (``[T, n]``).

    Exact for spikes on the time grid, in elephant's normalisation (distance 1 between no spike
    and one spike): between samples the filtered difference decays as exp(-t/tau), so its square
    integrates in closed form, and the last sample's tail runs to infinity as in elephant.
    """
    diff = filtered(a - b, dt, tau)
    q2 = math.exp(-2 * dt / tau)
    squared = (1 - q2) * (diff[:-1] ** 2).sum(0) + diff[-1] ** 2
    return torch.sqrt(squared.clamp_min(0) + 1e-30)
