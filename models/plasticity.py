"""Spike-timing-dependent plasticity rules as :class:`~tidesim.SynapseModel`\\ s (Brian2 syntax).

Traces are dimensionless event-driven variables that jump by 1 at a spike (all-to-all
interaction) or are set to 1 (nearest-spike interaction) and decay exponentially; the amplitudes
scale them. The weight ``w`` is dimensionless (a fraction of ``w_max``-scaled efficacy); put the
transmission in ``transmit`` (e.g. ``"g_e_post += w*g_max"``), run first on each pre-synaptic spike.

- Pair rule, additive: Song, Miller & Abbott (2000), Nat Neurosci 3:919; hard bounds [0, w_max].
- Pair rule, multiplicative (soft bounds): van Rossum, Bi & Turrigiano (2000), J Neurosci 20:8812:
  potentiation scales with ``w_max - w``, depression with ``w``.
- Triplet rule: Pfister & Gerstner (2006), J Neurosci 26:9673, eqs. 3-4 (minimal and full models;
  visual-cortex parameters of their Table 4 as defaults, all-to-all).
"""

from __future__ import annotations

from typing import Any

from brian2 import ms
from brian2.units.fundamentalunits import Quantity, get_dimensions

from tidesim.core.synapses import SynapseModel

__all__ = ["stdp_pair", "stdp_triplet", "PAIR_DEFAULTS", "TRIPLET_DEFAULTS"]

#: Default parameters of :func:`stdp_pair`: amplitudes (dimensionless, in units of the weight), trace time
#: constants (s), weight bound ``w_max``.
PAIR_DEFAULTS = {"A_plus": 0.01, "A_minus": 0.0105, "tau_plus": 20 * ms, "tau_minus": 20 * ms, "w_max": 1.0}
#: Pfister & Gerstner (2006) Table 4, visual cortex (Sjöström et al. 2001 data), all-to-all, full model.
TRIPLET_DEFAULTS = {"A2_plus": 5e-10, "A3_plus": 6.2e-3, "A2_minus": 7e-3, "A3_minus": 2.3e-4,
                    "tau_plus": 16.8 * ms, "tau_minus": 33.7 * ms, "tau_x": 101 * ms, "tau_y": 125 * ms,
                    "w_max": 1.0}


def _check(choice: str, allowed: tuple[str, ...], what: str) -> None:
    if choice not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {choice!r}")


def _with_units(params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Plain numbers are SI in the default's unit (``tau_plus=0.02`` is 20 ms)."""

    def convert(k, v):
        plain = not isinstance(v, Quantity) and not hasattr(v, "requires_grad")
        return Quantity(v, dim=get_dimensions(defaults[k])) if isinstance(defaults[k], Quantity) and plain else v

    return {k: convert(k, v) for k, v in params.items()}


def _bump(trace: str, interaction: str) -> str:
    return f"{trace} += 1" if interaction == "all" else f"{trace} = 1"


def stdp_pair(rule: str = "additive", interaction: str = "all", transmit: str | None = None,
              name: str | None = None, constants: dict[str, Any] | None = None, **params: Any) -> SynapseModel:
    """Pair-based STDP: ``x`` (pre trace, ``tau_plus``) potentiates at post spikes by ``A_plus*x``,
    ``y`` (post trace, ``tau_minus``) depresses at pre spikes by ``A_minus*y``.

    ``rule``: ``"additive"`` (hard bounds 0 and ``w_max``) or ``"multiplicative"`` (soft bounds).
    ``interaction``: ``"all"`` (every pair counts) or ``"nearest"`` (nearest spike, traces reset to 1).
    ``params`` override :data:`PAIR_DEFAULTS` (quantities or SI floats); ``constants`` are more
    constants (with units) that ``transmit`` uses, e.g. ``{"g_max": 1*nS}``.
    """
    _check(rule, ("additive", "multiplicative"), "rule")
    _check(interaction, ("all", "nearest"), "interaction")
    unknown = sorted(set(params) - set(PAIR_DEFAULTS))
    if unknown:
        raise ValueError(f"stdp_pair has no parameter {', '.join(map(repr, unknown))}; it has "
                         f"{', '.join(PAIR_DEFAULTS)}")
    if rule == "additive":
        ltd, ltp = "w - A_minus*y", "w + A_plus*x"
    else:
        ltd, ltp = "w - A_minus*y*w", "w + A_plus*x*(w_max - w)"
    on_pre = ([transmit] if transmit else []) + [f"w = clip({ltd}, 0, w_max)", _bump("x", interaction)]
    on_post = [f"w = clip({ltp}, 0, w_max)", _bump("y", interaction)]
    return SynapseModel(
        """w : 1
           dx/dt = -x/tau_plus : 1 (event-driven)
           dy/dt = -y/tau_minus : 1 (event-driven)""",
        on_pre="\n".join(on_pre), on_post="\n".join(on_post),
        parameters={**PAIR_DEFAULTS, **_with_units(params, PAIR_DEFAULTS), **(constants or {})},
        name=name or f"stdp_pair_{rule}_{interaction}")


def stdp_triplet(interaction: str = "all", transmit: str | None = None, name: str | None = None,
                 constants: dict[str, Any] | None = None, **params: Any) -> SynapseModel:
    """Pfister–Gerstner triplet STDP: pre traces ``r1`` (``tau_plus``), ``r2`` (``tau_x``), post
    traces ``o1`` (``tau_minus``), ``o2`` (``tau_y``). A post spike potentiates by
    ``r1*(A2_plus + A3_plus*o2)``, a pre spike depresses by ``o1*(A2_minus + A3_minus*r2)``; the
    triplet terms use the second trace's value just before the spike (as in the paper).
    ``params`` override :data:`TRIPLET_DEFAULTS`; ``constants`` as for :func:`stdp_pair`.
    """
    _check(interaction, ("all", "nearest"), "interaction")
    unknown = sorted(set(params) - set(TRIPLET_DEFAULTS))
    if unknown:
        raise ValueError(f"stdp_triplet has no parameter {', '.join(map(repr, unknown))}; it has "
                         f"{', '.join(TRIPLET_DEFAULTS)}")
    on_pre = ([transmit] if transmit else []) + [
        "w = clip(w - o1*(A2_minus + A3_minus*r2), 0, w_max)", _bump("r1", interaction), _bump("r2", interaction)]
    on_post = ["w = clip(w + r1*(A2_plus + A3_plus*o2), 0, w_max)", _bump("o1", interaction),
               _bump("o2", interaction)]
    return SynapseModel(
        """w : 1
           dr1/dt = -r1/tau_plus : 1 (event-driven)
           dr2/dt = -r2/tau_x : 1 (event-driven)
           do1/dt = -o1/tau_minus : 1 (event-driven)
           do2/dt = -o2/tau_y : 1 (event-driven)""",
        on_pre="\n".join(on_pre), on_post="\n".join(on_post), parameters={**TRIPLET_DEFAULTS,
                                                                  **_with_units(params, TRIPLET_DEFAULTS),
                                                                  **(constants or {})},
        name=name or f"stdp_triplet_{interaction}")
