"""Generalized integrate-and-fire neuron (GIF): spike-triggered adaptation current and moving threshold,
with escape noise or a hard threshold.

References: Mensi S. et al. (2012), "Parameter extraction and classification of three cortical neuron
types reveals two distinct adaptation mechanisms", J. Neurophysiol. 107:1756-1775; Pozzorini C. et al.
(2015), "Automated high-throughput characterization of single neurons by means of simplified spiking
models", PLoS Comput. Biol. 11:e1004275.

``C dv/dt = g_L (E_L - v) + I - eta``, with the spike-triggered current ``eta`` a sum of exponentials
(each spike adds ``a_eta_k`` to component ``k``, which decays with ``tau_eta_k``), and the threshold
``vt = VT_star + gamma + theta_v``, ``gamma`` a sum of exponentials too (``a_gamma_k``, ``tau_gamma_k``)
and ``theta_v`` a voltage-dependent part that follows ``a_v (v - E_L)`` with ``tau_v`` (sodium
inactivation raises the threshold of a slowly depolarized cell: Platkiewicz & Brette 2011, PLoS Comput.
Biol. 7:e1001129; the GLIF5 component of Teeter et al. 2018; ``a_v = 0`` is Pozzorini's GIF). Spikes
come with the escape rate ``lambda0 exp((v - vt)/DV)`` (probability ``1 - exp(-rate dt)`` per step,
Brian2's ``rand()`` in the threshold: ``spikes="escape"``, the default). Two deterministic read-outs of
the same model: ``spikes="hazard"`` fires when the escape rate integrated since the last spike reaches
``ln 2`` -- the median time of the escape process's next spike, which keeps what the noise does on slow
ramps (it fires before the voltage reaches ``vt``); ``spikes="threshold"`` fires when ``v > vt``. After a
spike ``v`` is set to ``V_reset`` and held for ``T_ref``.

The filters' time constants are fixed (a log-spaced basis, 3-300 ms): their amplitudes are what a
staged fit estimates, by linear regression (``eta``) and a concave likelihood (``gamma``, ``VT_star``,
``DV``) -- ``ts.fit(gif, rec)`` runs that (:mod:`tidesim.fitting.staged`). Defaults are of the order
Pozzorini et al. report for L5 pyramidal cells (C ~ 100 pF, tau_m ~ 10-20 ms, DV ~ 1 mV), not a fit.
"""

from brian2 import Hz, ms, mV, nA, nS, pA, pF

from tidesim.core.model import NeuronModel

NAME = "gif"
REFERENCE = ("Mensi et al. (2012), J. Neurophysiol. 107:1756; Pozzorini et al. (2015), PLoS Comput. Biol. "
             "11:e1004275")
#: Time constants of the spike-triggered filters' exponentials (fixed; their amplitudes are fitted).
ETA_TAUS = (3 * ms, 10 * ms, 30 * ms, 100 * ms, 300 * ms)
GAMMA_TAUS = (3 * ms, 10 * ms, 30 * ms, 100 * ms, 300 * ms)
#: build() options (``ts.models.get("gif", spikes="hazard")``).
OPTIONS = {"spikes": "escape"}
#: Variants by name (``ts.models.get("gif_hazard")``).
VARIANTS = {"gif_hazard": {"spikes": "hazard"}, "gif_threshold": {"spikes": "threshold"}}
#: How spikes are made: at random (escape noise), or deterministically from the hazard or the threshold.
SPIKES = ("escape", "hazard", "threshold")
PARAMETERS = {
    "C": 100 * pF,  # membrane capacitance
    "gL": 6 * nS,  # leak conductance
    "EL": -70 * mV,  # leak reversal
    "V_reset": -55 * mV,  # voltage after a spike
    "T_ref": 4 * ms,  # absolute refractory period
    "VT_star": -48 * mV,  # threshold at rest
    "DV": 1 * mV,  # escape-noise sharpness
    "lambda0": 1000 * Hz,  # escape rate at v = vt
    "a_v": 0.0,  # voltage-dependent threshold: mV of threshold per mV of depolarization
    "tau_v": 15 * ms,  # its time constant
    **{f"a_eta_{k + 1}": a for k, a in enumerate((60 * pA, 30 * pA, 15 * pA, 8 * pA, 4 * pA))},
    **{f"tau_eta_{k + 1}": tau for k, tau in enumerate(ETA_TAUS)},
    **{f"a_gamma_{k + 1}": a for k, a in enumerate((10 * mV, 5 * mV, 3 * mV, 1 * mV, 0.5 * mV))},
    **{f"tau_gamma_{k + 1}": tau for k, tau in enumerate(GAMMA_TAUS)},
    "I": 0 * nA,  # injected current
}
VALIDATION = {"input": "I", "amplitudes": (0.25e-9, 0.4e-9, 0.6e-9), "dt": 1e-4}
FIT_BOUNDS = {
    "C": (20 * pF, 500 * pF),
    "gL": (0.5 * nS, 100 * nS),
    "EL": (-90 * mV, -45 * mV),
    "V_reset": (-80 * mV, -20 * mV),
    "VT_star": (-70 * mV, -20 * mV),
    "DV": (0.1 * mV, 10 * mV),
    "a_v": (-0.5, 1.5),
    **{f"a_eta_{k + 1}": (-500 * pA, 1000 * pA) for k in range(len(ETA_TAUS))},
    **{f"a_gamma_{k + 1}": (-20 * mV, 50 * mV) for k in range(len(GAMMA_TAUS))},
}


