"""Bad model definitions raise tidesim errors that name the line, term or identifier."""

import brian2 as b2
import pytest

import tidesim as ts


def test_malformed_equation_names_the_line():
    eqs = """dv/dt = (E_L - v)/tau : volt
             dw/dt = = w/tau : 1"""
    with pytest.raises(ts.EquationSyntaxError) as err:
        ts.NeuronModel(eqs, parameters={"E_L": -70 * b2.mV, "tau": 10 * b2.ms})
    assert "line 2" in str(err.value)
    assert "dw/dt = = w/tau" in str(err.value)


def test_inconsistent_units_name_the_term():
    eqs = "dv/dt = (E_L - v + R)/tau : volt"
    with pytest.raises(ts.UnitMismatchError) as err:
        ts.NeuronModel(eqs, parameters={"E_L": -70 * b2.mV, "tau": 10 * b2.ms, "R": 1 * b2.Mohm})
    msg = str(err.value)
    assert "'R' has unit ohm" in msg and "E_L - v" in msg


def test_wrong_unit_of_derivative_is_reported():
    with pytest.raises(ts.UnitMismatchError) as err:
        ts.NeuronModel("dv/dt = E_L - v : volt", parameters={"E_L": -70 * b2.mV})
    assert "has unit V but must have unit V/s" in str(err.value)


def test_unknown_identifier_is_named_with_suggestion():
    with pytest.raises(ts.UnknownIdentifierError) as err:
        ts.NeuronModel("dv/dt = (E_L - v)/tau_m : volt", parameters={"E_L": -70 * b2.mV, "tau": 10 * b2.ms})
    msg = str(err.value)
    assert "'tau_m'" in msg and "tau" in msg


def test_unknown_identifier_in_threshold():
    with pytest.raises(ts.UnknownIdentifierError) as err:
        ts.NeuronModel("dv/dt = (E_L - v)/tau : volt", threshold="v > V_thresh",
                       parameters={"E_L": -70 * b2.mV, "tau": 10 * b2.ms})
    assert "threshold" in str(err.value) and "V_thresh" in str(err.value)


def test_parameter_with_wrong_unit():
    with pytest.raises(ts.UnitMismatchError) as err:
        ts.NeuronModel("dv/dt = (E_L - v)/tau : volt\nE_L : volt",
                       parameters={"E_L": -70 * b2.ms, "tau": 10 * b2.ms})
    assert "'E_L'" in str(err.value) and "unit V" in str(err.value)


def test_unused_parameter_is_rejected():
    with pytest.raises(ts.UnknownIdentifierError) as err:
        ts.NeuronModel("dv/dt = -v/tau : volt", parameters={"tau": 10 * b2.ms, "tau_M": 5 * b2.ms})
    assert "tau_M" in str(err.value)


def test_unless_refractory_without_refractory():
    with pytest.raises(ts.ModelError) as err:
        ts.NeuronModel("dv/dt = -v/tau : volt (unless refractory)", threshold="v > 1*mV",
                       parameters={"tau": 10 * b2.ms})
    assert "refractory" in str(err.value)


def test_reset_of_non_state():
    with pytest.raises(ts.ModelError) as err:
        ts.NeuronModel("dv/dt = -v/tau : volt", threshold="v > 1*mV", reset="tau = 5*ms",
                       parameters={"tau": 10 * b2.ms})
    assert "'tau'" in str(err.value) and "not a state" in str(err.value)


def test_reset_with_wrong_unit():
    with pytest.raises(ts.UnitMismatchError):
        ts.NeuronModel("dv/dt = -v/tau : volt", threshold="v > 1*mV", reset="v = 5*ms",
                       parameters={"tau": 10 * b2.ms})


def test_threshold_must_be_condition():
    with pytest.raises(ts.ModelError):
        ts.NeuronModel("dv/dt = -v/tau : volt", threshold="v + 1*mV", parameters={"tau": 10 * b2.ms})


def test_refractory_must_be_time_or_condition():
    with pytest.raises(ts.UnitMismatchError) as err:
        ts.NeuronModel("dv/dt = -v/tau : volt", threshold="v > 1*mV", refractory="v",
                       parameters={"tau": 10 * b2.ms})
    assert "time or a boolean" in str(err.value)


def test_method_that_cannot_integrate():
    with pytest.raises(ts.ModelError) as err:
        ts.NeuronModel("dv/dt = -v**2/(tau*mV) : volt", parameters={"tau": 10 * b2.ms}, method="exact")
    assert "exact" in str(err.value)


def test_initial_value_checks():
    with pytest.raises(ts.UnknownIdentifierError):
        ts.NeuronModel("dv/dt = -v/tau : volt", parameters={"tau": 10 * b2.ms}, initial={"x": 1.0})
    with pytest.raises(ts.UnitMismatchError):
        ts.NeuronModel("dv/dt = -v/tau : volt", parameters={"tau": 10 * b2.ms}, initial={"v": "tau"})


def test_with_params_unknown_name_lists_parameters(lif_model):
    with pytest.raises(ts.UnknownIdentifierError) as err:
        lif_model.with_params(tau=5 * b2.ms)
    assert "tau_m" in str(err.value)


def test_model_metadata(lif_model):
    assert lif_model.state_names == ["v"]
    assert set(lif_model.parameter_names) == {"I", "E_L", "R", "tau_m", "V_th", "V_reset"}
    assert lif_model.unit_of("v") == "V" and lif_model.unit_of("R") == "ohm"
    assert lif_model.units["tau_m"] == b2.second
    assert lif_model.parameters["tau_m"] == pytest.approx(0.01)
    faster = lif_model.with_params(tau_m=5 * b2.ms)
    assert faster.parameters["tau_m"] == pytest.approx(0.005)
    assert lif_model.parameters["tau_m"] == pytest.approx(0.01)  # the original is unchanged
    assert "def update" in lif_model.code and "exp(" in lif_model.code
    # what runs is Brian2's own statement for the update, its loop invariant _lio_ included
    brian2_update = [st.expr for st in lif_model.brian2_code.update if st.target == "_v"]
    assert brian2_update and "_lio_" in brian2_update[0] and "_lio_" in lif_model.update_function.source


def test_zoo_registry():
    assert ts.models.available() == ["adex", "gif", "glif", "hodgkin_huxley", "izhikevich", "lif", "mat"]
    adex = ts.models.get("adex", a=2 * b2.nS, b=60 * b2.pA)
    assert adex.parameters["a"] == pytest.approx(2e-9) and adex.parameters["b"] == pytest.approx(60e-12)
    fs = ts.models.get("izhikevich", preset="FS")
    assert fs.parameters["a"] == pytest.approx(0.1 / 1e-3) and fs.parameters["d"] == pytest.approx(2e-3)
    with pytest.raises(ValueError, match="available"):
        ts.models.get("nope")
    with pytest.raises(ValueError, match="has no parameter"):
        ts.models.get("lif", tau=1.0)
    with pytest.raises(ValueError, match="presets"):
        ts.models.get("izhikevich", preset="XYZ")


def test_plain_si_overrides_keep_units():
    adex = ts.models.get("adex", a=2e-9, tau_w=0.1)
    assert adex.parameters["a"] == pytest.approx(2e-9) and adex.unit_of("a") == "S"
    lif = ts.models.get("lif").with_params(tau_m=0.02)
    assert lif.parameters["tau_m"] == pytest.approx(0.02) and lif.unit_of("tau_m") == "s"
