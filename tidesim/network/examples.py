"""Example networks, built as :class:`~tidesim.Network` (used by tests and benchmarks).

``coba``: benchmark 1 of Brette et al. (2007), the random network of Vogels & Abbott (2005) with
conductance-based exponential synapses, as in Brian's ``examples/misc/COBA.py`` (R. Brette, 2007) and
Brian2's COBA benchmark: 4000 LIF neurons (3200 excitatory, 800 inhibitory), connection probability
0.02, Euler integration, conductances in units of the leak conductance (10 nS), so that
``we = 6 nS / 10 nS = 0.6`` and ``wi = 67 nS / 10 nS = 6.7``. Brian's example writes the membrane
potential relative to rest (threshold 10 mV, reset 0 mV, Ee = 60 mV, Ei = -20 mV); here it is absolute
(El = Vr = -60 mV, Vt = -50 mV, Ee = 0 mV, Ei = -80 mV): the same dynamics shifted by -60 mV. The
random initial values follow the example (v ~ El - 5 mV + 5 mV N(0, 1), ge ~ 4 + 1.5 N(0, 1),
gi ~ 20 + 12 N(0, 1)), which keep the network active without external drive.

References: Vogels, T. P. & Abbott, L. F. (2005) J Neurosci 25:10786. Brette, R. et al. (2007)
J Comput Neurosci 23:349.
"""

from __future__ import annotations

import numpy as np
import torch
from brian2 import ms, mV

from tidesim.core.model import NeuronModel
from tidesim.core.synapses import SynapseModel
from tidesim.network.network import Network

__all__ = ["coba", "coba_model", "random_pairs", "COBA_PARAMETERS", "COBA_EQUATIONS", "brunel", "brunel_model",
           "BRUNEL_EQUATIONS"]

#: Brette et al. (2007) benchmark 1 (COBA), absolute potentials.
COBA_PARAMETERS = {"taum": 20 * ms, "taue": 5 * ms, "taui": 10 * ms, "Vt": -50 * mV, "Vr": -60 * mV,
                   "El": -60 * mV, "Ee": 0 * mV, "Ei": -80 * mV}


#: The COBA equations in Brian2's syntax (conductances in units of the leak conductance).
COBA_EQUATIONS = """dv/dt = (El - v + ge*(Ee - v) + gi*(Ei - v))/taum : volt (unless refractory)
                    dge/dt = -ge/taue : 1
                    dgi/dt = -gi/taui : 1"""


def coba_model() -> NeuronModel:
    """The COBA neuron: LIF with excitatory and inhibitory conductances ``ge``, ``gi`` (in units of the
    leak conductance) decaying exponentially; refractory 5 ms; Brian's Euler integration."""
    return NeuronModel(
        equations=COBA_EQUATIONS, threshold="v > Vt", reset="v = Vr", refractory=5 * ms,
        parameters=dict(COBA_PARAMETERS),
        initial={"v": "El"}, method="euler", name="coba_lif",
        reference="Brette et al. (2007) J Comput Neurosci 23:349, benchmark 1 (Vogels & Abbott 2005)")


