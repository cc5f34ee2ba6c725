"""Izhikevich (2003) simple model, with the paper's neuron-type presets.

Reference: Izhikevich E. M. (2003), "Simple model of spiking neurons", IEEE Trans. Neural
Networks 14(6):1569-1572: ``v' = 0.04 v^2 + 5 v + 140 - u + I``, ``u' = a (b v - u)``, and when
``v >= 30 mV``: ``v <- c``, ``u <- u + d`` (v in mV, t in ms). Here ``R I`` is the paper's input
``I`` in mV: with the default R = 1 Mohm, 1 nA of injected current is the paper's ``I = 1``.
Presets are the paper's Fig. 2 (a in 1/ms, b dimensionless, c and d in mV).
"""

from brian2 import Mohm, ms, mV, nA

from tidesim.core.model import NeuronModel

NAME = "izhikevich"
REFERENCE = "Izhikevich (2003), IEEE Trans. Neural Netw. 14:1569"
#: Neuron types of Fig. 2: (a [1/ms], b, c [mV], d [mV]).
PRESETS = {
    "RS": (0.02, 0.2, -65.0, 8.0),  # regular spiking
    "IB": (0.02, 0.2, -55.0, 4.0),  # intrinsically bursting
    "CH": (0.02, 0.2, -50.0, 2.0),  # chattering
    "FS": (0.1, 0.2, -65.0, 2.0),  # fast spiking
    "TC": (0.02, 0.25, -65.0, 0.05),  # thalamo-cortical
    "RZ": (0.1, 0.26, -65.0, 2.0),  # resonator
    "LTS": (0.02, 0.25, -65.0, 2.0),  # low-threshold spiking
}
PARAMETERS = {
    "a": 0.02 / ms,
    "b": 0.2,
    "c": -65 * mV,
    "d": 8 * mV,
    "R": 1 * Mohm,
    "I": 0 * nA,
}
VALIDATION = {"input": "I", "amplitudes": (5e-9, 10e-9, 15e-9), "dt": 1e-4}
#: Search ranges for fitting current-clamp recordings (``tidesim fit`` defaults); R scales the
#: recorded current (A) to the paper's input (mV).
FIT_BOUNDS = {
    "a": (0.005 / ms, 0.2 / ms),
    "b": (-0.1, 0.4),
    "c": (-80 * mV, -40 * mV),
    "d": (0 * mV, 12 * mV),
    "R": (1 * Mohm, 1000 * Mohm),
}


def preset(name: str) -> dict:
    """Parameters of one of the paper's neuron types (``'RS'``, ``'FS'``, ...), with units."""
    try:
        a, b, c, d = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown Izhikevich preset {name!r}; presets: {', '.join(PRESETS)}") from None
    return {"a": a / ms, "b": b, "c": c * mV, "d": d * mV}


def build(preset_name: str | None = None, **overrides) -> NeuronModel:
    """The Izhikevich model (``preset_name``: a key of :data:`PRESETS`); keywords override."""
    params = {**PARAMETERS, **(preset(preset_name) if preset_name else {}), **overrides}
    return NeuronModel(
        equations="""dv/dt = (0.04/mV*v**2 + 5*v + 140*mV - u + R*I)/ms : volt
                     du/dt = a*(b*v - u) : volt
                     I : amp""",
        threshold="v >= 30*mV",
        reset="v = c; u += d",
        parameters=params,
        initial={"v": -65 * mV, "u": "b*v"},
        method="euler",
        name=NAME if not preset_name else f"{NAME}-{preset_name}",
        reference=REFERENCE,
    )
