"""Zoo cells as NeuroML 2 core types: values mapped with their units, schema-valid, refused where the
NeuroML type is not the same model."""

import xml.etree.ElementTree as ET

import pytest
from neuroml.utils import is_valid_neuroml2

import tidesim as ts

NS = "{http://www.neuroml.org/schema/neuroml2}"


def _attributes(text, tag):
    return ET.fromstring(text).find(NS + tag).attrib


def test_lif_is_an_iafrefcell_with_c_and_g_from_tau_and_r(tmp_path):
    lif = ts.models.get("lif", tau_m=0.02, R=2e8, V_th=-0.052)
    path = tmp_path / "lif.nml"
    cell = _attributes(ts.export_neuroml(lif, path=path), "iafRefCell")
    assert cell == {"id": "lif", "leakReversal": "-70mV", "thresh": "-52mV", "reset": "-65mV", "C": "100pF",
                    "leakConductance": "5nS", "refract": "2ms"}  # C = tau_m / R, g = 1 / R
    assert is_valid_neuroml2(str(path))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ts.export_neuroml(lif, path=path)


def test_adex_is_an_adexiafcell_spiking_where_the_zoo_does():
    adex = ts.models.get("adex", b=60e-12)
    cell = _attributes(ts.export_neuroml(adex, cell_id="cell7"), "adExIaFCell")
    assert cell["id"] == "cell7" and cell["C"] == "281pF" and cell["gL"] == "30nS" and cell["b"] == "0.06nA"
    assert cell["VT"] == "-50.4mV" and cell["delT"] == "2mV" and cell["thresh"] == "-40.4mV"  # VT + 5 DeltaT


@pytest.mark.parametrize("name, why", [("izhikevich", "2003 form"), ("gif", "no NeuroML 2 core type")])
def test_models_neuroml_cannot_express_are_refused(name, why):
    with pytest.raises(ValueError, match=why):
        ts.export_neuroml(ts.models.get(name))


def test_a_changed_zoo_model_is_refused():
    lif = ts.models.get("lif")
    spec = lif.spec
    spec["threshold"] = "v > V_th + 1*mV"
    with pytest.raises(ValueError, match="differ from the zoo's"):
        ts.export_neuroml(ts.NeuronModel(**spec))
