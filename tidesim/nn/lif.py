"""Discrete-time leaky integrate-and-fire layers (snnTorch's ``Leaky`` and ``RLeaky``) as
tidesim neuron models, so the same layer also runs in Brian2.

``v[t] = beta*v[t-1] + x[t] - r[t-1]``, spike where ``v[t] > theta``. Reset by subtraction stores
``r = theta`` for the next step (snnTorch subtracts the threshold undecayed one step later), reset
to zero sets ``v = 0`` (the next step then starts from ``beta*0 + x``), ``"none"`` never resets.
``beta`` is clipped to [0, 1] as in snnTorch.
"""

from __future__ import annotations

from typing import Any

from ..model import NeuronModel
from .neurons import Neurons

__all__ = ["leaky_model", "LIF", "Readout"]

_RESETS = ("subtract", "zero", "none")


def leaky_model(reset: str = "subtract", threshold: bool = True) -> NeuronModel:
    """The discrete LIF as a NeuronModel (Euler steps of size ``dt`` reproduce the map exactly)."""
    if reset not in _RESETS:
        raise ValueError(f"reset must be one of {', '.join(_RESETS)}; got {reset!r}")
    if not threshold:
        return NeuronModel(equations="""dv/dt = (clip(beta, 0, 1)*v + x - v)/dt : 1
                                        x : 1""", parameters={"beta": 0.9}, method="euler", name="leaky_readout")
    eqs = "dv/dt = (clip(beta, 0, 1)*v + x - v)/dt : 1\nx : 1"
    if reset == "subtract":
        eqs = "dv/dt = (clip(beta, 0, 1)*v + x - r - v)/dt : 1\ndr/dt = -r/dt : 1\nx : 1"
    return NeuronModel(equations=eqs, threshold="v > theta",
                       reset={"subtract": "r = theta", "zero": "v = 0", "none": None}[reset],
                       parameters={"beta": 0.9, "theta": 1.0}, method="euler", name=f"leaky_{reset}")


class LIF(Neurons):
    """snnTorch-style leaky integrate-and-fire layer: decay ``beta`` per step, threshold, reset.

    ``learn_beta``/``learn_threshold`` make them trainable (scalars, or one per neuron if given as
    tensors of the layer's shape). Other arguments as :class:`Neurons`.
    """

    def __init__(self, beta: Any = 0.9, threshold: Any = 1.0, reset: str = "subtract", learn_beta: bool = False,
                 learn_threshold: bool = False, surrogate: Any = None, detach_reset: bool = True,
                 stateful: bool = False, dt: float = 1e-3):
        learn = [n for n, flag in (("beta", learn_beta), ("theta", learn_threshold)) if flag]
        super().__init__(leaky_model(reset), input="x", dt=dt, params={"beta": beta, "theta": threshold},
                         learn=learn, surrogate=surrogate, detach_reset=detach_reset, stateful=stateful,
                         record="v")


class Readout(Neurons):
    """A leaky integrator without spikes (``v = beta*v + x``): its membrane is the output."""

    def __init__(self, beta: Any = 0.9, learn_beta: bool = False, stateful: bool = False, dt: float = 1e-3):
        super().__init__(leaky_model(threshold=False), input="x", dt=dt, params={"beta": beta},
                         learn=["beta"] if learn_beta else [], stateful=stateful, record="v")
