"""Zoo models as NEST models: the NEST model name and its parameter dictionary, in NEST's units.

Only where NEST has the same model (NEST 3 model documentation, nest-simulator.readthedocs.io):

- ``lif`` -> ``iaf_psc_delta`` (``C_m = tau_m / R``; the injected current as ``I_e``);
- ``adex`` -> ``aeif_psc_delta`` (no synaptic dynamics; NEST detects the spike at ``V_peak``, which is the
  zoo's threshold ``VT + 5 DeltaT``; the zoo's AdEx has no refractory period, ``t_ref = 0``);
- ``gif`` (escape noise) -> ``gif_psc_exp`` (Mensi 2012 / Pozzorini 2015: ``q_stc``/``tau_stc`` are the
  spike-triggered current's jumps and time constants, ``q_sfa``/``tau_sfa`` the threshold's; the escape
  rate ``lambda_0 exp((V - V_T)/Delta_V)`` with the firing probability ``1 - exp(-rate dt)`` per step, as
  the zoo's). Refused where the model cannot be expressed: a voltage-dependent threshold
  (``a_v != 0``), the deterministic ``gif_hazard``/``gif_threshold`` read-outs, or equations changed.

NEST integrates with its own solvers (exact for ``iaf_psc_delta``, adaptive Runge-Kutta for the AdEx), so
spike times agree with tidesim to within the integration error, not bit for bit.
"""

from __future__ import annotations

import numbers
from typing import Any

from tidesim.core.model import NeuronModel
from tidesim.models.neuroml_export import require_zoo_form

__all__ = ["export_nest", "NEST_MODELS"]

#: zoo model -> NEST model of the same equations
NEST_MODELS = {"lif": "iaf_psc_delta", "adex": "aeif_psc_delta", "gif": "gif_psc_exp"}


def _value(model: NeuronModel, name: str) -> float:
    value = model.parameters[name]
    if not isinstance(value, numbers.Real) and getattr(value, "ndim", 0) != 0:
        raise ValueError(f"{model.name}: parameter {name} holds one value per neuron; NEST's dictionary here "
                         "is for one neuron (export each neuron's values separately)")
    return float(value)


def _lif(model: NeuronModel, p) -> dict[str, Any]:
    return {"C_m": p("tau_m") / p("R") * 1e12, "tau_m": p("tau_m") * 1e3, "E_L": p("E_L") * 1e3,
            "V_th": p("V_th") * 1e3, "V_reset": p("V_reset") * 1e3, "t_ref": (model.refractory_period or 0) * 1e3,
            "I_e": p("I") * 1e12, "V_m": p("E_L") * 1e3}


def _adex(model: NeuronModel, p) -> dict[str, Any]:
    return {"C_m": p("C") * 1e12, "g_L": p("gL") * 1e9, "E_L": p("EL") * 1e3, "V_th": p("VT") * 1e3,
            "Delta_T": p("DeltaT") * 1e3, "tau_w": p("tau_w") * 1e3, "a": p("a") * 1e9, "b": p("b") * 1e12,
            "V_reset": p("V_reset") * 1e3, "V_peak": (p("VT") + 5 * p("DeltaT")) * 1e3, "t_ref": 0.0,
            "I_e": p("I") * 1e12, "V_m": p("EL") * 1e3, "w": 0.0}


def _gif(model: NeuronModel, p) -> dict[str, Any]:
    if p("a_v") != 0:
        raise ValueError(f"{model.name}: a_v = {p('a_v'):g} (a voltage-dependent threshold), which NEST's "
                         "gif_psc_exp does not have; only a_v = 0 exports")
    n_eta = sum(1 for k in model.parameters if k.startswith("a_eta_"))
    n_gamma = sum(1 for k in model.parameters if k.startswith("a_gamma_"))
    return {"C_m": p("C") * 1e12, "g_L": p("gL") * 1e9, "E_L": p("EL") * 1e3, "V_reset": p("V_reset") * 1e3,
            "t_ref": p("T_ref") * 1e3, "V_T_star": p("VT_star") * 1e3, "Delta_V": p("DV") * 1e3,
            "lambda_0": p("lambda0"),
            "q_stc": [p(f"a_eta_{k}") * 1e9 for k in range(1, n_eta + 1)],
            "tau_stc": [p(f"tau_eta_{k}") * 1e3 for k in range(1, n_eta + 1)],
            "q_sfa": [p(f"a_gamma_{k}") * 1e3 for k in range(1, n_gamma + 1)],
            "tau_sfa": [p(f"tau_gamma_{k}") * 1e3 for k in range(1, n_gamma + 1)],
            "I_e": p("I") * 1e12, "V_m": p("EL") * 1e3}


_CONVERT = {"lif": _lif, "adex": _adex, "gif": _gif}


def export_nest(model: NeuronModel) -> dict[str, Any]:
    """``{"model": NEST model name, "params": {name: value}}`` for ``nest.Create(d["model"],
    params=d["params"])``, in NEST's units (mV, ms, pF, nS, pA; ``q_stc`` in nA and ``lambda_0`` in 1/s
    for ``gif_psc_exp``), from a zoo ``lif``, ``adex`` or ``gif`` (escape noise) with its current values
    (e.g. ``fit.model``). Other models, variants, changed equations and per-neuron values are refused,
    naming why.
    """
    if model.name not in NEST_MODELS:
        covered = ", ".join(f"{k} -> {v}" for k, v in NEST_MODELS.items())
        raise ValueError(f"{model.name} has no NEST model that is the same model (NEST export covers {covered}; "
                         "gif_hazard and gif_threshold are tidesim's deterministic read-outs of the GIF)")
    require_zoo_form(model, f"NEST's {NEST_MODELS[model.name]}")
    params = _CONVERT[model.name](model, lambda name: _value(model, name))
    return {"model": NEST_MODELS[model.name], "params": params}
