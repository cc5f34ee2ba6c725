"""The engine table: (neuron | network) x (eager | compiled | brian2) -> the function that runs it.

Every engine takes a request (:mod:`tidesim.engines.requests`) and returns results, or refuses with
:class:`~tidesim.Unsupported` naming the reason before it does any work. ``"auto"`` tries the
engines of :data:`AUTO` in order and runs the first that accepts; a named engine that refuses
raises its refusal. Every result records the engine that produced it (``result.engine``).

To add an engine: write ``run(request)`` (refusing what it cannot do) and add it to ``ENGINES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

from tidesim.core.errors import Unsupported
from tidesim.core.result import SimulationResult
from tidesim.engines.network_brian2 import run_network_brian2
from tidesim.engines.network_compiled import run_network_compiled
from tidesim.engines.network_eager import run_network
from tidesim.engines.neuron_brian2 import run_brian2
from tidesim.engines.neuron_compiled import run_compiled
from tidesim.engines.neuron_eager import run_eager
from tidesim.engines.requests import NetworkRun, NeuronRun

__all__ = ["Engine", "ENGINES", "AUTO", "run", "names"]


@dataclass(frozen=True)
class Engine:
    """One way to run a kind of simulation: ``run(request)`` returns results or raises Unsupported."""

    kind: str  # "neuron" or "network"
    name: str  # "eager", "compiled" or "brian2"
    run: Callable[[Any], Any]
    description: str


#: Every engine, by (kind, name). Read-only: the table is fixed when tidesim is imported.
ENGINES: Mapping[tuple[str, str], Engine] = MappingProxyType({
    ("neuron", "compiled"): Engine("neuron", "compiled", run_compiled,
                                   "generated C time loop with an adjoint backward (CPU, float32/64, no noise)"),
    ("neuron", "eager"): Engine("neuron", "eager", run_eager, "torch step by step with autograd (any device)"),
    ("neuron", "brian2"): Engine("neuron", "brian2", run_brian2, "Brian2 itself, the reference simulator"),
    ("network", "compiled"): Engine("network", "compiled", run_network_compiled,
                                    "generated C time loop (forward only, static synapses, no noise)"),
    ("network", "eager"): Engine("network", "eager", run_network,
                                 "torch step by step, event-driven synapses, plasticity, gradients"),
    ("network", "brian2"): Engine("network", "brian2", run_network_brian2, "Brian2 itself"),
})

#: What ``engine="auto"`` tries, in order (the reference simulator only when asked for).
AUTO: Mapping[str, tuple[str, ...]] = MappingProxyType({"neuron": ("compiled", "eager"),
                                                         "network": ("compiled", "eager")})


def names(kind: str) -> list[str]:
    """The engine names of ``kind`` (``"neuron"`` or ``"network"``), plus ``"auto"``."""
    return ["auto"] + [name for (k, name) in ENGINES if k == kind]


def run(kind: str, engine: str, request: NeuronRun | NetworkRun) -> Any:
    """Run ``request`` on the ``engine`` of ``kind`` (``"auto"``: the first of :data:`AUTO` that accepts it)
    and record the engine's name on every result."""
    if engine not in names(kind):
        raise ValueError(f"unknown engine {engine!r}; use {', '.join(map(repr, names(kind)))}")
    candidates = AUTO[kind] if engine == "auto" else (engine,)
    reasons = []
    for name in candidates:
        try:
            out = ENGINES[(kind, name)].run(request)
        except Unsupported as exc:
            if engine != "auto":
                raise Unsupported(f"the {name} engine cannot run this {kind} simulation: {exc}") from exc
            reasons.append(f"{name}: {exc}")
            continue
        _mark(out, name)
        return out
    raise Unsupported(f"no engine can run this {kind} simulation ({'; '.join(reasons)})")


def _mark(out: SimulationResult | Mapping[str, SimulationResult], name: str) -> None:
    for result in (out.values() if isinstance(out, Mapping) else (out,)):
        result.engine = name
