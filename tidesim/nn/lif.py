"""Discrete-time leaky integrate-and-fire layers (snnTorch's ``Leaky``) as tidesim neuron models,
so the same layer also runs in Brian2 and in tidesim's compiled engine.

``v[t] = beta*v[t-1] + x[t]``, spike where ``v[t] > theta``; as in snnTorch the reset acts on the
next step (a flag ``z`` set by the spike): reset by subtraction removes ``theta`` from the next
step's value (undecayed), reset to zero starts the next step from ``beta*0 + x``, ``"none"``
never resets. So ``v`` itself is never reset in place: the membrane a layer reports is the value
the threshold saw. The layer clips ``beta`` to [0, 1] before the model sees it, as snnTorch does.
"""

from __future__ import annotations

from typing import Any

import torch

from tidesim.core.model import NeuronModel
from tidesim.nn.lif_kernel import lif_sequence
from tidesim.nn.neurons import Neurons

__all__ = ["leaky_model", "LIF", "Readout"]

_RESETS = ("subtract", "zero", "none")


def leaky_model(reset: str = "subtract", threshold: bool = True) -> NeuronModel:
    """The discrete LIF as a NeuronModel (Euler steps of size ``dt`` reproduce the map exactly)."""
    if reset not in _RESETS:
        raise ValueError(f"reset must be one of {', '.join(_RESETS)}; got {reset!r}")
    if not threshold:
        return NeuronModel(equations="""dv/dt = (beta*v + x - v)/dt : 1
                                        x : 1""", parameters={"beta": 0.9}, method="euler", name="leaky_readout")
    update = {"subtract": "beta*v + x - theta*z", "zero": "beta*v*(1 - z) + x",
              "none": "beta*v + x"}[reset]
    # Euler steps of size dt are the map itself: v + dt*(update - v)/dt = update
    eqs = f"dv/dt = ({update} - v)/dt : 1\nx : 1"
    if reset != "none":
        eqs += "\ndz/dt = -z/dt : 1"  # the reset flag lasts one step
    return NeuronModel(equations=eqs, threshold="v > theta", reset=None if reset == "none" else "z = 1",
                       parameters={"beta": 0.9, "theta": 1.0}, method="euler", name=f"leaky_{reset}")


class LIF(Neurons):
    """snnTorch-style leaky integrate-and-fire layer: decay ``beta`` per step, threshold, reset.

    ``learn_beta``/``learn_threshold`` make them trainable (scalars, or one per neuron if given as
    tensors of the layer's shape). Other arguments as :class:`Neurons`.
    """

    def __init__(self, beta: Any = 0.9, threshold: Any = 1.0, reset: str = "subtract", learn_beta: bool = False,
                 learn_threshold: bool = False, surrogate: Any = None, detach_reset: bool = True,
                 stateful: bool = False, dt: float = 1e-3, engine: str = "auto"):
        learn = [n for n, flag in (("beta", learn_beta), ("theta", learn_threshold)) if flag]
        self.reset_kind = reset
        super().__init__(leaky_model(reset), input="x", dt=dt, params={"beta": beta, "theta": threshold},
                         learn=learn, surrogate=surrogate, detach_reset=detach_reset, stateful=stateful,
                         record="v", engine=engine)

    def run(self, x: torch.Tensor, state=None, tbptt: int | None = None, checkpoint: int | None = None,
            membranes: bool = True):
        """As :meth:`Neurons.run`; with ``engine="auto"`` the whole loop is one autograd function
        with a hand-derived backward (memory: membranes and spikes only, so ``checkpoint`` has
        nothing left to save and is ignored). ``membranes=False``: membranes not returned (None),
        their memory reused in the backward pass."""
        if self.engine != "auto" or self.surrogate.learnable or x.ndim < 2:
            return super().run(x, state, tbptt, checkpoint, membranes)
        state = dict(state) if state is not None else self.initial_state(x[0])
        beta, theta = self._param("beta", x.dtype), self._param("theta", x.dtype)
        v, z = state["v"], state.get("z", torch.zeros_like(x[0]))
        spikes, mems = [], []
        seg = int(tbptt or x.shape[0])
        for k0 in range(0, x.shape[0], seg):
            s, m, v = lif_sequence(x[k0:k0 + seg], beta, theta, v, z, self.reset_kind, self.surrogate,
                                   self.detach_reset, membranes)
            spikes.append(s)
            mems.append(m)
            z = s[-1].clone()  # a copy: a view would keep the whole spike tensor alive in the state
            if tbptt:
                v, z = v.detach(), z.detach()
        final = {"v": v} if self.reset_kind == "none" else {"v": v, "z": z}
        if len(spikes) == 1:  # no copy
            return spikes[0], mems[0], final
        return torch.cat(spikes), torch.cat(mems) if membranes else None, final


    def _param(self, name: str, dtype):
        value = getattr(self, name).to(dtype)
        return value.clamp(0, 1) if name == "beta" else value  # snnTorch clamps beta too


class Readout(Neurons):
    """A leaky integrator without spikes (``v = beta*v + x``): its membrane is the output."""

    def __init__(self, beta: Any = 0.9, learn_beta: bool = False, stateful: bool = False, dt: float = 1e-3,
                 engine: str = "auto"):
        super().__init__(leaky_model(threshold=False), input="x", dt=dt, params={"beta": beta},
                         learn=["beta"] if learn_beta else [], stateful=stateful, record="v", engine=engine)
