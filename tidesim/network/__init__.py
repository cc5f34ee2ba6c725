"""Networks: ``ts.Network`` (populations, spike sources, projections), connectivity patterns
(``ts.connectivity``), reference networks (``tidesim.network.examples``) and plasticity protocols
(``ts.plasticity``: pairing experiments run event to event)."""

from tidesim.network import connectivity, examples, plasticity
from tidesim.network.network import Network

__all__ = ["Network", "connectivity", "examples", "plasticity"]
