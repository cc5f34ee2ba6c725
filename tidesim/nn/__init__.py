"""Spiking-network layers on tidesim's neuron models (``ts.nn``): population layers from any
``NeuronModel``, snnTorch-style LIF layers, readouts, recurrence, sequence running with truncated
BPTT and gradient checkpointing.

>>> net = ts.nn.Sequential(torch.nn.Linear(784, 1000), ts.nn.LIF(beta=0.95),
...                        torch.nn.Linear(1000, 10), ts.nn.LIF(beta=0.95))
>>> spikes, mem = net(x)            # x: [T, batch, 784]
"""

from torch.nn import Conv2d, Flatten, Linear

from tidesim.nn.lif import LIF, Readout, leaky_model
from tidesim.nn.neurons import Neurons
from tidesim.nn.sequence import (
    Recurrent,
    Sequential,
    detach,
    train_tbptt,
)

__all__ = ["Neurons", "LIF", "Readout", "leaky_model", "Recurrent", "Sequential", "train_tbptt", "detach",
           "Linear", "Conv2d", "Flatten"]
