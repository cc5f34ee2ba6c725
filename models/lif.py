"""Leaky integrate-and-fire neuron with an absolute refractory period.

Reference: Lapicque (1907); in the form of Gerstner, Kistler, Naud & Paninski, *Neuronal
Dynamics* (2014), ch. 1.3: ``tau_m dv/dt = E_L - v + R I``, reset to ``V_reset`` when ``v``
crosses ``V_th``, frozen for ``t_ref`` after a spike.
"""

from brian2 import Mohm, ms, mV, nA

from tidesim.core.model import NeuronModel

NAME = "lif"
REFERENCE = "Lapicque (1907); Gerstner et al., Neuronal Dynamics (2014), ch. 1.3"
PARAMETERS = {
    "E_L": -70 * mV,  # resting potential
    "R": 100 * Mohm,  # membrane resistance
    "tau_m": 10 * ms,  # membrane time constant
    "V_th": -50 * mV,  # firing threshold
    "V_reset": -65 * mV,  # reset potential
    "I": 0 * nA,  # injected current (drive it with inputs={"I": ...})
}
#: A deterministic drive that makes the model fire repeatedly (used by `tidesim validate`).
VALIDATION = {"input": "I", "amplitudes": (0.25e-9, 0.35e-9, 0.5e-9), "dt": 1e-4}
#: Search ranges for fitting current-clamp recordings (``tidesim fit`` defaults).
FIT_BOUNDS = {
    "E_L": (-90 * mV, -50 * mV),
    "R": (10 * Mohm, 1000 * Mohm),
    "tau_m": (2 * ms, 100 * ms),
    "V_th": (-65 * mV, -30 * mV),
    "V_reset": (-85 * mV, -40 * mV),
}


def build(**overrides) -> NeuronModel:
    """The LIF model; keyword arguments override default parameters."""
    return NeuronModel(
        equations="""dv/dt = (E_L - v + R*I)/tau_m : volt (unless refractory)
                     I : amp""",
        threshold="v > V_th",
        reset="v = V_reset",
        refractory=2 * ms,
        parameters={**PARAMETERS, **overrides},
        initial={"v": "E_L"},
        method="exponential_euler",
        name=NAME,
        reference=REFERENCE,
    )
