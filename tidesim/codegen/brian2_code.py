"""Brian2's own statements for a model's step, printed for torch and for C in Brian2's order.

Brian2 turns the state updater's abstract code into statements with ``make_statements`` and
``optimise_statements``: loop-invariant parts become ``_lio_`` scalars, and every expression has one
association order. Floating-point sums and products depend on that order, and in chaotic regimes a
last-bit difference moves a spike after a few dozen spikes. So tidesim does not print the equations
from its own simplification: it asks Brian2 for the statements of the update, threshold and reset
blocks (a code object of a one-neuron ``NeuronGroup``, built but never run) and prints them with the
same parentheses, so that torch and generated C do the same IEEE operations as Brian2's numpy and
cython targets. Functions may still differ in the last bit between libraries (``exp`` in torch,
numpy and libm).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import brian2 as b2
from brian2.codegen.generators.cython_generator import CythonCodeGenerator
from brian2.codegen.generators.numpy_generator import NumpyCodeGenerator
from brian2.codegen.runtime.numpy_rt import NumpyCodeObject
from brian2.core.variables import Constant
from brian2.parsing.rendering import NumpyNodeRenderer

from tidesim.codegen.torch_source import FunctionSource

__all__ = ["Brian2Statement", "Brian2Code", "brian2_code", "python_lines", "c_expression", "needed", "identifiers",
           "c_expression_level", "update_plan", "torch_function", "reset_torch_lines"]


@dataclass(frozen=True)
class Brian2Statement:
    """``target op expr`` as Brian2 generates it (``expr`` in Brian2's syntax, fully parenthesised)."""

    target: str
    op: str
    expr: str
    scalar: bool = False


@dataclass(frozen=True)
class Brian2Code:
    """The statements of a model's blocks and the constants (unit names) they read, in SI."""

    update: tuple[Brian2Statement, ...]
    threshold: tuple[Brian2Statement, ...]
    reset: tuple[Brian2Statement, ...]
    constants: Mapping[str, float]


def _statements(scalar: Mapping, vector: Mapping) -> list[Brian2Statement]:
    out = [Brian2Statement(s.var, "=" if s.op == ":=" else s.op, s.expr, True)
           for block in scalar.values() for s in block]
    out += [Brian2Statement(s.var, "=" if s.op == ":=" else s.op, s.expr)
            for block in vector.values() for s in block]
    return out


def brian2_code(equations: Any, threshold: str | None, reset: str | None, refractory: Any,
                method: str) -> Brian2Code:
    """Ask Brian2 for the statements of the update, threshold and reset of these equations."""
    captured: dict[str, tuple] = {}

    class Recorder(NumpyCodeGenerator):  # keeps what Brian2 translates, then translates it as usual
        def translate_statement_sequence(self, scalar_statements, vector_statements):
            captured[self.name] = (scalar_statements, vector_statements, self.variables)
            return super().translate_statement_sequence(scalar_statements, vector_statements)

    class Recording(NumpyCodeObject):
        generator_class = Recorder
        # functions without a numpy implementation (exprel) are looked up for cython instead: only the
        # statements are kept, the code object never runs
        original_generator_class = CythonCodeGenerator

    group = b2.NeuronGroup(1, equations, threshold=threshold, reset=reset, refractory=refractory, method=method,
                           namespace={}, codeobj_class=Recording, name="tidesim_codegen*")
    # Brian2 warns about groups deleted without having been in a run; this one is never meant to run
    group._network = "tidesim code generation"
    blocks = {"update": group.state_updater, "threshold": group.thresholder.get("spike"),
              "reset": group.resetter.get("spike")}
    found: dict[str, list[Brian2Statement]] = {}
    constants: dict[str, float] = {}
    for key, runner in blocks.items():
        if runner is None:
            found[key] = []
            continue
        before = set(captured)
        runner.before_run({})
        (name,) = set(captured) - before
        scalar, vector, variables = captured[name]
        found[key] = _statements(scalar, vector)
        constants.update({k: float(v.value) for k, v in variables.items()
                          if isinstance(v, Constant) and not k.startswith("_")})
    return Brian2Code(tuple(found["update"]), tuple(found["threshold"]), tuple(found["reset"]), constants)


def identifiers(expr: str) -> set[str]:
    """Names an expression reads (functions excluded)."""
    tree = ast.parse(NumpyNodeRenderer().render_expr(expr), mode="eval")
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - called


def needed(statements: Sequence[Brian2Statement], outputs: set[str]) -> list[Brian2Statement]:
    """The statements that ``outputs`` depend on, in order (others, e.g. Brian2's own refractoriness
    test, are dropped)."""
    want, keep = set(outputs), []
    for st in reversed(statements):
        if st.target in want:
            keep.append(st)
            if st.op == "=":
                want.discard(st.target)
            want |= identifiers(st.expr)
            if st.op != "=":
                want.add(st.target)
    return keep[::-1]


class _IntOfNotRefractory(ast.NodeTransformer):
    """``int(not_refractory)`` -> ``1``: for temporaries written only while not refractory (their
    value is discarded otherwise, and ``x / int(not_refractory)`` would poison gradients with NaN)."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == "int" and len(node.args) == 1 and \
                isinstance(node.args[0], ast.Name) and node.args[0].id == "not_refractory":
            return ast.copy_location(ast.Constant(1), node)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)  # then x*1, 1*x, x/1 -> x: IEEE multiplication and division by 1 are exact
        one = [isinstance(n, ast.Constant) and n.value == 1 and not isinstance(n.value, bool)
               for n in (node.left, node.right)]
        if isinstance(node.op, ast.Mult) and one[1] or isinstance(node.op, ast.Div) and one[1]:
            return node.left
        if isinstance(node.op, ast.Mult) and one[0]:
            return node.right
        return node


def python_expression(expr: str, free_running: bool = False) -> str:
    """A Brian2 expression as Python source over tensors, parentheses and order kept."""
    text = NumpyNodeRenderer().render_expr(expr)
    if free_running:
        tree = _IntOfNotRefractory().visit(ast.parse(text, mode="eval"))
        text = ast.unparse(tree)  # unparse keeps the tree, hence the evaluation order
    return text


def python_lines(statements: Sequence[Brian2Statement], free_running: set[str] = frozenset()) -> list[str]:
    """Statements as Python lines (augmented assignments spelled out); targets in ``free_running`` get
    ``int(not_refractory)`` replaced by 1 (see :class:`_IntOfNotRefractory`). Repeated subexpressions are
    computed once (``_cse<k>``): the same operations on the same values, hence the same bits."""
    items = []
    for st in statements:
        rhs = python_expression(st.expr, st.target in free_running)
        if st.op != "=":
            rhs = f"{st.target} {st.op[0]} ({rhs})"
        items.append((st.target, ast.parse(rhs, mode="eval").body))
    targets = [t for t, _ in items]
    if len(set(targets)) < len(targets):  # a name written twice: equal text may mean other values
        return [f"{t} = {ast.unparse(e)}" for t, e in items]
    return _common_subexpressions(items)


def _random(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("rand", "randn")
               for n in ast.walk(node))


def _candidate(node: ast.AST) -> bool:
    return isinstance(node, (ast.BinOp, ast.Call, ast.UnaryOp)) and not _random(node) and \
        any(isinstance(n, ast.Name) for n in ast.walk(node))


def _common_subexpressions(items: list[tuple[str, ast.expr]]) -> list[str]:
    counts: dict[str, int] = {}
    for _, expr in items:
        for node in ast.walk(expr):
            if _candidate(node):
                key = ast.dump(node)
                counts[key] = counts.get(key, 0) + 1
    repeated = {k for k, c in counts.items() if c > 1}
    names: dict[str, str] = {}
    lines: list[str] = []

    class Hoist(ast.NodeTransformer):
        def visit(self, node):
            key = ast.dump(node) if _candidate(node) else None
            if key in repeated:
                if key not in names:
                    inner = self.generic_visit(node)  # its own repeated parts first
                    names[key] = f"_cse{len(names)}"
                    lines.append(f"{names[key]} = {ast.unparse(inner)}")
                return ast.Name(id=names[key], ctx=ast.Load())
            return self.generic_visit(node)

    for target, expr in items:
        body = Hoist().visit(expr)
        lines.append(f"{target} = {ast.unparse(body)}")
    return lines


_C_FUNCTIONS = {"exp": "exp", "log": "log", "log10": "log10", "expm1": "expm1", "log1p": "log1p", "sqrt": "sqrt",
                "sin": "sin", "cos": "cos", "tan": "tan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh",
                "arcsin": "asin", "arccos": "acos", "arctan": "atan", "abs": "fabs", "floor": "floor",
                "ceil": "ceil", "clip": "_clip", "exprel": "_exprel", "sign": "_sign", "int": "_int"}
_C_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_C_COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


class _CPrinter:
    """A rendered Brian2 expression (Python syntax) as C, operation by operation."""

    def __init__(self, names: Mapping[str, str], constants: Mapping[str, float], hoist: Any = None,
                 suffix: str = ""):
        self.names, self.constants, self.hoist, self.suffix = names, constants, hoist, suffix

    def __call__(self, node: ast.AST) -> str:
        if self.hoist is not None and isinstance(node, (ast.BinOp, ast.Call, ast.UnaryOp)):
            level = self.hoist.level(node)
            if level < 2:  # the same operations on the same values, once per run or step
                return self.hoist.lift(level, _CPrinter(self.names, self.constants, suffix=self.suffix)(node))
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise NotImplementedError(f"no C for {ast.unparse(node)!r}")
        return method(node)

    def _Expression(self, node):
        return self(node.body)

    def _Constant(self, node):
        if isinstance(node.value, bool):
            return "1" if node.value else "0"
        return repr(float(node.value)) + self.suffix

    def _Name(self, node):
        if node.id in self.names:
            return self.names[node.id]
        if node.id in self.constants:
            return repr(self.constants[node.id]) + self.suffix
        if node.id in ("True", "true"):
            return "1"
        if node.id in ("False", "false"):
            return "0"
        raise NotImplementedError(f"no C name for {node.id!r}")

    def _BinOp(self, node):
        a, b = self(node.left), self(node.right)
        if isinstance(node.op, ast.Pow):
            if isinstance(node.right, ast.Constant) and node.right.value == 2:
                return f"({a} * {a})"  # numpy and torch square by one multiplication
            return f"pow({a}, {b})"
        if isinstance(node.op, ast.Mod):
            return f"_mod({a}, {b})"
        if type(node.op) not in _C_BINOPS:
            raise NotImplementedError(f"no C for {ast.unparse(node)!r}")
        return f"({a} {_C_BINOPS[type(node.op)]} {b})"

    def _UnaryOp(self, node):
        if isinstance(node.op, ast.USub):
            return f"(-{self(node.operand)})"
        if isinstance(node.op, ast.UAdd):
            return self(node.operand)
        if isinstance(node.op, ast.Not):
            return f"(!{self(node.operand)})"
        raise NotImplementedError(f"no C for {ast.unparse(node)!r}")

    def _Compare(self, node):
        parts, left = [], self(node.left)
        for op, right in zip(node.ops, node.comparators):
            r = self(right)
            parts.append(f"({left} {_C_COMPARE[type(op)]} {r})")
            left = r
        return "(" + " && ".join(parts) + ")"

    def _BoolOp(self, node):
        op = " && " if isinstance(node.op, ast.And) else " || "
        return "(" + op.join(self(v) for v in node.values) + ")"

    def _Call(self, node):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name in ("logical_and", "logical_or"):
            op = " && " if name == "logical_and" else " || "
            return "(" + op.join(self(a) for a in node.args) + ")"
        if name == "logical_not":
            return f"(!{self(node.args[0])})"
        if name not in _C_FUNCTIONS:
            raise NotImplementedError(f"no C for the function {name!r}")
        function = "_expf32" if name == "exp" and self.suffix == "f" else _C_FUNCTIONS[name]  # vectorisable
        return f"{function}({', '.join(self(a) for a in node.args)})"


def _c_tree(expr: str, free_running: bool) -> ast.Expression:
    text = NumpyNodeRenderer().render_expr(expr).replace(" & ", " and ").replace(" | ", " or ")
    tree = ast.parse(text, mode="eval")
    return _IntOfNotRefractory().visit(tree) if free_running else tree


def c_expression(expr: str, names: Mapping[str, str], constants: Mapping[str, float],
                 free_running: bool = False, hoist: Any = None, suffix: str = "") -> str:
    """A Brian2 expression as C over ``names`` (identifier -> C expression), in Brian2's order.
    ``hoist`` (a :class:`~tidesim.codegen.c_hoist.Invariants`) lifts loop-invariant parts out of the
    loops; ``suffix`` ("f") marks number literals as float. Raises ``NotImplementedError`` for what has
    no C form here (random numbers, unknown functions)."""
    return _CPrinter(names, constants, hoist, suffix)(_c_tree(expr, free_running))


def c_expression_level(expr: str, hoist: Any, free_running: bool = False) -> int:
    """The innermost loop (``hoist``'s levels) a Brian2 expression depends on."""
    return hoist.level(_c_tree(expr, free_running).body)


def update_plan(code: Brian2Code, states: Sequence[str], flagged: Sequence[str]
                ) -> tuple[list[Brian2Statement], dict[str, str], set[str]]:
    """What one integration step runs: the statements that compute new state values, the name holding
    each state's new value, and the temporaries written only while not refractory."""
    finals: dict[str, str] = {}
    temps = []
    for st in code.update:
        if st.target in states and st.op == "=" and st.expr.isidentifier():
            finals[st.target] = st.expr
        elif st.target == "not_refractory":  # Brian2's own refractoriness test: tidesim's schedule provides it
            continue
        elif st.target not in states:
            temps.append(st)
        else:
            raise NotImplementedError(f"Brian2's update writes {st.target} {st.op} {st.expr}")
    body = needed(temps, set(finals.values()))
    free = {finals[v] for v in flagged if v in finals}
    for st in reversed(body):  # temporaries feeding only frozen-while-refractory states
        users = [u for u in body if st.target in identifiers(u.expr)]
        if users and all(u.target in free for u in users):
            free.add(st.target)
    return body, {s: finals.get(s, s) for s in states}, free


def torch_function(name: str, statements: Sequence[Brian2Statement], returns: Sequence[str],
                   constants: Mapping[str, float], order: Sequence[str], free_running: set[str] = frozenset(),
                   extra_lines: Sequence[str] = (), extra_reads: set[str] = frozenset(),
                   lines: Sequence[str] | None = None) -> FunctionSource:
    """A generated torch function running ``statements`` (printed by :func:`python_lines`, or given as
    ``lines``), then ``extra_lines``, and returning ``returns``; its arguments are the names read that
    no statement writes, in ``order``."""
    assigned: set[str] = set()
    reads: set[str] = set(extra_reads)
    for st in statements:
        reads |= identifiers(st.expr) - assigned
        if st.op != "=":
            reads.add(st.target)
        assigned.add(st.target)
    assigned |= {line.split("=", 1)[0].strip() for line in extra_lines}
    reads |= {r for r in returns if r not in assigned}
    used_constants = sorted(r for r in reads if r in constants and r not in order)
    args = [n for n in order if n in reads]
    missing = sorted(reads - set(args) - set(used_constants) - _NAMESPACE_NAMES)
    if missing:
        raise NotImplementedError(f"Brian2's {name} code reads {', '.join(missing)}, which tidesim does not "
                                  "provide")
    body = [f"{c} = {constants[c]!r}" for c in used_constants]
    body += (python_lines(statements, free_running) if lines is None else list(lines)) + list(extra_lines)
    return FunctionSource(name, tuple(args), tuple(body), tuple(returns))


#: Names the generated functions find in their namespace (see ``torch_source.make_namespace``).
_NAMESPACE_NAMES = {"True", "False", "true", "false"}


def reset_torch_lines(statements: Sequence[Brian2Statement], states: Sequence[str]) -> tuple[list[str], list[str]]:
    """Brian2's reset statements as torch lines, linear in the spike ``_s`` (0 or 1): a spiking neuron
    gets exactly Brian2's value (``x*0 + 1*new``, ``x + 1*d``), the others keep theirs, and the surrogate
    gradient flows through ``_s``. Returns the lines and the states written, in order."""
    lines, written = [], []
    for st in statements:
        rhs = python_expression(st.expr)
        if st.target not in states:  # a subexpression the reset reads
            lines.append(f"{st.target} = {rhs}")
            continue
        x = st.target
        if st.op == "=":
            lines.append(f"{x} = {x} * (1 - _s) + _s * ({rhs})")
        elif st.op in ("+=", "-="):
            lines.append(f"{x} = {x} {st.op[0]} _s * ({rhs})")
        else:  # *=, /=: the new value as Brian2 computes it, then the same blend as for '='
            lines.append(f"{x} = {x} * (1 - _s) + _s * ({x} {st.op[0]} ({rhs}))")
        if x not in written:
            written.append(x)
    return lines, written