def equations(n_eta: int = len(ETA_TAUS), n_gamma: int = len(GAMMA_TAUS)) -> str:
    """The GIF's equations with ``n_eta`` and ``n_gamma`` exponentials in its filters."""
    lines = ["dv/dt = (gL*(EL - v) + I - eta)/C : volt (unless refractory)",
             "eta = " + " + ".join(f"eta_{k + 1}" for k in range(n_eta)) + " : amp",
             "vt = VT_star + theta_v + " + " + ".join(f"gamma_{k + 1}" for k in range(n_gamma)) + " : volt",
             "dtheta_v/dt = (a_v*(v - EL) - theta_v)/tau_v : volt"]
    lines += [f"deta_{k + 1}/dt = -eta_{k + 1}/tau_eta_{k + 1} : amp" for k in range(n_eta)]
    lines += [f"dgamma_{k + 1}/dt = -gamma_{k + 1}/tau_gamma_{k + 1} : volt" for k in range(n_gamma)]
    return "\n".join(lines + ["I : amp"])


def build(spikes: str = "escape", **overrides) -> NeuronModel:
    """The GIF; ``spikes`` is ``"escape"`` (random, the model as fitted), ``"hazard"`` (deterministic: the
    median spike time of the escape process) or ``"threshold"`` (deterministic: ``v > vt``); keyword
    arguments override default parameters."""
    if spikes not in SPIKES:
        raise ValueError(f"spikes must be one of {', '.join(map(repr, SPIKES))}, got {spikes!r}")
    params = {**PARAMETERS, **overrides}
    eqs = equations()
    reset = ["v = V_reset"] + [f"eta_{k + 1} += a_eta_{k + 1}" for k in range(len(ETA_TAUS))]
    reset += [f"gamma_{k + 1} += a_gamma_{k + 1}" for k in range(len(GAMMA_TAUS))]
    if spikes == "escape":
        threshold = "rand() < 1 - exp(-lambda0*exp((v - vt)/DV)*dt)"
    elif spikes == "hazard":
        # the escape rate integrated since the last spike; clipped so that float32 cannot overflow
        eqs += "\ndH/dt = lambda0*exp(clip((v - vt)/DV, -60, 60)) : 1 (unless refractory)"
        threshold, reset = "H > log(2)", reset + ["H = 0"]
    else:
        params.pop("lambda0")
        params.pop("DV")
        threshold = "v > vt"
    return NeuronModel(
        equations=eqs,
        threshold=threshold,
        reset="; ".join(reset),
        refractory="T_ref",
        parameters=params,
        initial={"v": "EL"},
        method="exponential_euler",
        name=NAME if spikes == "escape" else f"{NAME}_{spikes}",
        reference=REFERENCE,
    )
