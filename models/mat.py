"""Multi-timescale adaptive threshold model (MAT): a leaky integrator that is never reset, and a threshold
that jumps at each spike and relaxes on two time scales.

Reference: Kobayashi R., Tsubo Y. & Shinomoto S. (2009), "Made-to-order spiking neuron model equipped
with a multi-timescale adaptive threshold", Front. Comput. Neurosci. 3:9 (the best predictor of the 2009
INCF competition's challenge A). ``tau_m dv/dt = E_L - v + R I``; a spike when ``v > theta`` (not tested
for ``t_ref`` after a spike); ``theta = omega + theta_1 + theta_2``, each spike adds ``alpha_1`` and
``alpha_2``, which decay with ``tau_1 = 10 ms`` and ``tau_2 = 200 ms``. Defaults are the regular-spiking
values of the paper's Fig. 2 as we read them (alpha_1 = 37 mV, alpha_2 = 2 mV, omega = 19 mV above rest,
tau_m = 5 ms, R = 50 Mohm): approximate, illustrative.
"""

from brian2 import Mohm, ms, mV, nA

from tidesim.core.model import NeuronModel

NAME = "mat"
REFERENCE = "Kobayashi, Tsubo & Shinomoto (2009), Front. Comput. Neurosci. 3:9"
PARAMETERS = {
    "EL": -70 * mV,  # resting potential
    "R": 50 * Mohm,  # input resistance
    "tau_m": 5 * ms,  # membrane time constant
    "omega": -51 * mV,  # threshold at rest (19 mV above E_L)
    "alpha_1": 37 * mV,  # fast threshold jump
    "alpha_2": 2 * mV,  # slow threshold jump
    "tau_1": 10 * ms,
    "tau_2": 200 * ms,
    "I": 0 * nA,  # injected current
}
VALIDATION = {"input": "I", "amplitudes": (0.5e-9, 0.8e-9, 1.2e-9), "dt": 1e-4}
FIT_BOUNDS = {
    "EL": (-90 * mV, -45 * mV),
    "R": (5 * Mohm, 500 * Mohm),
    "tau_m": (1 * ms, 60 * ms),
    "omega": (-75 * mV, -20 * mV),
    "alpha_1": (-10 * mV, 80 * mV),
    "alpha_2": (-5 * mV, 20 * mV),
}


def build(t_ref=2 * ms, **overrides) -> NeuronModel:
    """The MAT model (``t_ref``: the time after a spike when the threshold is not tested); keyword
    arguments override default parameters."""
    return NeuronModel(
        equations="""dv/dt = (EL - v + R*I)/tau_m : volt
                     theta = omega + theta_1 + theta_2 : volt
                     dtheta_1/dt = -theta_1/tau_1 : volt
                     dtheta_2/dt = -theta_2/tau_2 : volt
                     I : amp""",
        threshold="v > theta",
        reset="theta_1 += alpha_1; theta_2 += alpha_2",
        refractory=t_ref,
        parameters={**PARAMETERS, **overrides},
        initial={"v": "EL"},
        method="exponential_euler",
        name=NAME,
        reference=REFERENCE,
    )
