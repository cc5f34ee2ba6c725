"""``NeuronModel``: one symbolic neuron definition that both simulators run.

The model holds Brian2 equations (with every parameter declared, so that any parameter can be set
per neuron), its threshold, reset and refractoriness, default parameter values in SI, initial
values, and the integration method Brian2's state updaters chose. From these it generates the
torch functions the integrator calls (:attr:`NeuronModel.code` shows them).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Mapping

import sympy
import torch
from brian2 import Equations, second, volt
from brian2.equations.equations import (
    DIFFERENTIAL_EQUATION,
    PARAMETER,
    SUBEXPRESSION,
    SingleEquation,
)
from brian2.equations.refractory import add_refractoriness
from brian2.equations.unitcheck import check_units_statements
from brian2.parsing.expressions import is_boolean_expression
from brian2.stateupdaters.base import StateUpdateMethod, UnsupportedEquationsException
from brian2.units.fundamentalunits import DIMENSIONLESS, DimensionMismatchError, Quantity, get_unit
from brian2.utils.stringtools import get_identifiers

from tidesim.codegen.brian2_code import (
    Brian2Code,
    brian2_code,
    needed,
    reset_torch_lines,
    torch_function,
    update_plan,
)
from tidesim.codegen.torch_source import FunctionSource, Statement, print_expr
from tidesim.core.equations import (
    SPECIAL_DIMS,
    check_identifiers,
    expression_dims,
    parse_equations,
    parse_statements,
    to_sympy,
    unit_variables,
)
from tidesim.core.errors import ModelError, UnitMismatchError, UnknownIdentifierError
from tidesim.core.units import (
    dims_of,
    fmt,
    to_si,
    unit_name,
)

__all__ = ["NeuronModel"]

_AUTO_METHODS = ("exact", "euler", "heun")  # Brian2's NeuronGroup default, in its order
#: Brian2's exact (linear) integrator solves the system symbolically: 10 equations take seconds, 20 take
#: tens of seconds, 100 do not finish; beyond this size it is refused (or skipped by the default choice).
EXACT_MAX_STATES = 10


def _is_int_not_refractory(e: sympy.Basic) -> bool:
    return (getattr(e.func, "__name__", "") == "int_" and len(e.args) == 1
            and getattr(e.args[0], "name", None) == "not_refractory")


def _with_dims(value: Any, dim) -> Any:
    """A plain SI number as a Brian2 quantity of dimensions ``dim`` (tensors stay tensors)."""
    if isinstance(value, torch.Tensor) or dim is DIMENSIONLESS:
        return value
    return Quantity(value, dim=dim)


class NeuronModel:
    """A neuron model in Brian2's equation language, runnable in torch and in Brian2.

    Parameters
    ----------
    equations
        Brian2 equations, e.g. ``"dv/dt = (E_L - v + R*I)/tau_m : volt (unless refractory)"``.
    threshold
        Spike condition in Brian2 syntax (``"v > V_th"``), or ``None`` for no spikes.
    reset
        Statements run for spiking neurons (``"v = V_reset; w += b"``).
    refractory
        ``False``, a time (``2*ms`` or seconds), or a Brian2 expression: a time, or a boolean
        condition that keeps the neuron refractory while true (``"v > 0*mV"``).
    parameters
        Default values, by name: Brian2 quantities, or SI floats for parameters declared in the
        equations with their unit. A name not declared in the equations is declared here with
        the unit of its quantity.
    initial
        Initial state values: numbers (SI), quantities, or Brian2 expressions (``"E_L"``).
        States not given start at 0, as in Brian2.
    method
        Brian2 state updater name (``"exact"``, ``"euler"``, ``"exponential_euler"``, ``"rk2"``,
        ``"rk4"``, ``"heun"``, ``"milstein"``); ``None`` lets Brian2 choose as a NeuronGroup does.
    threshold_scale
        Scale (SI, in the unit of the threshold's left-hand side) by which the distance to
        threshold is divided before the surrogate gradient sees it; default 1 mV for voltages,
        else 1.
    name, reference
        Label and literature reference (the zoo fills them in).
    """

    def __init__(
        self,
        equations: str | Equations,
        threshold: str | None = None,
        reset: str | None = None,
        refractory: Any = False,
        parameters: Mapping[str, Any] | None = None,
        initial: Mapping[str, Any] | None = None,
        method: str | None = None,
        threshold_scale: float | None = None,
        name: str = "model",
        reference: str = "",
    ):
        self._spec = dict(
            equations=equations, threshold=threshold, reset=reset, refractory=refractory,
            parameters=dict(parameters or {}), initial=dict(initial or {}), method=method,
            threshold_scale=threshold_scale, name=name, reference=reference,
        )
        self.name = name
        self.reference = reference
        user_eqs = parse_equations(equations)
        self.equations = self._declare_parameters(user_eqs, parameters or {})
        eqs = self.equations
        self.state_names: list[str] = [e.varname for e in eqs.values() if e.type == DIFFERENTIAL_EQUATION]
        self.subexpression_names: list[str] = [e.varname for e in eqs.ordered if e.type == SUBEXPRESSION]
        self.parameter_names: list[str] = [e.varname for e in eqs.values() if e.type == PARAMETER]
        self.noise_names: list[str] = sorted(eqs.stochastic_variables)
        self.flagged: list[str] = [
            e.varname for e in eqs.values()
            if e.type == DIFFERENTIAL_EQUATION and "unless refractory" in e.flags
        ]
        self.dims = {e.varname: e.dim for e in eqs.values()}
        self.threshold = threshold
        self.reset = reset
        self.refractory = refractory
        self._known = set(self.dims) | set(SPECIAL_DIMS)
        self._variables = unit_variables({**self.dims, **SPECIAL_DIMS,
                                          **{x: (second ** -0.5).dim for x in self.noise_names}})
        self._check_equations()
        self.parameters: dict[str, Any] = {}
        for pname, value in (parameters or {}).items():
            self.parameters[pname] = to_si(value, pname, self.dims[pname])
        self.initial = self.check_initial(initial or {})
        self.refractory_kind, self._refractory_value = self._check_refractory(refractory)
        self.threshold_statements = self._check_threshold(threshold)
        self.reset_assignments = self._check_reset(reset)
        self.method = self._choose_method(method)
        default_scale = 1e-3 if self._threshold_lhs_dim() is volt.dim else 1.0
        self.threshold_scale = float(threshold_scale) if threshold_scale else default_scale
        if self.flagged and self.refractory_kind is None:
            raise ModelError(
                f"equations for {', '.join(self.flagged)} are marked '(unless refractory)' but no "
                "refractory period or condition was given"
            )

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _declare_parameters(eqs: Equations, parameters: Mapping[str, Any]) -> Equations:
        declared = {e.varname: e for e in eqs.values()}
        extra = []
        for pname, value in parameters.items():
            if pname in declared:
                kind = declared[pname].type
                if kind != PARAMETER:
                    what = "a state variable" if kind == DIFFERENTIAL_EQUATION else "a subexpression"
                    raise ModelError(f"'{pname}' is {what} of the equations, not a parameter; "
                                     "give state values in 'initial'")
                continue
            if not pname.isidentifier():
                raise ModelError(f"parameter name '{pname}' is not a valid identifier")
            extra.append(SingleEquation(PARAMETER, pname, dimensions=dims_of(value)))
        return Equations(list(eqs.values()) + extra) if extra else eqs

    def _check_equations(self) -> None:
        for eq in self.equations.values():
            if eq.type == PARAMETER:
                continue
            code = eq.expr.code
            where = f"the equation for '{eq.varname}'"
            check_identifiers(code, self._known | set(self.noise_names), where)
            expected = eq.dim / second.dim if eq.type == DIFFERENTIAL_EQUATION else eq.dim
            got = expression_dims(code, self._variables, where)
            if got is not expected:
                raise UnitMismatchError(
                    f"{where} ('{code}') has unit {unit_name(got)} but must have unit "
                    f"{unit_name(expected)}"
                )
        unused = set(self.parameter_names) - self._used_names()
        for pname in self._spec["parameters"]:
            if pname in unused:
                raise UnknownIdentifierError(
                    f"parameter '{pname}' is not used by the model's equations, threshold, reset, "
                    f"refractory or initial values; its names are {', '.join(sorted(self.dims))}"
                )

    def _used_names(self) -> set[str]:
        used: set[str] = set()
        for eq in self.equations.values():
            if eq.expr is not None:
                used |= get_identifiers(eq.expr.code)
        for code in (self._spec["threshold"], self._spec["reset"]):
            if code:
                used |= get_identifiers(code)
        if isinstance(self._spec["refractory"], str):
            used |= get_identifiers(self._spec["refractory"])
        for value in self._spec["initial"].values():
            if isinstance(value, str):
                used |= get_identifiers(value)
        return used

    def check_initial(self, initial: Mapping[str, Any]) -> dict[str, Any]:
        """Initial values checked against the model (state names, units of values and expressions);
        returns them in SI (expressions stay strings, tensors stay tensors)."""
        out = {}
        for sname, value in initial.items():
            if sname not in self.state_names:
                raise UnknownIdentifierError(
                    f"initial value given for '{sname}', which is not a state variable; "
                    f"the states are {', '.join(self.state_names)}"
                )
            if isinstance(value, str):
                where = f"the initial value of '{sname}'"
                check_identifiers(value, self._known, where)
                got = expression_dims(value, self._variables, where)
                if got is not self.dims[sname]:
                    raise UnitMismatchError(
                        f"{where} ('{value}') has unit {unit_name(got)} but '{sname}' has unit "
                        f"{unit_name(self.dims[sname])}"
                    )
                out[sname] = value
            else:
                out[sname] = to_si(value, f"initial value of '{sname}'", self.dims[sname])
        return out

    def _check_refractory(self, refractory: Any) -> tuple[str | None, Any]:
        if refractory is False or refractory is None:
            return None, None
        if isinstance(refractory, str):
            where = "the refractory expression"
            check_identifiers(refractory, self._known, where)
            got = expression_dims(refractory, self._variables, where)
            if got is second.dim:
                return "time_expr", self._expression_source("refractory_time", refractory)
            if got is DIMENSIONLESS and is_boolean_expression(refractory, self._variables):
                return "condition", self._expression_source("refractory_condition", refractory)
            raise UnitMismatchError(
                f"refractory '{refractory}' must be a time or a boolean condition, but has unit "
                f"{unit_name(got)}"
            )
        value = to_si(refractory, "refractory", second.dim)
        if isinstance(value, torch.Tensor) or not isinstance(value, (int, float)) or value < 0:
            raise ModelError(f"refractory must be a non-negative time, got {refractory!r}")
        return "time", float(value)

    def _check_threshold(self, threshold: str | None):
        if threshold is None:
            return None
        where = "the threshold"
        check_identifiers(threshold, self._known, where)
        expression_dims(threshold, self._variables, where)
        if not is_boolean_expression(threshold, self._variables):
            raise ModelError(f"threshold '{threshold}' is not a condition (e.g. 'v > V_th')")
        cond = self.substituted(threshold)
        rel = cond
        if isinstance(cond, sympy.And):  # take the surrogate from the first comparison
            rel = next((a for a in cond.args if isinstance(a, sympy.core.relational.Relational)), None)
        margin = sympy.Integer(0)
        self._threshold_lhs = None
        if isinstance(rel, (sympy.StrictGreaterThan, sympy.GreaterThan)):
            margin, self._threshold_lhs = rel.lhs - rel.rhs, str(rel.lhs)
        elif isinstance(rel, (sympy.StrictLessThan, sympy.LessThan)):
            margin, self._threshold_lhs = rel.rhs - rel.lhs, str(rel.rhs)
        return [Statement("_cond", "=", cond), Statement("_margin", "=", margin)]

    def _threshold_lhs_dim(self):
        lhs = getattr(self, "_threshold_lhs", None)
        if lhs is None:
            return DIMENSIONLESS
        try:
            return expression_dims(lhs, self._variables, "the threshold")
        except ModelError:
            return DIMENSIONLESS

    def _check_reset(self, reset: str | None):
        if not reset:
            return []
        where = "the reset"
        check_identifiers(reset, self._known, where)
        statements = parse_statements(reset, where)
        for st in statements:
            if st.target not in self.state_names:
                raise ModelError(
                    f"the reset assigns to '{st.target}', which is not a state variable; the "
                    f"states are {', '.join(self.state_names)}"
                )
        try:
            check_units_statements(reset.replace(";", "\n"), self._variables)
        except DimensionMismatchError as exc:
            raise UnitMismatchError(f"{where}: {exc}") from exc
        return statements

    def _choose_method(self, method: str | None) -> str:
        eqs = add_refractoriness(self.equations) if self.refractory_kind else self.equations
        candidates = _AUTO_METHODS if method is None else (method,)
        reasons = []
        for name in candidates:
            if name in ("exact", "linear") and len(self.state_names) > EXACT_MAX_STATES:
                reasons.append(f"{name}: {len(self.state_names)} differential equations are too many to integrate "
                               f"symbolically (at most {EXACT_MAX_STATES}; it would take minutes to hours); use "
                               "method='exponential_euler' or 'euler'")
                continue
            try:
                code = StateUpdateMethod.apply_stateupdater(eqs, {}, name)
            except (UnsupportedEquationsException, ValueError, TypeError, KeyError) as exc:
                reasons.append(f"{name}: {exc}")
                continue
            self._update_code = code
            return name
        raise ModelError("no integration method can integrate these equations:\n" + "\n".join(reasons))

    @cached_property
    def subexpression_values(self) -> dict:
        """Subexpressions as sympy expressions of states and parameters only."""
        eqs = {e.varname: e for e in self.equations.values()}
        values: dict = {}
        for name in self.subexpression_names:  # dependency order
            expr = to_sympy(eqs[name].expr.code)
            values[name] = expr.xreplace({sym: values[sym.name] for sym in expr.free_symbols
                                          if sym.name in values})
        return values

    def substituted(self, code: str) -> sympy.Expr:
        """A Brian2 expression with subexpressions replaced by their definitions."""
        expr = to_sympy(code)
        subs = {sym: self.subexpression_values[sym.name] for sym in expr.free_symbols
                if sym.name in self.subexpression_values}
        return expr.xreplace(subs) if subs else expr

    def _args_for(self, *codes: str) -> list[str]:
        names: set[str] = set()
        for code in codes:
            names |= get_identifiers(code)
        return self._ordered_args(names)

    @property
    def _arg_order(self) -> list[str]:
        """The order of generated functions' arguments: states, subexpressions, parameters, t, dt, i, N."""
        return self.state_names + self.subexpression_names + self.parameter_names + list(SPECIAL_DIMS)

    def _ordered_args(self, names: set[str]) -> list[str]:
        return [n for n in self._arg_order if n in names]

    # ------------------------------------------------------------------ generated functions
    @cached_property
    def update_statements(self) -> tuple[list[Statement], list[str]]:
        """Brian2's update code as statements, and the temporary holding each state's new value.

        ``int(not_refractory)`` appears as ``_int(not_refractory)`` where it still matters.
        """
        statements = parse_statements(self._update_code, f"the {self.method} update")
        finals = {st.target: str(st.expr) for st in statements if st.target in self.state_names}
        temps = [st for st in statements if st.target not in self.state_names]
        flag_only = {finals[v] for v in self.flagged}
        # Temporaries feeding only frozen-while-refractory states get int(not_refractory) = 1:
        # they are written only when not refractory, and this keeps exponential Euler's b/a
        # from dividing by zero during refractoriness (a NaN that would poison gradients).
        for st in reversed(temps):
            users = [u for u in temps if st.target in {s.name for s in u.expr.free_symbols}]
            if users and all(u.target in flag_only for u in users):
                flag_only.add(st.target)
        body = []
        for st in temps:
            expr = st.expr
            if st.target in flag_only:
                expr = expr.replace(_is_int_not_refractory, lambda e: sympy.Integer(1))
            body.append(Statement(st.target, "=", expr))
        return body, [finals[v] for v in self.state_names]

    @cached_property
    def brian2_code(self) -> Brian2Code:
        """Brian2's own statements for this model's update, threshold and reset (what its numpy and
        cython targets run), which the generated torch and C code print in Brian2's order."""
        refractory = (self.refractory_period * second if self.refractory_kind == "time"
                      else False if self.refractory_kind is None else self.refractory)
        return brian2_code(self.equations, self.threshold, self.reset, refractory, self.method)

    @cached_property
    def update_function(self) -> FunctionSource:
        """One integration step of all states: Brian2's statements for the update, in Brian2's order
        (its ``_lio_`` loop invariants included), printed for torch."""
        body, finals, free = update_plan(self.brian2_code, self.state_names, self.flagged)
        return torch_function("update", body, [finals[s] for s in self.state_names], self.brian2_code.constants,
                              self._arg_order + ["not_refractory"], free)

    @cached_property
    def threshold_function(self) -> FunctionSource | None:
        """``(condition, margin)``: the spike condition as Brian2 evaluates it, and the distance to
        threshold (for surrogate gradients)."""
        if self.threshold_statements is None:
            return None
        body = needed(self.brian2_code.threshold, {"_cond"})
        margin = print_expr(self.threshold_statements[1].expr)
        reads = {s.name for s in self.threshold_statements[1].expr.free_symbols if s.name != "_placeholder_arg"}
        return torch_function("threshold", body, ["_cond", "_margin"], self.brian2_code.constants,
                              self._arg_order + ["not_refractory"], extra_lines=[f"_margin = {margin}"],
                              extra_reads=reads)

    @cached_property
    def reset_statements(self) -> tuple[list[Statement], dict[str, str]]:
        """The reset, linear in the spike ``_s`` (exact for 0/1 spikes), in single-assignment form.

        Returns the statements and, per reset state, the name holding its value after the reset.
        """
        s = sympy.Symbol("_s")
        current: dict[str, sympy.Symbol] = {}
        body = []
        for k, st in enumerate(self.reset_assignments):
            expr = st.expr.xreplace({sym: self.subexpression_values[sym.name] for sym in st.expr.free_symbols
                                     if sym.name in self.subexpression_values})
            expr = expr.xreplace({sym: current[sym.name] for sym in expr.free_symbols if sym.name in current})
            x = current.get(st.target, sympy.Symbol(st.target))
            new = {
                "=": x * (1 - s) + s * expr,
                "+=": x + s * expr,
                "-=": x - s * expr,
                "*=": x * (1 - s) + s * (x * expr),
                "/=": x * (1 - s) + s * (x / expr),
            }[st.op]
            target = sympy.Symbol(f"_{st.target}_r{k}")
            body.append(Statement(target.name, "=", new))
            current[st.target] = target
        return body, {name: sym.name for name, sym in current.items()}

    @cached_property
    def reset_function(self) -> FunctionSource | None:
        """Reset of spiking neurons: Brian2's reset statements in Brian2's order, linear in the spike
        tensor ``_s`` (exact for 0/1 spikes, differentiable through ``_s``)."""
        if not self.reset_assignments:
            return None
        code = self.brian2_code
        lines, targets = reset_torch_lines(code.reset, self.state_names)
        fs = torch_function("reset", code.reset, targets, code.constants, self._arg_order + ["_s"],
                            extra_reads={"_s", *targets}, lines=lines)
        fs.targets = tuple(targets)
        return fs

    @cached_property
    def subexpression_function(self) -> FunctionSource | None:
        """Values of all subexpressions, in dependency order."""
        if not self.subexpression_names:
            return None
        eqs = {e.varname: e for e in self.equations.values()}
        stmts = [Statement(n, "=", to_sympy(eqs[n].expr.code)) for n in self.subexpression_names]
        names: set[str] = set()
        for n in self.subexpression_names:
            names |= get_identifiers(eqs[n].expr.code)
        args = [a for a in self._ordered_args(names) if a not in self.subexpression_names]
        return FunctionSource.from_statements("subexpressions", args, stmts, self.subexpression_names)

    def _expression_source(self, name: str, code: str) -> FunctionSource:
        expr = self.substituted(code)
        args = self._ordered_args({s.name for s in expr.free_symbols})
        return FunctionSource.from_statements(name, args, [Statement("_x", "=", expr)], ["_x"])

    def expression_function(self, code: str, name: str = "expression") -> FunctionSource:
        """A function evaluating one Brian2 expression over the model's names."""
        return self._expression_source(name, code)

    @property
    def code(self) -> str:
        """The generated torch source of this model (update, threshold, reset, ...)."""
        parts = [self.update_function, self.threshold_function, self.reset_function,
                 self.subexpression_function]
        if self.refractory_kind in ("time_expr", "condition"):
            parts.append(self._refractory_value)
        return "\n\n".join(p.source for p in parts if p is not None)

    # ------------------------------------------------------------------ public helpers
    @property
    def spec(self) -> dict[str, Any]:
        """The constructor arguments this model was built from (a copy: ``NeuronModel(**model.spec)``
        rebuilds it)."""
        return {k: dict(v) if isinstance(v, dict) else v for k, v in self._spec.items()}

    @property
    def stochastic(self) -> bool:
        """Whether runs draw random numbers: noise ``xi`` in the equations, or ``rand()``/``randn()`` in
        the equations, threshold (escape noise) or reset. Such runs are compared in distribution."""
        codes = [e.expr.code for e in self.equations.values() if e.expr is not None]
        codes += [c for c in (self.threshold, self.reset) if c]
        return bool(self.noise_names) or any(f in get_identifiers(c) for c in codes for f in ("rand", "randn"))

    @property
    def refractory_period(self) -> float | None:
        """The refractory period in seconds when it is one fixed time, else ``None``."""
        return self._refractory_value if self.refractory_kind == "time" else None

    @property
    def refractory_function(self) -> FunctionSource | None:
        """The generated function of a refractory expression (a time per neuron, or a condition)."""
        return self._refractory_value if self.refractory_kind in ("time_expr", "condition") else None

    @property
    def units(self) -> dict[str, Any]:
        """Brian2 unit of every state, subexpression and parameter."""
        return {n: (get_unit(d) if d is not DIMENSIONLESS else Quantity(1)) for n, d in self.dims.items()}

    def unit_of(self, name: str) -> str:
        """SI unit of ``name`` as text (``'V'``, ``'A'``, ``'1'``)."""
        return unit_name(self.dims[name])

    def with_params(self, **params: Any) -> "NeuronModel":
        """A copy of this model with new default parameter values (quantities or SI floats)."""
        unknown = [p for p in params if p not in self.parameter_names]
        if unknown:
            raise UnknownIdentifierError(
                f"{self.name} has no parameter {', '.join(repr(u) for u in unknown)}; its "
                f"parameters are {', '.join(self.parameter_names)}"
            )
        spec = dict(self._spec)
        # plain numbers are SI in the parameter's own unit
        params = {k: v if isinstance(v, (Quantity, str)) else _with_dims(v, self.dims[k])
                  for k, v in params.items()}
        spec["parameters"] = {**self._spec["parameters"], **params}
        return NeuronModel(**spec)

    def describe(self) -> list[dict[str, str]]:
        """Rows (name, kind, unit, default) for tables and the CLI."""
        rows = []
        for n in self.state_names:
            init = self.initial.get(n, 0.0)
            rows.append({"name": n, "kind": "state", "unit": self.unit_of(n),
                         "default": init if isinstance(init, str) else fmt(init, self.dims[n])})
        for n in self.parameter_names:
            value = self.parameters.get(n)
            shown = "(required)" if value is None else (
                fmt(value, self.dims[n]) if isinstance(value, (int, float)) else "per neuron")
            rows.append({"name": n, "kind": "parameter", "unit": self.unit_of(n), "default": shown})
        return rows

    def __repr__(self) -> str:
        return (f"NeuronModel(name={self.name!r}, states={self.state_names}, "
                f"parameters={self.parameter_names}, method={self.method!r})")
