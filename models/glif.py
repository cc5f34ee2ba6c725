"""Generalized leaky integrate-and-fire models of the Allen Institute, levels 1 to 5.

Reference: Teeter C. et al. (2018), "Generalized leaky integrate-and-fire models classify multiple neuron
types", Nat. Commun. 9:709. ``C dv/dt = -(v - E_L)/R + I + I_asc`` (``I_asc``: after-spike currents);
a spike when ``v > theta_inf + theta_s + theta_v``; refractory for ``t_ref``.

- level 1, LIF: ``v`` reset to ``V_reset``.
- level 2, LIF-R: reset rules: ``v <- E_L + f_v (v - E_L) + delta_V``; a spike-induced threshold
  component ``theta_s`` jumps by ``delta_theta_s`` and decays at rate ``b_s``.
- level 3, LIF-ASC: two after-spike currents jump by ``A_1``, ``A_2`` and decay at rates ``k_1``,
  ``k_2`` (their sum is added to the input; negative amplitudes adapt).
- level 4, LIF-R-ASC: both.
- level 5, LIF-R-ASC-A: and a voltage-dependent threshold component,
  ``d theta_v/dt = a_v (v - E_L) - b_v theta_v``.

Teeter et al. report that GLIF5 explains 77.6% of the spike-time PSTH variance (10 ms bins) on held-out
noise stimuli, over 253 mouse V1 cells. Defaults here are of the order of their Table 1 values for a
typical excitatory cell, not a fit.
"""

from brian2 import Gohm, Hz, ms, mV, nA, pA, pF

from tidesim.core.model import NeuronModel

NAME = "glif"
REFERENCE = "Teeter et al. (2018), Nat. Commun. 9:709"
OPTIONS = {"level": 5}
#: Variants by name (``ts.models.get("glif3")``).
VARIANTS = {f"glif{k}": {"level": k} for k in range(1, 6)}
PARAMETERS = {
    "C": 60 * pF,  # membrane capacitance
    "R": 0.2 * Gohm,  # membrane resistance
    "EL": -70 * mV,  # resting potential
    "theta_inf": -50 * mV,  # threshold at rest
    "V_reset": -70 * mV,  # reset (levels 1 and 3)
    "t_ref": 3 * ms,  # refractory period
    "f_v": 0.3,  # reset rule: fraction of the distance from rest kept (levels 2, 4, 5)
    "delta_V": 2 * mV,  # reset rule: offset
    "delta_theta_s": 3 * mV,  # spike-induced threshold jump
    "b_s": 100 * Hz,  # its decay rate
    "A_1": -50 * pA,  # after-spike currents (levels 3-5)
    "A_2": -10 * pA,
    "k_1": 1 / (30 * ms),
    "k_2": 1 / (300 * ms),
    "a_v": 5 * Hz,  # voltage-dependent threshold (level 5)
    "b_v": 50 * Hz,
    "I": 0 * nA,  # injected current
}
_USED = {1: ("C", "R", "EL", "theta_inf", "V_reset", "t_ref", "I"),
         2: ("C", "R", "EL", "theta_inf", "t_ref", "f_v", "delta_V", "delta_theta_s", "b_s", "I"),
         3: ("C", "R", "EL", "theta_inf", "V_reset", "t_ref", "A_1", "A_2", "k_1", "k_2", "I"),
         4: ("C", "R", "EL", "theta_inf", "t_ref", "f_v", "delta_V", "delta_theta_s", "b_s", "A_1", "A_2", "k_1",
             "k_2", "I")}
_USED[5] = _USED[4] + ("a_v", "b_v")
VALIDATION = {"input": "I", "amplitudes": (0.15e-9, 0.25e-9, 0.4e-9), "dt": 1e-4}
FIT_BOUNDS = {
    "C": (10 * pF, 500 * pF),
    "R": (0.02 * Gohm, 2 * Gohm),
    "EL": (-90 * mV, -45 * mV),
    "theta_inf": (-70 * mV, -20 * mV),
    "V_reset": (-90 * mV, -30 * mV),
    "f_v": (0.0, 1.0),
    "delta_V": (-20 * mV, 20 * mV),
    "delta_theta_s": (-5 * mV, 30 * mV),
    "A_1": (-1 * nA, 1 * nA),
    "A_2": (-1 * nA, 1 * nA),
}


def build(level: int = 5, **overrides) -> NeuronModel:
    """GLIF ``level`` (1-5, Teeter et al. 2018); keyword arguments override default parameters."""
    if level not in _USED:
        raise ValueError(f"GLIF level must be 1, 2, 3, 4 or 5, got {level!r}")
    reset_rules, asc, vthr = level in (2, 4, 5), level >= 3, level == 5
    eqs = ["dv/dt = ((EL - v)/R + I" + (" + I_1 + I_2" if asc else "") + ")/C : volt (unless refractory)"]
    threshold_terms = ["theta_inf"]
    reset = []
    if reset_rules:
        eqs.append("dtheta_s/dt = -b_s*theta_s : volt")
        threshold_terms.append("theta_s")
        reset += ["v = EL + f_v*(v - EL) + delta_V", "theta_s += delta_theta_s"]
    else:
        reset.append("v = V_reset")
    if asc:
        eqs += ["dI_1/dt = -k_1*I_1 : amp", "dI_2/dt = -k_2*I_2 : amp"]
        reset += ["I_1 += A_1", "I_2 += A_2"]
    if vthr:
        eqs.append("dtheta_v/dt = a_v*(v - EL) - b_v*theta_v : volt")
        threshold_terms.append("theta_v")
    eqs += ["I : amp"]
    params = {k: v for k, v in {**PARAMETERS, **overrides}.items() if k in _USED[level]}
    unused = sorted(set(overrides) - set(_USED[level]))
    if unused:
        raise ValueError(f"GLIF level {level} has no parameter {', '.join(map(repr, unused))}")
    return NeuronModel(
        equations="\n".join(eqs),
        threshold="v > " + " + ".join(threshold_terms),
        reset="; ".join(reset),
        refractory="t_ref",
        parameters=params,
        initial={"v": "EL"},
        method="exponential_euler",
        name=f"{NAME}{level}",
        reference=REFERENCE,
    )
