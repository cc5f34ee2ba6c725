"""Adaptive exponential integrate-and-fire neuron (AdEx).

Reference: Brette R. & Gerstner W. (2005), "Adaptive exponential integrate-and-fire model as an
effective description of neuronal activity", J. Neurophysiol. 94:3637-3642. Default parameters
are the paper's (Table 1, fitted to a detailed pyramidal-cell model): C = 281 pF, g_L = 30 nS,
E_L = -70.6 mV, V_T = -50.4 mV, Delta_T = 2 mV, tau_w = 144 ms, a = 4 nS, b = 0.0805 nA.
Spikes are cut at ``V_T + 5 Delta_T`` and reset to ``V_reset = E_L``, as in Brian2's example.

``adaptive_threshold=True`` makes ``VT`` a state that jumps by ``delta_VT`` at each spike and relaxes to
``VT_rest`` with ``tau_VT`` (a moving threshold, as cortical cells show: Platkiewicz & Brette 2010, PLoS
Comput. Biol. 6:e1000850; Mensi et al. 2012); the spike cut-off moves with it.
"""

from brian2 import ms, mV, nA, nS, pA, pF

from tidesim.core.model import NeuronModel

NAME = "adex"
REFERENCE = "Brette & Gerstner (2005), J. Neurophysiol. 94:3637"
PARAMETERS = {
    "C": 281 * pF,  # membrane capacitance
    "gL": 30 * nS,  # leak conductance
    "EL": -70.6 * mV,  # leak reversal
    "VT": -50.4 * mV,  # threshold slope factor position
    "DeltaT": 2 * mV,  # slope factor
    "tau_w": 144 * ms,  # adaptation time constant
    "a": 4 * nS,  # subthreshold adaptation
    "b": 0.0805 * nA,  # spike-triggered adaptation
    "V_reset": -70.6 * mV,  # reset potential
    "I": 0 * nA,  # injected current
}
#: build() options (``ts.models.get("adex", adaptive_threshold=True)``).
OPTIONS = {"adaptive_threshold": False}
#: Variants by name (``ts.models.get("adex_threshold")``).
VARIANTS = {"adex_threshold": {"adaptive_threshold": True}}
#: The adaptive-threshold variant's own parameters (``VT`` is then a state starting at ``VT_rest``).
THRESHOLD_PARAMETERS = {
    "VT_rest": -50.4 * mV,  # threshold at rest
    "delta_VT": 2 * mV,  # threshold jump per spike
    "tau_VT": 50 * ms,  # its relaxation time
}
VALIDATION = {"input": "I", "amplitudes": (0.8e-9, 1.0e-9, 1.4e-9), "dt": 1e-4}
#: Search ranges for fitting whole-cell current-clamp recordings of cortical neurons (what
#: ``tidesim fit`` uses for a parameter named without bounds).
FIT_BOUNDS = {
    "C": (20 * pF, 500 * pF),
    "gL": (1 * nS, 50 * nS),
    "EL": (-90 * mV, -50 * mV),
    "VT": (-65 * mV, -30 * mV),
    "DeltaT": (0.5 * mV, 8 * mV),
    "a": (-5 * nS, 20 * nS),
    "b": (0 * pA, 400 * pA),
    "tau_w": (5 * ms, 800 * ms),
    "V_reset": (-85 * mV, -35 * mV),
}
#: Search ranges of the adaptive-threshold variant's own parameters.
THRESHOLD_FIT_BOUNDS = {
    "VT_rest": (-65 * mV, -30 * mV),
    "delta_VT": (0 * mV, 15 * mV),
    "tau_VT": (2 * ms, 500 * ms),
}


def build(adaptive_threshold: bool = False, **overrides) -> NeuronModel:
    """The AdEx model (with a moving threshold when ``adaptive_threshold``); keyword arguments override
    default parameters."""
    if not adaptive_threshold:
        params = {**PARAMETERS, **overrides}
        extra = sorted(set(params) - set(PARAMETERS))
        if extra:
            raise ValueError(f"{', '.join(extra)}: parameters of the adaptive-threshold AdEx "
                             "(ts.models.get('adex', adaptive_threshold=True))")
        eqs, threshold, reset, initial = "", "v > VT + 5*DeltaT", "v = V_reset; w += b", {"v": "EL", "w": 0.0}
    else:
        params = {k: v for k, v in {**PARAMETERS, **THRESHOLD_PARAMETERS, **overrides}.items() if k != "VT"}
        if "VT" in overrides:
            raise ValueError("with adaptive_threshold, VT is a state: give its resting value as VT_rest")
        eqs = "\ndVT/dt = (VT_rest - VT)/tau_VT : volt"
        threshold, reset = "v > VT + 5*DeltaT", "v = V_reset; w += b; VT += delta_VT"
        initial = {"v": "EL", "w": 0.0, "VT": "VT_rest"}
    return NeuronModel(
        equations="""dv/dt = (gL*(EL - v) + gL*DeltaT*exp((v - VT)/DeltaT) + I - w)/C : volt
                     dw/dt = (a*(v - EL) - w)/tau_w : amp
                     I : amp""" + eqs,
        threshold=threshold,
        reset=reset,
        parameters=params,
        initial=initial,
        method="exponential_euler",
        name=NAME if not adaptive_threshold else NAME + "_threshold",
        reference=REFERENCE,
    )
