"""The engines that run models and networks, in one table (``table.ENGINES``): neuron and network x
eager (torch), compiled (generated C) and brian2 (the reference). All torch engines share one step
schedule (``schedule``); ``simulate`` and ``simulate_network`` are the entry points.
"""

from tidesim.engines.simulate import simulate, simulate_network
from tidesim.engines.table import AUTO, ENGINES, Engine

__all__ = ["simulate", "simulate_network", "ENGINES", "AUTO", "Engine"]
