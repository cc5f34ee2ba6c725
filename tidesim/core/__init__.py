"""The core: what a model, a network and a run are, and the one boundary where values come in.

``equations`` (Brian2 parses and unit-checks), ``model`` (:class:`NeuronModel`), ``synapses``
(:class:`SynapseModel`), ``network`` (:class:`NetworkDescription`), ``units`` and ``inputs`` (every
value a user gives is converted and checked here, once), ``result`` (:class:`SimulationResult`),
``surrogate`` (spike surrogate gradients) and ``errors``. Nothing here runs a simulation.
"""

from tidesim.core.errors import TidesimError, Unsupported
from tidesim.core.model import NeuronModel
from tidesim.core.network import NetworkDescription
from tidesim.core.result import SimulationResult
from tidesim.core.synapses import SynapseModel

__all__ = ["NeuronModel", "SynapseModel", "NetworkDescription", "SimulationResult", "TidesimError", "Unsupported"]
