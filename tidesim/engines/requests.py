"""What an engine is asked to run: checked values in, nothing left to validate.

``ts.simulate`` and ``Network.run`` check every argument once (units, names, shapes, sizes) and pack
the result into one of these requests; an engine of the table (:mod:`tidesim.engines.table`) either
runs it or refuses it with :class:`~tidesim.Unsupported` before doing any work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from tidesim.core.inputs import ResolvedInputs
from tidesim.core.model import NeuronModel
from tidesim.core.network import NetworkDescription
from tidesim.core.result import SimulationResult, SpikeEvents
from tidesim.core.surrogate import Surrogate

__all__ = ["RunConfig", "NeuronRun", "NetworkRun", "neuron_result"]


@dataclass(frozen=True)
class RunConfig:
    """Everything that shapes one run; it travels with the run (no global settings)."""

    n: int
    dt: float
    n_steps: int
    dtype: torch.dtype
    device: torch.device
    surrogate: Surrogate
    record: tuple[str, ...]
    detach_reset: bool = True
    tbptt: int | None = None
    checkpoint: int | None = None
    chunk: int = 1000
    threads: int | None = None


@dataclass
class NeuronRun:
    """``n`` neurons of one model: resolved parameters and inputs, the run's configuration, its random
    generator and initial values; ``seed``/``target`` for the Brian2 engine."""

    model: NeuronModel
    inputs: ResolvedInputs
    config: RunConfig
    generator: torch.Generator
    initial: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[int], None] | None = None
    seed: int | None = None
    target: str = "auto"

    @property
    def needs_grad(self) -> bool:
        """Whether anything the run depends on requires a gradient."""
        res = self.inputs
        return torch.is_grad_enabled() and (
            any(isinstance(p, torch.Tensor) and p.requires_grad for p in res.params.values())
            or any(v.requires_grad for v in res.stacked.values())
            or any(isinstance(v, torch.Tensor) and v.requires_grad for v in self.initial.values()))


@dataclass
class NetworkRun:
    """A network run: the description and the per-population inputs and records (checked by
    :meth:`~tidesim.core.network.NetworkDescription.run_arguments`)."""

    net: NetworkDescription
    duration: float
    dt: float
    inputs: Mapping[str, Mapping[str, Any]]
    record: Mapping[str, Sequence[str] | None]
    dtype: torch.dtype = torch.float64
    surrogate: Surrogate | None = None
    seed: int | None = None
    target: str = "auto"
    checkpoint: int | None = None


def neuron_result(run: NeuronRun, records: dict[str, torch.Tensor], spikes: torch.Tensor | None,
                  final_state: dict[str, torch.Tensor], events: SpikeEvents | None = None) -> SimulationResult:
    """The result of a torch engine's neuron run (the engine's name is set by the table): spikes as a
    ``[T, n]`` raster, or as ``events`` where no gradient needs the raster."""
    cfg, res = run.config, run.inputs
    t = torch.arange(cfg.n_steps, dtype=cfg.dtype, device=cfg.device) * cfg.dt
    used = {**res.params, **{k: torch.stack(v) for k, v in res.series.items()}}
    return SimulationResult(run.model, t, records, spikes, cfg.dt, "torch", params=used, final_state=final_state,
                            spike_events=events, n=cfg.n)
