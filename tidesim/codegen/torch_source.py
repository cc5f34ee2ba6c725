"""Code generation: sympy statements (from Brian2's state updaters) printed as torch code.

A model's update, threshold, reset and subexpressions become small Python functions over
tensors. The source is kept (``model.code``) so that a user can read exactly what runs. The
functions are compiled once per model and bound to a namespace per simulation (dtype, noise
generator, shape), so nothing global changes between runs.
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass, field
from typing import Callable, Sequence

import sympy
import torch
from sympy.printing.precedence import precedence
from sympy.printing.str import StrPrinter

__all__ = ["Statement", "TorchPrinter", "FunctionSource", "make_namespace", "print_expr"]


@dataclass(frozen=True)
class Statement:
    """``target = expr`` (``op`` is '=' or an augmented operator such as '+=')."""

    target: str
    op: str
    expr: sympy.Expr


_FUNCTIONS = {
    "exp": "torch.exp",
    "log": "torch.log",
    "log10": "torch.log10",
    "expm1": "torch.expm1",
    "log1p": "torch.log1p",
    "sin": "torch.sin",
    "cos": "torch.cos",
    "tan": "torch.tan",
    "sinh": "torch.sinh",
    "cosh": "torch.cosh",
    "tanh": "torch.tanh",
    "asin": "torch.asin",
    "acos": "torch.acos",
    "atan": "torch.atan",
    "Abs": "torch.abs",
    "sign": "torch.sign",
    "ceiling": "torch.ceil",
    "floor": "torch.floor",
    "sqrt": "torch.sqrt",
    "exprel": "_exprel",
    "int_": "_int",
    "clip": "_clip",
    "randn": "_randn",
    "rand": "_rand",
}


class NumberPrinting:
    """Numbers as full-precision literals (shared by the torch and C printers)."""

    def _print_Rational(self, expr):
        return repr(float(expr.p) / float(expr.q))

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Pi(self, expr):
        return repr(math.pi)

    def _print_Exp1(self, expr):
        return repr(math.e)


class TorchPrinter(NumberPrinting, StrPrinter):
    """Prints sympy expressions as Python source over torch tensors."""

    def _print_Symbol(self, expr):
        return expr.name

    def _print_Function(self, expr):
        if not expr.free_symbols and not expr.atoms(sympy.Function).intersection(
                a for a in expr.atoms(sympy.Function) if a.func.__name__ in ("randn", "rand")):
            return repr(float(expr.evalf(17)))  # constant folding, e.g. exp(-3.25)
        name = expr.func.__name__
        if name in ("randn", "rand"):  # Brian2 gives them a placeholder argument
            return f"{_FUNCTIONS[name]}()"
        if name not in _FUNCTIONS:
            raise NotImplementedError(f"function '{name}' has no torch implementation in tidesim")
        args = ", ".join(self._print(a) for a in expr.args)
        return f"{_FUNCTIONS[name]}({args})"

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        b = self.parenthesize(base, precedence(expr), strict=False)
        if exp == sympy.Rational(1, 2) or exp == sympy.Float(0.5):
            return f"torch.sqrt({self._print(base)})"
        if exp == -sympy.Rational(1, 2):
            return f"(1.0/torch.sqrt({self._print(base)}))"
        if exp == -1:
            return f"(1.0/{b})"
        if exp.is_Integer:
            return f"{b}**{int(exp)}"
        return f"{b}**({self._print(exp)})"

    def _print_Integer(self, expr):
        return str(int(expr))

    def _print_Infinity(self, expr):
        return "math.inf"

    def _print_NegativeInfinity(self, expr):
        return "(-math.inf)"

    def _print_BooleanTrue(self, expr):
        return "True"

    def _print_BooleanFalse(self, expr):
        return "False"

    def _print_And(self, expr):
        return "(" + " & ".join(f"({self._print(a)})" for a in expr.args) + ")"

    def _print_Or(self, expr):
        return "(" + " | ".join(f"({self._print(a)})" for a in expr.args) + ")"

    def _print_Not(self, expr):
        return f"(~({self._print(expr.args[0])}))"

    def _print_Relational(self, expr):
        ops = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
        return f"(({self._print(expr.lhs)}) {ops[expr.rel_op]} ({self._print(expr.rhs)}))"


_PRINTER = TorchPrinter()


#: Brian2's function names and the torch functions that compute them.
_BRIAN2_TORCH = {"exp": "exp", "log": "log", "log10": "log10", "expm1": "expm1", "log1p": "log1p", "sqrt": "sqrt",
                 "sin": "sin", "cos": "cos", "tan": "tan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh",
                 "arcsin": "asin", "arccos": "acos", "arctan": "atan", "floor": "floor", "ceil": "ceil",
                 "sign": "sign", "logical_not": "logical_not", "logical_and": "logical_and",
                 "logical_or": "logical_or"}


def print_expr(expr: sympy.Expr) -> str:
    """Python/torch source of one sympy expression."""
    return _PRINTER.doprint(expr)


@dataclass
class FunctionSource:
    """Generated source of one function, with its argument names; compiled on first use."""

    name: str
    args: tuple[str, ...]
    body: tuple[str, ...]
    returns: tuple[str, ...]
    targets: tuple[str, ...] = ()  # the state names the returned values are assigned to
    _default: Callable | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_statements(
        cls, name: str, args: Sequence[str], statements: Sequence[Statement], returns: Sequence[str]
    ) -> "FunctionSource":
        body = [f"{target} = {print_expr(expr)}" for target, expr in _eliminate_common(statements)]
        return cls(name, tuple(args), tuple(body), tuple(returns))

    @property
    def source(self) -> str:
        lines = [f"def {self.name}({', '.join(self.args)}):"]
        lines += [f"    {line}" for line in self.body]
        lines.append(f"    return ({', '.join(self.returns)}{',' if len(self.returns) == 1 else ''})")
        return "\n".join(lines)

    def compile(self) -> types.CodeType:
        module = compile(self.source, f"<tidesim:{self.name}>", "exec")
        for const in module.co_consts:
            if isinstance(const, types.CodeType) and const.co_name == self.name:
                return const
        raise AssertionError("generated function not found in its module")  # pragma: no cover

    def bind(self, code: types.CodeType, namespace: dict) -> Callable:
        """The function over ``namespace``'s globals (one run's dtype, device and random generator)."""
        return types.FunctionType(code, namespace, self.name)

    def callable(self) -> Callable:
        """The function bound to a plain namespace (no random draws), compiled once and kept: for code
        that works on whatever tensors it is given (synaptic statements, event-driven updates)."""
        if self._default is None:
            self._default = self.bind(self.compile(), make_namespace(torch.float64, torch.device("cpu"), (1,)))
        return self._default


def _is_random(expr: sympy.Basic) -> bool:
    return any(f.func.__name__ in ("randn", "rand") for f in expr.atoms(sympy.Function))


def _eliminate_common(statements: Sequence[Statement]) -> list[tuple[str, sympy.Expr]]:
    """Common-subexpression elimination over a block of ``=`` statements.

    Each shared subexpression is computed once, just before its first use (so it never runs
    ahead of a temporary it depends on). Random draws are left alone: two ``randn()`` must stay
    two draws.
    """
    for st in statements:
        if st.op != "=":
            raise ValueError(f"only '=' statements can be generated here, got '{st.target} {st.op} ...'")
    plain = [k for k, st in enumerate(statements) if not _is_random(st.expr)]
    reps, reduced = sympy.cse([statements[k].expr for k in plain],
                              symbols=sympy.numbered_symbols("_cse"), order="none")
    new_exprs = {k: e for k, e in zip(plain, reduced)}
    rep_exprs = dict(reps)
    emitted: set = set()
    out: list[tuple[str, sympy.Expr]] = []

    def emit(sym):
        if sym in emitted:
            return
        for dep in rep_exprs[sym].free_symbols:
            if dep in rep_exprs:
                emit(dep)
        emitted.add(sym)
        out.append((sym.name, rep_exprs[sym]))

    for k, st in enumerate(statements):
        expr = new_exprs.get(k, st.expr)
        for sym in sorted(expr.free_symbols, key=lambda s: s.name):
            if sym in rep_exprs:
                emit(sym)
        out.append((st.target, expr))
    return out


def _exprel(x: torch.Tensor) -> torch.Tensor:
    # (exp(x)-1)/x with its limit 1 at 0; the inner where keeps the gradient finite there.
    small = x.abs() < 1e-8
    safe = torch.where(small, torch.ones_like(x), x)
    return torch.where(small, 1.0 + 0.5 * x, torch.expm1(safe) / safe)


def _clip(x, lo, hi):
    x = torch.as_tensor(x)
    return torch.minimum(torch.maximum(x, torch.as_tensor(lo, dtype=x.dtype)), torch.as_tensor(hi, dtype=x.dtype))


def make_namespace(
    dtype: torch.dtype,
    device: torch.device,
    shape: tuple[int, ...],
    generator: torch.Generator | None = None,
) -> dict:
    """Globals for generated functions, bound to one simulation's dtype, device and RNG."""

    def _int(x):
        x = torch.as_tensor(x)
        return x.to(dtype) if x.dtype == torch.bool else torch.trunc(x)

    def _randn():
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)

    def _rand():
        return torch.rand(shape, generator=generator, dtype=dtype, device=device)

    def tensor_fn(fn: Callable) -> Callable:
        def apply(*xs):
            return fn(*[x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=dtype, device=device)
                        for x in xs])
        return apply

    # Brian2's names, for statements printed from Brian2's own code (codegen/brian2_code.py)
    brian2_names = {name: tensor_fn(getattr(torch, torch_name)) for name, torch_name in _BRIAN2_TORCH.items()}
    brian2_names.update({"abs": abs, "int": _int, "clip": _clip, "exprel": tensor_fn(_exprel), "rand": _rand,
                         "randn": _randn, "true": True, "false": False})
    return {
        **brian2_names,
        "torch": torch,
        "math": math,
        "_exprel": _exprel,
        "_clip": _clip,
        "_int": _int,
        "_randn": _randn,
        "_rand": _rand,
        "__builtins__": __builtins__,
    }
