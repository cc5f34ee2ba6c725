"""Running layers over time: ``Sequential`` (feed-forward, layer by layer over the whole sequence),
``Recurrent`` (a layer that also feeds its own last spikes back), and truncated-BPTT training."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from tidesim.core.errors import ShapeError
from tidesim.nn.neurons import Neurons

__all__ = ["Sequential", "Recurrent", "train_tbptt"]


class Recurrent(nn.Module):
    """``layer`` with recurrent input ``W s[t-1]`` (``W``: an ``nn.Linear(n, n)``). Its state
    carries the last spikes, so truncated BPTT detaches them too."""

    def __init__(self, layer: Neurons, n: int, bias: bool = False):
        super().__init__()
        self.layer, self.n = layer, int(n)
        self.recurrent = nn.Linear(self.n, self.n, bias=bias)
        self.engine = "eager"  # the recurrent input is a torch layer: step in torch

    def initial_state(self, x: torch.Tensor) -> dict:
        """The layer's initial state for one step's input ``x`` ``[batch, n]``, no spikes yet."""
        return {**self.layer.initial_state(x), "_spikes": torch.zeros_like(x)}

    def step(self, x: torch.Tensor, state: dict):
        """One step: ``(spikes, membrane, new_state)`` from input ``x`` plus recurrent input ``W s[t-1]``."""
        inner = {k: v for k, v in state.items() if k != "_spikes"}
        spikes, mem, new = self.layer.step(x + self.recurrent(state["_spikes"]), inner)
        return spikes, mem, {**new, "_spikes": spikes}

    def run(self, x: torch.Tensor, state=None, tbptt: int | None = None, checkpoint: int | None = None,
            membranes: bool = True):
        """The whole sequence ``x`` ``[T, batch, n]``, as :meth:`Neurons.run <tidesim.nn.Neurons.run>`."""
        return Neurons.run(self, x, state, tbptt, checkpoint)

    _segment = Neurons._segment

    def forward(self, x, state=None):
        """One step from ``state`` (default :meth:`initial_state`): ``(spikes, membrane, new_state)``."""
        state = state if state is not None else self.initial_state(x)
        return self.step(x, state)


class Sequential(nn.Module):
    """Layers applied in order to a sequence ``x`` ``[T, batch, ...]``. Stateless layers
    (``nn.Linear``, ``nn.Conv2d``, ``nn.Flatten``, dropout, ...) run on all steps at once;
    neuron layers (:class:`Neurons`, :class:`Recurrent`) run their time loop. Returns the last
    neuron layer's spikes and membranes ``[T, batch, ...]``; ``all_layers=True`` returns every
    neuron layer's ``(spikes, membranes)`` (for activity regularisation).

    ``state``/``return_state``: carry the neuron layers' states across calls (online training,
    truncated BPTT); ``tbptt``/``checkpoint``: as :meth:`Neurons.run`.
    """

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def __getitem__(self, k: int) -> nn.Module:
        return self.layers[k]

    def __len__(self) -> int:
        return len(self.layers)

    def forward(self, x: torch.Tensor, state: Sequence | None = None, tbptt: int | None = None,
                checkpoint: int | None = None, chunk: int | None = 16, return_state: bool = False,
                all_layers: bool = False):
        """``chunk``: steps the whole stack runs at a time (the state carried across, gradients
        exact): memory holds one chunk's currents instead of the sequence's. ``checkpoint``: the
        same with the chunks recomputed in the backward pass (memory: one chunk plus the states)."""
        if x.ndim < 3:
            raise ShapeError(f"Sequential takes [T, batch, ...] input; got shape {tuple(x.shape)}")
        if not any(isinstance(layer, (Neurons, Recurrent)) for layer in self.layers):
            raise ShapeError("Sequential has no neuron layer")
        T = x.shape[0]
        recompute = bool(checkpoint) and torch.is_grad_enabled()
        k = int(checkpoint or chunk or T)
        if tbptt:  # segments must not straddle a truncation point
            k = math.gcd(k, int(tbptt))
        outs = []
        for t0 in range(0, T, k):
            if recompute:
                out, state = torch_checkpoint(self._stack, x[t0:t0 + k], state, tbptt, all_layers,
                                              use_reentrant=False)
            else:
                out, state = self._stack(x[t0:t0 + k], state, tbptt, all_layers)
            outs.append(out)
        if len(outs) == 1:
            result = outs[0]
        else:
            result = [tuple(torch.cat([o[m][j] for o in outs]) if outs[0][m][j] is not None else None
                            for j in range(2)) for m in range(len(outs[0]))]
        result = result if all_layers else result[-1]
        return (result, state) if return_state else result

    def _stack(self, x: torch.Tensor, state, tbptt, all_layers: bool):
        T, B = x.shape[:2]
        neuron_layers = [m for m, layer in enumerate(self.layers) if isinstance(layer, (Neurons, Recurrent))]
        states, outputs, k = [], [], 0
        h = x
        for m, layer in enumerate(self.layers):
            if isinstance(layer, (Neurons, Recurrent)):
                s0 = state[k] if state is not None else None
                last = m == neuron_layers[-1]
                # hidden membranes: not returned unless asked, their memory reused in the backward
                spikes, mems, final = layer.run(h, s0, tbptt=tbptt, membranes=all_layers or last)
                states.append(final)
                if all_layers or last:
                    outputs.append((spikes, mems))
                h, k = spikes, k + 1
            else:
                y = layer(h.reshape(T * B, *h.shape[2:]))
                h = y.reshape(T, B, *y.shape[1:])
        return outputs, states


def detach(state):
    """A copy of carried states cut from the graph (between truncated-BPTT segments)."""
    if isinstance(state, dict):
        return {k: v.detach() for k, v in state.items()}
    return [detach(s) for s in state]


def train_tbptt(model: Sequential, x: torch.Tensor, loss_fn: Callable, optimizer: torch.optim.Optimizer,
                k: int) -> list[float]:
    """Truncated BPTT over one sequence: segments of ``k`` steps, a backward pass and an optimiser
    step per segment, the states carried forward detached (all of them, recurrent spikes included).
    ``loss_fn(spikes, membranes, t0, t1)`` is the loss of the segment ``[t0, t1)``. Returns the
    segment losses."""
    state, losses = None, []
    for t0 in range(0, x.shape[0], k):
        optimizer.zero_grad()
        (spikes, mems), state = model(x[t0:t0 + k], state=state, return_state=True)
        loss = loss_fn(spikes, mems, t0, min(t0 + k, x.shape[0]))
        loss.backward()
        optimizer.step()
        state = detach(state)
        losses.append(float(loss.detach()))
    return losses
