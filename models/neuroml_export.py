"""Zoo models as NeuroML 2 core cell types (through libNeuroML), for simulators that read NeuroML.

Only where a NeuroML core type is the same model: ``lif`` -> ``iafRefCell`` (``C = tau_m/R``,
``leak_conductance = 1/R``) and ``adex`` -> ``adExIaFCell`` (spike at ``VT + 5 DeltaT``, as the zoo's
threshold). The zoo's Izhikevich model is the 2003 form (``b*v``), which ``izhikevich2007Cell``
(``b*(v - vr)``) cannot express exactly, so it is refused, as are models whose equations or threshold
were changed. The document is validated against the NeuroML schema before it is returned.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Any

from tidesim.core.files import atomic_write_text, check_new
from tidesim.core.model import NeuronModel
from tidesim.models import get

__all__ = ["export_neuroml", "NEUROML_TYPES", "require_zoo_form"]

#: zoo model -> (NeuroML core type, the equations and threshold it must have to be that type)
NEUROML_TYPES = {"lif": "iafRefCell", "adex": "adExIaFCell"}


def require_zoo_form(model: NeuronModel, target: str) -> None:
    """Refuse a model whose equations, threshold or reset differ from the zoo model of its name: an export
    maps the zoo's form onto ``target`` (e.g. "NEST's aeif_psc_delta") and means nothing for another."""
    reference = get(model.name)
    if str(model.equations) != str(reference.equations) or model.threshold != reference.threshold or \
            model.reset != reference.reset:
        raise ValueError(f"{model.name}: its equations, threshold or reset differ from the zoo's, so it is not "
                         f"{target} any more")


def _q(value: float, scale: float, unit: str) -> str:
    return f"{value / scale:.12g}{unit}"  # 12 digits: 30nS, not the float's 30.000000000000004nS


def _cell(model: NeuronModel, cell_id: str, p: dict[str, float]):
    import neuroml

    if model.name == "lif":
        return neuroml.IafRefCell(
            id=cell_id, leak_reversal=_q(p["E_L"], 1e-3, "mV"), thresh=_q(p["V_th"], 1e-3, "mV"),
            reset=_q(p["V_reset"], 1e-3, "mV"), C=_q(p["tau_m"] / p["R"], 1e-12, "pF"),
            leak_conductance=_q(1.0 / p["R"], 1e-9, "nS"), refract=_q(model.refractory_period or 0.0, 1e-3, "ms"))
    return neuroml.AdExIaFCell(id=cell_id, C=_q(p["C"], 1e-12, "pF"), g_l=_q(p["gL"], 1e-9, "nS"),
                               EL=_q(p["EL"], 1e-3, "mV"), reset=_q(p["V_reset"], 1e-3, "mV"),
                               VT=_q(p["VT"], 1e-3, "mV"), thresh=_q(p["VT"] + 5 * p["DeltaT"], 1e-3, "mV"),
                               del_t=_q(p["DeltaT"], 1e-3, "mV"), tauw=_q(p["tau_w"], 1e-3, "ms"),
                               refract=_q(model.refractory_period or 0.0, 1e-3, "ms"), a=_q(p["a"], 1e-9, "nS"),
                               b=_q(p["b"], 1e-9, "nA"))


def export_neuroml(model: NeuronModel, path: str | Path | None = None, cell_id: str | None = None,
                   overwrite: bool = False) -> str:
    """The NeuroML 2 document (XML text) of a zoo ``lif`` or ``adex`` model with its current values
    (e.g. ``fit.model``), validated against the NeuroML schema; written to ``path`` when given (an
    existing file only with ``overwrite=True``). The injected current is not part of the cell (NeuroML
    gives it as a ``pulseGenerator`` or other input)."""
    import neuroml
    import neuroml.writers
    from neuroml.utils import validate_neuroml2

    if model.name not in NEUROML_TYPES:
        covered = ", ".join(f"{k} -> {v}" for k, v in NEUROML_TYPES.items())
        raise ValueError(f"{model.name} has no NeuroML 2 core type that is the same model (NeuroML export covers "
                         f"{covered}; the zoo's Izhikevich is the 2003 form, which izhikevich2007Cell cannot "
                         "express exactly)")
    require_zoo_form(model, f"NeuroML's {NEUROML_TYPES[model.name]}")
    p: dict[str, Any] = {k: float(v) for k, v in model.parameters.items() if k != "I"}
    cell_id = cell_id or model.name
    doc = neuroml.NeuroMLDocument(id=f"{cell_id}_doc", notes=f"exported by tidesim from {model.name}")
    cell = _cell(model, cell_id, p)
    (doc.iaf_ref_cells if model.name == "lif" else doc.ad_ex_ia_f_cells).append(cell)
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / f"{cell_id}.nml"
        neuroml.writers.NeuroMLWriter.write(doc, str(file))
        with contextlib.redirect_stdout(io.StringIO()):  # it prints "It's valid!"
            validate_neuroml2(str(file))  # raises on a document the schema rejects
        text = file.read_text()
    if path is not None:
        check_new([path], overwrite, "exporting the NeuroML document")
        atomic_write_text(path, text)
    return text
