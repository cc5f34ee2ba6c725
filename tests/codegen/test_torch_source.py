"""The torch printer: what ``model.code`` shows is what runs."""

import math

import sympy
import torch

from tidesim.codegen.torch_source import FunctionSource, Statement, make_namespace, print_expr

x, y = sympy.symbols("x y")


def test_printing():
    assert print_expr(sympy.exp(-x)) == "torch.exp(-x)"
    assert print_expr(sympy.sqrt(x)) == "torch.sqrt(x)"
    assert print_expr(x**-1) == "(1.0/x)"
    assert print_expr(sympy.Float(0.1)) == "0.1"  # full precision, no rounding
    assert print_expr(sympy.Rational(1, 3)) == repr(1 / 3)
    assert print_expr(sympy.StrictGreaterThan(x, y)) == "((x) > (y))"


def test_a_function_computes_what_its_statements_say():
    fs = FunctionSource.from_statements("f", ["x", "y"], [Statement("a", "=", sympy.exp(x) * y + sympy.exp(x)),
                                                          Statement("b", "=", 2 * sympy.exp(x))], ["a", "b"])
    assert "_cse0" in fs.source and fs.source.count("torch.exp") == 1  # shared subexpression computed once
    fn = fs.bind(fs.compile(), make_namespace(torch.float64, torch.device("cpu"), (1,)))
    a, b = fn(torch.tensor(0.5, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64))
    assert math.isclose(float(a), 3 * math.exp(0.5)) and math.isclose(float(b), 2 * math.exp(0.5))
    assert fs.callable() is fs.callable()  # compiled once


def test_random_draws_stay_separate_draws():
    randn = sympy.Function("randn")
    fs = FunctionSource.from_statements("g", [], [Statement("a", "=", randn(0)), Statement("b", "=", randn(0))],
                                        ["a", "b"])
    assert fs.source.count("_randn()") == 2
    gen = torch.Generator().manual_seed(0)
    a, b = fs.bind(fs.compile(), make_namespace(torch.float64, torch.device("cpu"), (1000,), gen))()
    assert a.shape == (1000,) and not torch.equal(a, b) and abs(float(a.std()) - 1) < 0.1
