"""``ts.Network``: the network description with a ``run`` method that hands it to the engine table."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from tidesim.core.network import NetworkDescription
from tidesim.core.result import SimulationResult
from tidesim.engines.simulate import simulate_network

__all__ = ["Network"]


class Network(NetworkDescription):
    """Populations of neuron models and projections between them (see
    :class:`~tidesim.core.network.NetworkDescription` for building one).

    >>> net = ts.Network()
    >>> net.add_spike_source("inp", 10, indices=[0, 3], times=[5e-3, 8e-3])
    >>> net.add_population("exc", lif, 100)
    >>> net.connect("inp", "exc", ts.SynapseModel("w : volt", on_pre="v_post += w"),
    ...             connectivity=0.1, params={"w": 0.5e-3}, delay=1e-3, seed=0)
    >>> results = net.run(0.1)            # {"exc": SimulationResult, "inp": SimulationResult}
    """

    def run(self, duration: Any, dt: Any = 1e-4, inputs: Mapping[str, Mapping[str, Any]] | None = None,
            record: Mapping[str, Sequence[str]] | None = None, dtype: torch.dtype = torch.float64,
            surrogate: Any = None, seed: int | None = None, backend: str = "torch", target: str = "auto",
            checkpoint: int | None = None, engine: str = "auto") -> dict[str, SimulationResult]:
        """Simulate ``duration`` s; returns ``{population: SimulationResult}`` (sources: spikes only).

        ``inputs``/``record`` are per population, as for :func:`tidesim.simulate`; ``record`` may
        also name a projection (``{"inp->exc": ["w"]}``): its synaptic variables are recorded as
        ``[T, n_synapses]`` in ``results["inp->exc"]``. ``backend="brian2"`` builds the same
        network in Brian2 and runs it there. ``checkpoint``: steps per recomputed segment in the
        backward pass (less memory, one more forward pass). ``engine``: ``"auto"`` runs the whole
        loop in generated C (forward only: no gradients, static synapses, no noise) where it can,
        else steps in torch; ``"compiled"`` insists on C, ``"eager"`` on torch. Each result's
        ``engine`` says which ran it.
        """
        return simulate_network(self, duration, dt, inputs=inputs, record=record, dtype=dtype, surrogate=surrogate,
                                seed=seed, backend=backend, target=target, checkpoint=checkpoint, engine=engine)
