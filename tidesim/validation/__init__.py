"""Cross-validation against Brian2: the same model or network run by tidesim and by Brian2, compared
variable by variable and spike by spike (or in distribution where randomness differs)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from tidesim.core.model import NeuronModel
from tidesim.core.network import NetworkDescription
from tidesim.validation.coupled_network import CoupledNetworkTruth, brian2_coupled_network
from tidesim.validation.network import NetworkCrossValidationReport, PopulationComparison, crossvalidate_network
from tidesim.validation.neuron import (
    CrossValidationReport,
    SpikeComparison,
    VariableComparison,
    compare,
    crossvalidate_neuron,
)

__all__ = ["crossvalidate", "CrossValidationReport", "NetworkCrossValidationReport", "PopulationComparison",
           "VariableComparison", "SpikeComparison", "compare", "brian2_coupled_network", "CoupledNetworkTruth"]


def crossvalidate(
    model: NeuronModel | NetworkDescription,
    duration: Any = 1.0,
    n: int | None = None,
    dt: Any = 1e-4,
    params: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    record: Sequence[str] | None = None,
    initial: Mapping[str, Any] | None = None,
    target: str = "auto",
    dtype: torch.dtype = torch.float64,
    trace_rtol: float = 1e-6,
    spike_tol: float = 1.0,
    stat_rtol: float = 0.1,
    seed: int | None = 0,
) -> CrossValidationReport | NetworkCrossValidationReport:
    """Run ``model`` in torch and in Brian2 with the same arguments and compare them.

    Arguments are those of :func:`tidesim.simulate`. ``trace_rtol``: allowed error before each
    neuron's first spike, relative to the variable's scale (its largest magnitude);
    ``spike_tol``: allowed spike-time difference in time steps; ``stat_rtol``: relative
    tolerance of statistics for models with noise. Returns a :class:`CrossValidationReport`.

    ``model`` may be a :class:`~tidesim.Network`: ``inputs``/``record`` are then per population
    (as for ``Network.run``; ``n``, ``params`` and ``initial`` belong to the populations) and the
    result is a :class:`~tidesim.validation.network.NetworkCrossValidationReport`, one comparison
    per population (spike for spike, or by rate and CV when the network has Poisson sources or noise).
    """
    if isinstance(model, NetworkDescription):
        given = [k for k, v in (("n", n), ("params", params), ("initial", initial)) if v is not None]
        if given:
            raise TypeError(f"crossvalidate(network): {', '.join(given)} belong to the populations "
                            "(Network.add_population), not to crossvalidate")
        return crossvalidate_network(model, duration=duration, dt=dt, inputs=inputs, record=record, target=target,
                                     dtype=dtype, trace_rtol=trace_rtol, spike_tol=spike_tol, stat_rtol=stat_rtol,
                                     seed=seed)
    return crossvalidate_neuron(model, duration=duration, n=n, dt=dt, params=params, inputs=inputs, record=record,
                                initial=initial, target=target, dtype=dtype, trace_rtol=trace_rtol,
                                spike_tol=spike_tol, stat_rtol=stat_rtol, seed=seed)
