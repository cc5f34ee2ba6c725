"""Loop-invariant parts of generated C, computed once where they stop varying.

A kernel's neuron loop evaluates Brian2's statements for every neuron and step. Parts that read only
scalar parameters, ``dt`` and unit constants (``exp(-dt/tau_w)``, ``VT + 5*DeltaT``) are the same for
every neuron and step; parts that read ``t`` or time-varying parameters are the same for every neuron
of a step. :class:`Invariants` lifts each largest such part out of the loops it does not depend on.
The lifted expression is printed exactly as it was (same operations, same order, same operands), so
the bits are unchanged: this is Brian2's own loop-invariant optimisation, done for the parameter
layout of the run at hand. :class:`Invariants` works on Brian2's statements (the forward kernels),
:class:`SymbolicInvariants` on sympy's (the adjoint kernel's derivatives).
"""

from __future__ import annotations

import ast
from typing import Any, Mapping

import sympy

__all__ = ["RUN", "STEP", "NEURON", "Invariants", "SymbolicInvariants", "name_levels"]

#: Where a value can be computed: once per run, once per step, or per neuron and step.
RUN, STEP, NEURON = 0, 1, 2

_NO_HOIST = ("rand", "randn")


def name_levels(parameters: Mapping[str, str], constants: Mapping[str, float]) -> dict[str, int]:
    """The level of each name a model's statements read, from its parameters' layouts (``"scalar"``,
    ``"time"``, ``"neuron"``, ``"time_neuron"``) and unit constants; names absent here (states, ``i``,
    ``not_refractory``) vary per neuron."""
    level = {"scalar": RUN, "time": STEP, "neuron": NEURON, "time_neuron": NEURON}
    out = {name: RUN for name in constants}
    out.update({"dt": RUN, "N": RUN, "t": STEP, "True": RUN, "False": RUN, "true": RUN, "false": RUN})
    out.update({p: level[mode] for p, mode in parameters.items()})
    return out


class Invariants:
    """Collects the lifted lines of one kernel, per level, without repeats.

    ``levels`` maps identifiers to :data:`RUN`, :data:`STEP` or :data:`NEURON`; a statement whose whole
    right-hand side is invariant is lifted with :meth:`statement`, which also records its target's level.
    """

    def __init__(self, levels: Mapping[str, int], real: str = "double"):
        self.levels = dict(levels)
        self.real = real
        self.lines: dict[int, list[str]] = {RUN: [], STEP: []}
        self._seen: dict[str, str] = {}

    def level(self, node: ast.AST) -> int:
        """The innermost loop ``node`` depends on."""
        out = RUN
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in _NO_HOIST:
                return NEURON
            if isinstance(sub, ast.Name) and not _is_called(node, sub):
                out = max(out, self.levels.get(sub.id, NEURON))
        return out

    def lift(self, level: int, text: str) -> str:
        """The C name of the value ``text`` computed at ``level`` (once for equal texts)."""
        key = f"{level}:{text}"
        if key not in self._seen:
            name = f"H{len(self._seen)}"
            self._seen[key] = name
            self.lines[level].append(f"const {self.real} {name} = {text};")
        return self._seen[key]

    def statement(self, level: int, target: str, c_name: str, text: str) -> None:
        """Lift ``c_name = text`` (the statement for ``target``) to ``level``."""
        self.lines[level].append(f"const {self.real} {c_name} = {text};")
        self.levels[target] = level


class SymbolicInvariants:
    """:class:`Invariants` for sympy statements (the adjoint kernel's): parts computed once per run
    (level 0) or per step (level 1) instead of per neuron. A statement whose right-hand side is invariant
    moves whole (and its target becomes invariant for the statements after it), else its largest
    invariant parts do."""

    def __init__(self, levels: dict[str, int], real: str = "double"):
        self.levels, self.real = dict(levels), real
        self.lines: dict[int, list[str]] = {0: [], 1: []}
        self._seen: dict[tuple[int, sympy.Expr], sympy.Symbol] = {}

    def level(self, expr: sympy.Expr) -> int:
        return max((self.levels.get(sym.name, 2) for sym in expr.free_symbols), default=0)

    def statement(self, target: str, cname: str, expr: sympy.Expr, printer: Any) -> bool:
        """Lift ``cname = expr`` whole if it is invariant; whether it was."""
        lvl = self.level(expr)
        if lvl == 2:
            return False
        self.lines[lvl].append(f"const {self.real} {cname} = {printer.doprint(expr)};")
        self.levels[target] = lvl
        return True

    def parts(self, expr: sympy.Expr, names: dict[str, str], printer: Any) -> sympy.Expr:
        """``expr`` with its largest invariant sub-expressions replaced by lifted names."""
        if expr.is_Atom or not isinstance(expr, sympy.Basic) or not expr.args:
            return expr
        lvl = self.level(expr)
        if lvl < 2 and expr.free_symbols:
            if (lvl, expr) not in self._seen:
                sym = sympy.Symbol(f"HA{len(self._seen)}")
                self.lines[lvl].append(f"const {self.real} {sym.name} = {printer.doprint(expr)};")
                names[sym.name] = sym.name
                self._seen[(lvl, expr)] = sym
            return self._seen[(lvl, expr)]
        return expr.func(*[self.parts(a, names, printer) for a in expr.args])


def _is_called(tree: ast.AST, name: ast.Name) -> bool:
    """Whether ``name`` is the function of a call in ``tree`` (``exp`` in ``exp(x)``)."""
    return any(isinstance(n, ast.Call) and n.func is name for n in ast.walk(tree))
