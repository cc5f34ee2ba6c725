"""The LIF layer's time loop as one autograd function: the forward pass keeps only the membranes
(which the surrogate needs) and the spikes, and the backward pass is the hand-derived adjoint of
the map, run backwards in time. No graph of per-step tensors is built, so memory is two tensors of
``[T, batch, ...]`` and the work is a few vectorised torch ops per step (CPU or GPU).

The map (see :mod:`tidesim.nn.lif`): ``v[t] = beta*v[t-1] + x[t] - theta*z[t-1]`` (subtract),
``beta*v[t-1]*(1 - z[t-1]) + x[t]`` (zero) or ``beta*v[t-1] + x[t]`` (none); ``s[t] = v[t] > theta``,
``z[t] = s[t]``. With ``detach_reset`` the reset passes no gradient through ``s``.
"""

from __future__ import annotations

import torch

__all__ = ["lif_sequence"]


class _LIFSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, beta, theta, v0, z0, reset, surrogate, detach_reset, keep_membranes):
        T = x.shape[0]
        V = torch.empty_like(x)
        S = torch.empty_like(x)
        v, z = v0, z0
        for t in range(T):
            if reset == "subtract":
                v = torch.addcmul(x[t], beta, v) - theta * z
            elif reset == "zero":
                v = torch.addcmul(x[t], beta, v * (1 - z))
            else:
                v = torch.addcmul(x[t], beta, v)
            V[t] = v
            S[t] = v > theta
            z = S[t]
        # the spikes are not saved: the backward recomputes them from the membranes (the same
        # comparison), so the only saved sequence is V
        ctx.save_for_backward(V, beta, theta, v0, z0)
        ctx.reset, ctx.surrogate, ctx.detach_reset = reset, surrogate, detach_reset
        ctx.private_membranes = not keep_membranes
        if not keep_membranes:
            ctx.mark_non_differentiable(V)
        return S, V, V[-1].clone()  # the last membrane: the carried state, differentiable either way

    @staticmethod
    def backward(ctx, gS, gV, g_last):
        V, beta, theta, v0, z0 = ctx.saved_tensors
        reset, sur, detach = ctx.reset, ctx.surrogate, ctx.detach_reset
        T = V.shape[0]
        # nobody else sees the membranes: the input gradient takes their place, step by step (step t
        # is written after its last use; earlier steps read only V[t-1] and before)
        gx = V if ctx.private_membranes else torch.empty_like(V)
        gbeta = torch.zeros_like(V[0]) if ctx.needs_input_grad[1] else None
        gtheta = torch.zeros_like(V[0]) if ctx.needs_input_grad[2] else None
        lam = torch.zeros_like(V[0])  # dL/dv[t+1], through the next step's update
        for t in range(T - 1, -1, -1):
            v = V[t]
            s = (v > theta).to(V.dtype)
            pulse = sur.derivative(v - theta)
            # gradient reaching s[t]: the outputs, and the next step's reset unless detached
            g_s = gS[t] if gS is not None else torch.zeros_like(v)
            if not detach and t + 1 < T and reset != "none":
                g_s = g_s - lam * (theta if reset == "subtract" else beta * v)
            dv = g_s * pulse
            if gV is not None and not ctx.private_membranes:
                dv = dv + gV[t]
            if t == T - 1 and g_last is not None:
                dv = dv + g_last
            if t + 1 < T:  # v[t+1] depends on v[t] directly
                dv = dv + lam * (beta * (1 - s) if reset == "zero" else beta)
            v_prev, z_prev = (V[t - 1], (V[t - 1] > theta).to(V.dtype)) if t > 0 else (v0, z0)
            if gbeta is not None:
                gbeta += dv * (v_prev * (1 - z_prev) if reset == "zero" else v_prev)
            if gtheta is not None:
                gtheta -= g_s * pulse
                if reset == "subtract":
                    gtheta -= dv * z_prev
            gx[t] = dv
            lam = dv
        gv0 = lam * (beta * (1 - z0) if reset == "zero" else beta) if ctx.needs_input_grad[3] else None
        gz0 = None
        if ctx.needs_input_grad[4] and not detach and reset != "none":
            gz0 = -lam * (theta if reset == "subtract" else beta * v0)
        return (gx, _reduce(gbeta, beta), _reduce(gtheta, theta), gv0, gz0, None, None, None, None)


def _reduce(g: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """Sum a per-neuron gradient down to the parameter's (broadcast) shape."""
    if g is None:
        return None
    while g.ndim > like.ndim:
        g = g.sum(0)
    for dim, size in enumerate(like.shape):
        if size == 1 and g.shape[dim] != 1:
            g = g.sum(dim, keepdim=True)
    return g


def lif_sequence(x: torch.Tensor, beta: torch.Tensor, theta: torch.Tensor, v0: torch.Tensor, z0: torch.Tensor,
                 reset: str, surrogate, detach_reset: bool = True,
                 membranes: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Spikes and membranes ``[T, ...]`` of the LIF map over input ``x`` ``[T, ...]``, and the
    last membrane ``[...]`` (the state to carry on).

    ``membranes=False``: the caller does not use the membranes (returned as None, no gradient);
    their memory is then reused for the input gradient in the backward pass.
    """
    S, V, last = _LIFSequence.apply(x, beta, theta, v0, z0, reset, surrogate, detach_reset, membranes)
    return S, (V if membranes else None), last
