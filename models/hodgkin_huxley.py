"""Hodgkin-Huxley (1952) squid giant axon, standard rate functions (resting at -65 mV).

Reference: Hodgkin A. L. & Huxley A. F. (1952), J. Physiol. 117:500-544, in the modern
convention of Dayan & Abbott, *Theoretical Neuroscience* (2001), ch. 5.6: g_Na = 120, g_K = 36,
g_L = 0.3 mS/cm^2, E_Na = 50, E_K = -77, E_L = -54.387 mV, C_m = 1 uF/cm^2. The rate functions'
removable singularities are written with ``exprel`` (Brian2's (exp(x)-1)/x). A patch of
``area`` = 20000 um^2 turns injected current (A) into current density; repetitive firing
starts near 6.3 uA/cm^2, i.e. about 1.25 nA.
"""

from brian2 import cm, mS, mV, nA, uF, umetre

from tidesim.core.model import NeuronModel

NAME = "hodgkin_huxley"
REFERENCE = "Hodgkin & Huxley (1952), J. Physiol. 117:500; Dayan & Abbott (2001) ch. 5.6"
PARAMETERS = {
    "C_m": 1 * uF / cm**2,
    "g_Na": 120 * mS / cm**2,
    "g_K": 36 * mS / cm**2,
    "g_L": 0.3 * mS / cm**2,
    "E_Na": 50 * mV,
    "E_K": -77 * mV,
    "E_L": -54.387 * mV,
    "area": 20000 * umetre**2,
    "I": 0 * nA,
}
VALIDATION = {"input": "I", "amplitudes": (1.5e-9, 2.5e-9, 4e-9), "dt": 5e-5}
#: Search ranges for fitting current-clamp recordings (``tidesim fit`` defaults).
FIT_BOUNDS = {
    "g_Na": (20 * mS / cm**2, 300 * mS / cm**2),
    "g_K": (5 * mS / cm**2, 100 * mS / cm**2),
    "g_L": (0.01 * mS / cm**2, 1 * mS / cm**2),
    "E_L": (-80 * mV, -50 * mV),
    "area": (1000 * umetre**2, 100000 * umetre**2),
}


def build(**overrides) -> NeuronModel:
    """The Hodgkin-Huxley model; keyword arguments override default parameters."""
    return NeuronModel(
        equations="""dv/dt = (I/area - g_Na*m**3*h*(v - E_Na) - g_K*n**4*(v - E_K) - g_L*(v - E_L))/C_m : volt
                     dm/dt = alpha_m*(1 - m) - beta_m*m : 1
                     dh/dt = alpha_h*(1 - h) - beta_h*h : 1
                     dn/dt = alpha_n*(1 - n) - beta_n*n : 1
                     alpha_m = 1/exprel(-(v + 40*mV)/(10*mV))/ms : Hz
                     beta_m = 4*exp(-(v + 65*mV)/(18*mV))/ms : Hz
                     alpha_h = 0.07*exp(-(v + 65*mV)/(20*mV))/ms : Hz
                     beta_h = 1/(1 + exp(-(v + 35*mV)/(10*mV)))/ms : Hz
                     alpha_n = 0.1/exprel(-(v + 55*mV)/(10*mV))/ms : Hz
                     beta_n = 0.125*exp(-(v + 65*mV)/(80*mV))/ms : Hz
                     I : amp""",
        threshold="v > -20*mV",
        reset=None,
        refractory="v > -20*mV",
        parameters={**PARAMETERS, **overrides},
        initial={"v": -65 * mV, "m": 0.0529, "h": 0.5961, "n": 0.3177},
        method="exponential_euler",
        name=NAME,
        reference=REFERENCE,
    )
