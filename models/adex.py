"""Adaptive exponential integrate-and-fire neuron (AdEx).

Reference: Brette R. & Gerstner W. (2005), "Adaptive exponential integrate-and-fire model as an
effective description of neuronal activity", J. Neurophysiol. 94:3637-3642. Default parameters
are the paper's (Table 1, fitted to a detailed pyramidal-cell model): C = 281 pF, g_L = 30 nS,
E_L = -70.6 mV, V_T = -50.4 mV, Delta_T = 2 mV, tau_w = 144 ms, a = 4 nS, b = 0.0805 nA.
Spikes are cut at ``V_T + 5 Delta_T`` and reset to ``V_reset = E_L``, as in Brian2's example.
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


def build(**overrides) -> NeuronModel:
    """The AdEx model; keyword arguments override default parameters."""
    return NeuronModel(
        equations="""dv/dt = (gL*(EL - v) + gL*DeltaT*exp((v - VT)/DeltaT) + I - w)/C : volt
                     dw/dt = (a*(v - EL) - w)/tau_w : amp
                     I : amp""",
        threshold="v > VT + 5*DeltaT",
        reset="v = V_reset; w += b",
        parameters={**PARAMETERS, **overrides},
        initial={"v": "EL", "w": 0.0},
        method="exponential_euler",
        name=NAME,
        reference=REFERENCE,
    )
