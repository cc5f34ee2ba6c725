"""Ground truth for connectivity inference, simulated by Brian2 (never by tidesim's own engines).

A network of noise-driven leaky integrate-and-fire neurons with known sparse excitatory and
inhibitory connections: the recorded spike trains go to a connectivity method, the known weight
matrix says which of its detections are right. The setting follows the benchmarks of coupling
inference on simulated networks (Pillow et al. 2008 Nature 454:995; English et al. 2017 Neuron
96:505 for the spike-transmission regime): each neuron fires irregularly at a few Hz, driven by
its own Ornstein-Uhlenbeck-like noise, and a presynaptic spike moves the postsynaptic membrane by
a fraction of a millivolt to about a millivolt after a short delay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import brian2 as b2
import numpy as np

from tidesim.datasets.spikes import SpikeData
from tidesim.engines.neuron_brian2 import ieee_arithmetic

__all__ = ["CoupledNetworkTruth", "brian2_coupled_network"]


@dataclass
class CoupledNetworkTruth:
    """A simulated recording and the connections that made it.

    ``weights[i, j]`` is the jump (V) of neuron ``i``'s membrane when neuron ``j`` spikes (row =
    target, column = source; 0 where there is no synapse); ``excitatory[j]`` says whether ``j`` is
    excitatory; ``delay`` (s) is every synapse's transmission delay.
    """

    spikes: SpikeData
    weights: np.ndarray
    excitatory: np.ndarray
    delay: float
    settings: dict = field(default_factory=dict)

    @property
    def connected(self) -> np.ndarray:
        """Boolean ``[n, n]``: True where a synapse exists (the diagonal is always False)."""
        return self.weights != 0


def brian2_coupled_network(n: int = 50, p: float = 0.1, duration: float = 60.0, seed: int = 0,
                           exc_fraction: float = 0.8, w_exc: float = 1.0e-3, g: float = 2.0,
                           delay: float = 1.5e-3, sigma: float = 6e-3, mu: float = 12e-3,
                           dt: float = 0.1e-3) -> CoupledNetworkTruth:
    """Simulate a sparse random network in Brian2 and return its spikes and true weights.

    ``n`` neurons, each pair (i != j) connected with probability ``p``; a fraction ``exc_fraction``
    of the neurons is excitatory. Excitatory weights are log-normal around ``w_exc`` (V; sd half the
    mean), inhibitory ones ``-g`` times as large. Each neuron: ``tau = 20 ms``, rest 0, threshold
    20 mV, reset 10 mV, refractory 2 ms, driven by mean ``mu`` (V) and white noise of standard
    deviation ``sigma`` (V) in the membrane's units (tens of mV: irregular firing at a few Hz).
    Brian2's cython target when it is available (numpy otherwise), without ``-ffast-math``.
    """
    if not 0 < p < 1:
        raise ValueError(f"p = {p}: the connection probability must lie in (0, 1)")
    if n < 2 or duration <= 0:
        raise ValueError(f"need n >= 2 neurons and a positive duration, got n = {n}, duration = {duration} s")
    rng = np.random.default_rng(seed)
    n_exc = int(round(exc_fraction * n))
    excitatory = np.arange(n) < n_exc
    conn = (rng.random((n, n)) < p) & ~np.eye(n, dtype=bool)
    size = w_exc * rng.lognormal(-0.5 * np.log(1.25), np.sqrt(np.log(1.25)), (n, n))  # mean w_exc, sd w_exc/2
    weights = np.where(conn, size * np.where(excitatory, 1.0, -g)[None, :], 0.0)
    with ieee_arithmetic():
        spikes_t, spikes_i = _run(n, weights, duration, delay, sigma, mu, dt, seed)
    trains = [[np.sort(spikes_t[spikes_i == u])] for u in range(n)]
    names = [f"n{u}" for u in range(n)]
    data = SpikeData(trains, 0.0, duration, names, name=f"brian2 network, seed {seed}",
                     annotations={"simulator": f"brian2 {b2.__version__}"})
    settings = dict(n=n, p=p, duration=duration, seed=seed, w_exc=w_exc, g=g, delay=delay, sigma=sigma, mu=mu,
                    dt=dt)
    return CoupledNetworkTruth(data, weights, excitatory, delay, settings)


def _run(n, weights, duration, delay, sigma, mu, dt, seed):
    b2.start_scope()
    b2.seed(seed)
    b2.defaultclock.dt = dt * b2.second
    tau = 20 * b2.ms
    group = b2.NeuronGroup(
        n, "dv/dt = (mu_drive - v)/tau_m + sigma_drive*sqrt(2/tau_m)*xi : volt (unless refractory)",
        threshold="v > 20*mV", reset="v = 10*mV", refractory=2 * b2.ms, method="euler",
        namespace={"mu_drive": mu * b2.volt, "tau_m": tau, "sigma_drive": sigma * b2.volt})
    group.v = np.random.default_rng(seed + 1).uniform(0, 0.02, n) * b2.volt
    mon = b2.SpikeMonitor(group)
    net = b2.Network(group, mon)
    target, source = np.nonzero(weights)
    if target.size:
        syn = b2.Synapses(group, group, "w : volt", on_pre="v_post += w", delay=delay * b2.second)
        syn.connect(i=source, j=target)
        syn.w = weights[target, source] * b2.volt
        net.add(syn)
    net.run(duration * b2.second, namespace={})
    return np.asarray(mon.t / b2.second), np.asarray(mon.i)
