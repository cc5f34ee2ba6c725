"""The symbolic layer: Brian2 parses and unit-checks, tidesim names the line, term or identifier."""

import brian2 as b2
import pytest
import sympy

from tidesim.core.equations import (
    check_identifiers,
    expression_dims,
    parse_equations,
    parse_statements,
    to_sympy,
    unit_variables,
)
from tidesim.core.errors import EquationSyntaxError, UnitMismatchError, UnknownIdentifierError


def test_a_line_that_does_not_parse_is_named_by_number():
    with pytest.raises(EquationSyntaxError, match=r"line 2 cannot be parsed: 'dw/dt = -w/tau_w :: amp'"):
        parse_equations("dv/dt = -v/tau : volt\ndw/dt = -w/tau_w :: amp\n")


def test_unknown_identifiers_get_suggestions():
    with pytest.raises(UnknownIdentifierError, match=r"'tau_n' \(did you mean tau_m\?\)"):
        check_identifiers("-v/tau_n", {"v", "tau_m"}, "the equation for 'v'")


def test_unit_mismatch_names_where():
    variables = unit_variables({"v": b2.volt.dim, "I": b2.amp.dim})
    assert expression_dims("v*2", variables, "x") is b2.volt.dim
    with pytest.raises(UnitMismatchError, match="the threshold"):
        expression_dims("v + I", variables, "the threshold")


def test_names_sympy_would_take_for_its_own_stay_plain_symbols():
    expr = to_sympy("I + E*S - N/beta + gamma")
    assert all(isinstance(s, sympy.Symbol) for s in expr.free_symbols)
    assert {s.name for s in expr.free_symbols} == {"I", "E", "S", "N", "beta", "gamma"}
    assert not expr.has(sympy.I) and not expr.has(sympy.E)


def test_units_become_si_numbers():
    expr = to_sympy("v/mV + 3*ms")
    (v,) = expr.free_symbols
    assert v.name == "v"
    assert float(expr.subs(v, 0)) == pytest.approx(3e-3)
    assert float(expr.subs(v, 1e-3) - expr.subs(v, 0)) == pytest.approx(1.0)


def test_statements_on_lines_and_semicolons():
    sts = parse_statements("v = V_r; w += b\nz -= 1", "the reset")
    assert [(s.target, s.op) for s in sts] == [("v", "="), ("w", "+="), ("z", "-=")]
    with pytest.raises(EquationSyntaxError, match="the reset"):
        parse_statements("v = = 1", "the reset")
