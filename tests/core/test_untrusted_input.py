"""Input a user did not write: ready-made brian2.Equations objects, stored model specifications, and
generated strings (hypothesis) for equations, names and units. Only tidesim errors come out, never
an internal exception, a hang, or code that runs."""

import json

import pytest
import torch
from brian2 import Equations, ms, second, volt
from brian2.equations.equations import DIFFERENTIAL_EQUATION, PARAMETER, Expression, SingleEquation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tidesim as ts
from tidesim.core.errors import TidesimError
from tidesim.core.spec import spec_from_json, spec_to_json
from tidesim.core.units import parse_quantity

LIF = "dv/dt = (-v + R*I)/tau : volt (unless refractory)\nR : ohm\nI : amp\ntau : second"


def _model(eqs, **kw):
    return ts.NeuronModel(eqs, threshold="v > 10*mV", reset="v = 0*mV", refractory=2 * ms,
                          parameters={"R": 1e8, "I": 0.2e-9, "tau": 10e-3, **kw.pop("parameters", {})}, **kw)


def test_equations_object_with_a_crafted_name_never_reaches_generated_code(tmp_path):
    marker = tmp_path / "ran"
    name = f'x = 1; }} int main() {{ system("touch {marker}"); }} double y'
    crafted = Equations(list(Equations(LIF).values()) + [SingleEquation(PARAMETER, name, volt.dim)])
    with pytest.raises(ts.ModelError, match="not a valid variable name"):
        ts.simulate(_model(crafted), 0.01, engine="compiled")
    assert not marker.exists()


def test_equations_object_with_crafted_expression_code_is_refused(tmp_path):
    expr = Expression("-v/tau")
    expr._code = '(-v + R*I)/tau); system("touch x"); (0'  # what a crafted object holds
    crafted = Equations([SingleEquation(DIFFERENTIAL_EQUATION, "v", volt.dim, expr=expr),
                         *[e for e in Equations(LIF).values() if e.varname != "v"]])
    with pytest.raises(ts.ModelError, match="expression cannot be parsed"):
        _model(crafted)
    flagged = Equations([SingleEquation(DIFFERENTIAL_EQUATION, "v", volt.dim, expr=Expression("-v/tau"),
                                        flags=["unless refractory; rm -rf"]), SingleEquation(PARAMETER, "tau",
                                                                                           second.dim)])
    with pytest.raises(ts.ModelError, match="flags"):
        ts.NeuronModel(flagged, parameters={"tau": 0.01})


def test_equations_object_runs_like_the_same_text():
    a = ts.simulate(_model(Equations(LIF)), 0.1, dtype=torch.float64)
    b = ts.simulate(_model(LIF), 0.1, dtype=torch.float64)
    assert torch.equal(a["v"], b["v"]) and a.spike_trains[0].size > 0


@pytest.mark.parametrize("eqs", [LIF, Equations(LIF)])
def test_stored_specification_rebuilds_the_model(eqs):
    model = _model(eqs, parameters={"tau": 12 * ms})
    doc = json.loads(json.dumps(spec_to_json(model.spec)))
    back = ts.NeuronModel(**spec_from_json(doc))
    assert back.parameters == model.parameters and back.refractory == model.refractory
    assert str(back.equations) == str(model.equations)


@pytest.mark.parametrize("tamper, message", [
    (lambda d: d.update(format="other/9"), "not a stored tidesim model"),
    (lambda d: d["parameters"].update(tau={"si": "__import__('os')", "dim": None}), "expected numbers"),
    (lambda d: d["parameters"].update(tau={"si": 1.0, "dim": [1, 2]}), "7 exponents"),
    (lambda d: d.update(threshold=["v > 1"]), "threshold: expected text"),
    (lambda d: d.update(extra=1), "unknown fields"),
    (lambda d: d.update(equations=7), "equations: expected text"),
])
def test_malformed_stored_specification_is_a_named_error(tamper, message):
    doc = json.loads(json.dumps(spec_to_json(_model(LIF).spec)))
    tamper(doc)
    with pytest.raises(ts.ModelError, match=message):
        ts.NeuronModel(**spec_from_json(doc))


_PIECES = st.sampled_from(["v", "w", "tau", "R*I", "exp(v)", "1", "-", "+", "*", "/", "(", ")", " ", "**", "mV",
                           ";", "'", '"', "__import__", "system", "\\n", "{", "}", "#", "=", ":", "_x", "xi",
                           "clip(v, 0, 1)", "rand()", "int(", "lambda", "\x00", "é", "1e999", "sqrt"])
_EXPR = st.lists(_PIECES, max_size=8).map("".join)
_NAME = st.one_of(st.sampled_from(["v", "w", "_v", "for", "x y", "v;", "é", "1v", "t", "dt", "i", "N",
                                   "exp", "mV", "tau\n", "a" * 300]), st.text(max_size=12))
_UNIT = st.one_of(st.sampled_from(["volt", "1", "second", "amp", "mV", "V", "volt**2", "volt; x", "ohm*amp",
                                   "boolean", "integer", ""]), st.text(max_size=10))

_QUICK = settings(max_examples=120, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@_QUICK
@given(name=_NAME, expr=_EXPR, unit=_UNIT, threshold=_EXPR)
def test_generated_equations_give_only_tidesim_errors(name, expr, unit, threshold):
    text = f"d{name}/dt = ({expr})/tau : {unit}\ntau : second"
    try:
        model = ts.NeuronModel(text, threshold=threshold or None, parameters={"tau": 0.01})
    except TidesimError:
        return
    ts.simulate(model, 0.002, dt=1e-4)  # what was accepted also runs (or says why not, as a tidesim error)


@_QUICK
@given(pname=_NAME, reset=_EXPR)
def test_generated_parameter_names_and_resets_give_only_tidesim_errors(pname, reset):
    try:
        ts.NeuronModel(LIF, threshold="v > 10*mV", reset=reset or None, parameters={pname: 1.0, "R": 1e8})
    except TidesimError:
        pass


@_QUICK
@given(text=st.one_of(st.text(max_size=30), st.lists(_PIECES, max_size=6).map(lambda p: "1" + "".join(p))))
def test_generated_unit_strings_give_only_tidesim_errors(text):
    try:
        parse_quantity(text, "--value")
    except TidesimError:
        pass