def random_pairs(n_pre: int, n_post: int, p: float, rng: np.random.Generator,
                 rows: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Each (pre, post) pair connected independently with probability ``p`` (Brian2's
    ``connect(p=...)``, self-connections included); drawn in blocks of ``rows`` sources to bound memory.
    Returns source and target indices sorted by source."""
    parts_i, parts_j = [], []
    for start in range(0, n_pre, rows):
        block = rng.random((min(rows, n_pre - start), n_post)) < p
        i, j = np.nonzero(block)
        parts_i.append(i + start)
        parts_j.append(j)
    return np.concatenate(parts_i), np.concatenate(parts_j)


def coba(n_exc: int = 3200, n_inh: int = 800, p: float = 0.02, seed: int = 0, init_seed: int | None = None,
         we: float = 0.6, wi: float = 6.7, weights: str = "constant", requires_grad: bool = False,
         dtype: torch.dtype = torch.float32, delay: float = 0.0) -> Network:
    """The COBA network as two populations ``exc`` and ``inh`` and four projections.

    ``seed`` draws the connectivity, ``init_seed`` the initial values (default: ``seed``).
    ``weights="constant"``: ``on_pre='ge += we'`` with ``we`` a constant of the synapse (Brian2's
    example; no per-synapse values). ``weights="variable"``: a per-synapse variable ``w : 1``
    (``on_pre='ge += w'``), a tensor of ``dtype`` that requires grad if ``requires_grad``
    (``net.projections[k].values["w"]``). ``delay`` in s (0: delivered in the step of the spike).
    """
    if weights not in ("constant", "variable"):
        raise ValueError(f"weights must be 'constant' or 'variable', got {weights!r}")
    model = coba_model()
    net = Network("coba")
    rng_init = np.random.default_rng(seed if init_seed is None else init_seed)
    for name, n in (("exc", n_exc), ("inh", n_inh)):
        initial = {"v": torch.as_tensor(-60e-3 + (rng_init.standard_normal(n) * 5 - 5) * 1e-3),
                   "ge": torch.as_tensor(rng_init.standard_normal(n) * 1.5 + 4),
                   "gi": torch.as_tensor(rng_init.standard_normal(n) * 12 + 20)}
        net.add_population(name, model, n, initial=initial)
    rng = np.random.default_rng(seed)
    sizes = {"exc": n_exc, "inh": n_inh}
    for pre, target, weight in (("exc", "ge", we), ("inh", "gi", wi)):
        for post in ("exc", "inh"):
            i, j = random_pairs(sizes[pre], sizes[post], p, rng)
            if weights == "constant":
                syn = SynapseModel("", on_pre=f"{target} += w_{pre}", parameters={f"w_{pre}": weight},
                                   name=f"coba_{pre}")
                params = {}
            else:
                syn = SynapseModel("w : 1", on_pre=f"{target} += w", name=f"coba_{pre}")
                params = {"w": torch.full((len(i),), weight, dtype=dtype, requires_grad=requires_grad)}
            net.connect(pre, post, syn, connectivity=(i, j), params=params, delay=delay)
    return net


#: Brunel (2000) model A neuron: LIF with delta synapses, potentials relative to rest.
BRUNEL_EQUATIONS = "dv/dt = -v/tau : volt (unless refractory)"


def brunel_model(tau: float = 20e-3, theta: float = 20e-3, v_reset: float = 10e-3,
                 refractory: float = 2e-3) -> NeuronModel:
    """Brunel's (2000) neuron: ``tau dv/dt = -v``, spike at ``theta``, reset to ``v_reset``, refractory
    period; synaptic input arrives as voltage jumps (delta synapses)."""
    return NeuronModel(
        equations=BRUNEL_EQUATIONS, threshold="v > theta", reset="v = v_reset", refractory=refractory * 1e3 * ms,
        parameters={"tau": tau * 1e3 * ms, "theta": theta * 1e3 * mV, "v_reset": v_reset * 1e3 * mV},
        initial={"v": "0*mV"}, method="exact", name="brunel_lif",
        reference="Brunel (2000) J Comput Neurosci 8:183, model A")


def brunel(g: float = 5.0, eta: float = 2.0, n_exc: int = 400, n_inh: int = 100, epsilon: float = 0.1,
           J: float = 0.5e-3, delay: float = 1.5e-3, seed: int = 0, tau: float = 20e-3,
           theta: float = 20e-3) -> Network:
    """Brunel's (2000) sparse random E/I network as populations ``exc``/``inh`` driven by Poisson sources.

    Each neuron receives ``C_E = epsilon n_exc`` excitatory synapses of weight ``J`` (V), ``C_I =
    epsilon n_inh`` inhibitory ones of weight ``-g J`` (fixed in-degree, drawn with ``seed``), all with
    ``delay`` (s), and external Poisson input of rate ``C_E nu_ext`` through weight ``J``, where
    ``nu_ext = eta nu_thr`` and ``nu_thr = theta / (J C_E tau)`` is the rate that brings the mean
    input to threshold. ``g`` (relative inhibition) and ``eta`` (external drive) place the network
    in the phase diagram (synchronous regular for g < 4; asynchronous irregular for g > 4 at
    moderate eta; synchronous irregular, fast or slow, elsewhere).
    """
    c_e, c_i = max(1, int(round(epsilon * n_exc))), max(1, int(round(epsilon * n_inh)))
    nu_thr = theta / (J * c_e * tau)
    model = brunel_model(tau=tau, theta=theta)
    net = Network("brunel")
    rng = np.random.default_rng(seed)
    sizes = {"exc": n_exc, "inh": n_inh}
    for name, n in sizes.items():
        v0 = torch.as_tensor(rng.uniform(0, theta, n))
        net.add_population(name, model, n, initial={"v": v0})
        net.add_spike_source(f"ext_{name}", n, rates=c_e * eta * nu_thr)
    jump = SynapseModel("", on_pre="v_post += w_jump", parameters={"w_jump": J * 1e3 * mV}, name="brunel_ext")
    for name in sizes:
        net.connect(f"ext_{name}", name, jump, connectivity="one_to_one")
    for pre, weight, c in (("exc", J, c_e), ("inh", -g * J, c_i)):
        syn = SynapseModel("", on_pre="v_post += w_jump", parameters={"w_jump": weight * 1e3 * mV},
                           name=f"brunel_{pre}")
        for post, n_post in sizes.items():
            src = np.concatenate([rng.choice(sizes[pre], size=c, replace=False) for _ in range(n_post)])
            tgt = np.repeat(np.arange(n_post), c)
            order = np.argsort(src, kind="stable")
            net.connect(pre, post, syn, connectivity=(src[order], tgt[order]), delay=delay)
    return net
