"""``SynapseModel``: synapses in Brian2's syntax, bound to a pre- and a post-synaptic model.

``model`` declares the synaptic variables: parameters (``w : volt``) and differential equations,
``(event-driven)`` (advanced analytically to the time of each pre- or post-synaptic event, as
Brian2 does: its ``linear`` solution with ``dt`` replaced by ``t - lastupdate``) or
``(clock-driven)`` (integrated every step, Brian2's state updater). ``on_pre`` says what a
pre-synaptic spike does (``v_post += w``, ``g_e += w``: a bare name that is not a synaptic variable
is the post-synaptic neuron's, as in Brian2), ``on_post`` what a post-synaptic spike does. Names
take the ``_pre``/``_post`` suffixes of Brian2. Unit-checked by Brian2 against both neuron models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

import sympy
import torch
from brian2 import Equations
from brian2.equations.equations import DIFFERENTIAL_EQUATION, SUBEXPRESSION
from brian2.equations.unitcheck import check_units_statements
from brian2.stateupdaters.base import StateUpdateMethod, UnsupportedEquationsException
from brian2.stateupdaters.exact import linear
from brian2.units.fundamentalunits import DimensionMismatchError, get_dimensions
from brian2.utils.stringtools import get_identifiers

from tidesim.codegen.torch_source import FunctionSource, Statement
from tidesim.core.equations import (
    SPECIAL_DIMS,
    check_identifiers,
    expression_dims,
    parse_equations,
    parse_statements,
    unit_variables,
)
from tidesim.core.errors import ModelError, UnitMismatchError, UnknownIdentifierError
from tidesim.core.units import dims_of, to_si

__all__ = ["SynapseModel", "BoundSynapse", "BoundStatement"]

_FLAGS = {"event-driven", "clock-driven", "constant"}


class SynapseModel:
    """A synapse type: synaptic variables and equations, and what pre- and post-synaptic spikes do.

    Parameters
    ----------
    model
        Brian2 equations of the synaptic variables, e.g. ``"w : volt"`` (one value per synapse) or
        ``"dApre/dt = -Apre/taupre : 1 (event-driven)"``.
    on_pre, on_post
        Brian2 statements run for each synapse when its pre- (post-) synaptic neuron spikes.
    parameters
        Default values of synaptic variables and constants used in the equations and statements
        (quantities or SI floats; a constant may be a torch scalar that requires grad).
    method
        State updater of ``(clock-driven)`` equations (Brian2's names; default: the first of exact,
        exponential_euler, euler that applies).
    """

    def __init__(self, model: str = "", on_pre: str | None = None, on_post: str | None = None,
                 parameters: Mapping[str, Any] | None = None, name: str = "synapse", method: str | None = None):
        self.name = name
        self.model = model
        eqs = parse_equations(model) if not isinstance(model, str) or model.strip() else None
        self.variable_dims: dict[str, Any] = {}
        self.event_driven: list[str] = []
        self.clock_driven: list[str] = []
        for eq in (eqs.values() if eqs is not None else []):
            bad = sorted(set(eq.flags) - _FLAGS)
            if eq.type == SUBEXPRESSION or bad:
                what = f"has flag{'s' if len(bad) > 1 else ''} {', '.join(bad)}" if bad else "is a subexpression"
                raise ModelError(f"synapse {name!r}: '{eq.varname}' {what}; synaptic models support parameters "
                                 "and (event-driven)/(clock-driven) differential equations in this version")
            self.variable_dims[eq.varname] = eq.dim
            if eq.type == DIFFERENTIAL_EQUATION:
                (self.event_driven if "event-driven" in eq.flags else self.clock_driven).append(eq.varname)
        self.parameters: dict[str, Any] = {}
        self.constant_dims: dict[str, Any] = {}
        for key, value in (parameters or {}).items():
            dim = self.variable_dims.get(key, _dims(value))
            self.parameters[key] = _value(value, f"synapse {name!r} parameter {key!r}", dim)
            if key not in self.variable_dims:
                self.constant_dims[key] = dim
        self.on_pre = on_pre or ""
        self.on_post = on_post or ""
        self.equations = eqs
        self.method = method
        self.event_update = self._event_update() if self.event_driven else None
        self.clock_update = self._clock_update() if self.clock_driven else None

    @property
    def variables(self) -> list[str]:
        """Names of the per-synapse variables (parameters and equation variables)."""
        return list(self.variable_dims)

    @property
    def plastic(self) -> bool:
        """Whether anything changes synaptic variables during a run."""
        return bool(self.event_driven or self.clock_driven or self.on_post.strip()) or any(
            st.target in self.variable_dims for st in parse_statements(self.on_pre, "on_pre"))

    def _check_ode(self, names: list[str]) -> None:
        """Synaptic equations may use synaptic variables, constants and t (not neuron variables:
        their values between events would depend on Brian2's object order)."""
        known = {**SPECIAL_DIMS, **self.constant_dims, **self.variable_dims}
        for var in names:
            eq = self.equations[var]
            where = f"synapse {self.name!r}: the equation for '{var}'"
            neuron = sorted(n for n in _identifiers(eq.expr.code) if n.endswith(("_pre", "_post")))
            if neuron:
                raise ModelError(f"{where} uses neuron variable '{neuron[0]}'; synaptic equations may use "
                                 "synaptic variables and constants only in this version")
            check_identifiers(eq.expr.code, known, where)
            got = expression_dims(eq.expr.code, unit_variables(known), where)
            expected = eq.dim / SPECIAL_DIMS["t"]
            if got is not expected:
                raise UnitMismatchError(f"{where} ('{eq.expr.code}') has the wrong unit: its right-hand side "
                                        f"must be the unit of '{var}' per second")

    def _event_update(self) -> FunctionSource:
        self._check_ode(self.event_driven)
        eqs = Equations([self.equations[v] for v in self.event_driven])
        try:
            code = linear(eqs, {})
        except UnsupportedEquationsException as exc:
            raise ModelError(f"synapse {self.name!r}: the (event-driven) equations cannot be solved "
                             f"analytically ({exc}); mark them (clock-driven)") from exc
        # Brian2's own substitution (SynapticPathway.update_abstract_code)
        code = re.sub(r"\bdt\b", "(t - lastupdate)", code)
        return self._update_source("event_update", code, self.event_driven)

    def _clock_update(self) -> FunctionSource:
        self._check_ode(self.clock_driven)
        eqs = Equations([self.equations[v] for v in self.clock_driven])
        reasons = []
        for method in ((self.method,) if self.method else ("exact", "exponential_euler", "euler")):
            try:
                code = StateUpdateMethod.apply_stateupdater(eqs, {}, method)
            except (UnsupportedEquationsException, ValueError, TypeError, KeyError) as exc:
                reasons.append(f"{method}: {exc}")
                continue
            self.method = method
            return self._update_source("clock_update", code, self.clock_driven)
        raise ModelError(f"synapse {self.name!r}: no method integrates the (clock-driven) equations:\n"
                         + "\n".join(reasons))

    @staticmethod
    def _update_source(name: str, code: str, states: list[str]) -> FunctionSource:
        statements = parse_statements(code, f"the {name}")
        finals = {st.target: st.expr for st in statements if st.target in states}
        body = [Statement(st.target, "=", st.expr) for st in statements if st.target not in states]
        used = set().union(*(st.expr.free_symbols for st in statements))
        args = sorted({s.name for s in used} - {st.target for st in body})
        return FunctionSource.from_statements(name, args, body, [str(finals[v]) for v in states])

    def bind(self, pre, post) -> "BoundSynapse":
        """Check the statements against the pre-/post-synaptic models (``NeuronModel``, or None
        for a spike source) and generate their torch functions."""
        return BoundSynapse(self, pre, post)

    def __repr__(self) -> str:
        return f"SynapseModel({self.name!r}: {self.model!r}; on_pre={self.on_pre!r}; on_post={self.on_post!r})"


def _identifiers(code: str) -> set[str]:
    return get_identifiers(code)


def _dims(value: Any):
    if isinstance(value, torch.Tensor):
        return get_dimensions(1)
    return dims_of(value)


def _value(value: Any, where: str, dim) -> Any:
    """SI float, or a torch tensor kept as it is (it may carry a gradient)."""
    if isinstance(value, torch.Tensor):
        return value
    return float(to_si(value, where, dim))


@dataclass
class BoundStatement:
    """One statement: ``target op expr``, target kind ``"synapse"`` or ``"post"``/``"pre"``."""

    target: str  # the variable's own name (suffix removed)
    kind: str
    op: str
    function: FunctionSource
    code: str

    def callable(self):
        """The compiled torch function (compiled once, on first use)."""
        return self.function.callable()


class BoundSynapse:
    """A SynapseModel resolved against its neuron models: each statement as a torch function of
    per-synapse values (synaptic variables, ``x_pre`` gathered by source, ``x_post`` by target)."""

    def __init__(self, syn: SynapseModel, pre, post):
        self.synapse = syn
        pre_names = _names(pre)
        post_names = _names(post)
        dims = {**SPECIAL_DIMS, **syn.constant_dims, **syn.variable_dims}
        if syn.event_driven:
            dims["lastupdate"] = SPECIAL_DIMS["t"]
        known = dict(dims)
        for name, dim in pre_names.items():
            known[f"{name}_pre"] = dim
        for name, dim in post_names.items():
            known[f"{name}_post"] = dim
            known.setdefault(name, dim)  # a bare name: the synapse's, else the post-synaptic neuron's
        self.known = known
        for role, names, model in (("post", post_names, post), ("pre", pre_names, pre)):
            clash = sorted(set(syn.variable_dims) & set(names))
            if clash:  # Brian2 refuses these too: a bare name would be ambiguous
                raise ModelError(f"synapse {syn.name!r}: synaptic variable '{clash[0]}' has the name of a "
                                 f"variable of the {role}-synaptic {getattr(model, 'name', 'group')}; rename it "
                                 f"(e.g. '{clash[0]}_syn')")
        self.pre_names, self.post_names = pre_names, post_names
        self.on_pre = self._bind(syn.on_pre, "on_pre", pre, post)
        self.on_post = self._bind(syn.on_post, "on_post", pre, post)

    def _bind(self, code: str, where_name: str, pre, post) -> list[BoundStatement]:
        if not code.strip():
            return []
        where = f"synapse {self.synapse.name!r} {where_name}"
        check_identifiers(code, self.known, where)
        try:
            check_units_statements(code.replace(";", "\n"), unit_variables(self.known))
        except DimensionMismatchError as exc:
            raise UnitMismatchError(f"{where}: {exc}") from exc
        out = []
        for st in parse_statements(code, where):
            target, kind = self._target(st.target, where, pre, post)
            if kind in ("post", "pre") and st.op not in ("+=", "-="):
                raise ModelError(f"{where}: '{st.target} {st.op} ...' changes a neuron variable with '{st.op}'; "
                                 "with several synapses per neuron only '+=' and '-=' are defined "
                                 "(the effects add)")
            expr = st.expr.xreplace({s: sympy.Symbol(self.qualified(s.name)) for s in st.expr.free_symbols})
            args = sorted({s.name for s in expr.free_symbols})
            fn = FunctionSource.from_statements(f"{where_name}_{st.target}", args, [Statement("_x", "=", expr)],
                                                ["_x"])
            out.append(BoundStatement(target, kind, st.op, fn, f"{st.target} {st.op} {st.expr}"))
        return out

    def qualified(self, name: str) -> str:
        """The name an expression symbol stands for: synaptic/constant names stay, bare
        post-synaptic names get their ``_post`` suffix."""
        if name in self.known and not name.endswith(("_pre", "_post")) and name in (
                *self.synapse.variable_dims, *self.synapse.constant_dims, *SPECIAL_DIMS, "lastupdate"):
            return name
        if name.endswith("_pre") or name.endswith("_post"):
            return name
        return f"{name}_post"

    def _target(self, name: str, where: str, pre, post) -> tuple[str, str]:
        if name in self.synapse.variable_dims:
            return name, "synapse"
        for suffix, model, kind in (("_post", post, "post"), ("_pre", pre, "pre")):
            if name.endswith(suffix):
                base = name[: -len(suffix)]
                states = list(getattr(model, "state_names", []))
                if base not in states:
                    who = getattr(model, "name", "the spike source")
                    raise UnknownIdentifierError(f"{where} assigns to '{name}', but {who} has no state "
                                                 f"variable '{base}'; its states are "
                                                 f"{', '.join(states) or 'none'}")
                if kind == "pre":
                    raise ModelError(f"{where}: changing the pre-synaptic neuron ('{name}') is not supported")
                return base, kind
        states = list(getattr(post, "state_names", []))
        if name in states:
            return name, "post"
        raise UnknownIdentifierError(f"{where} assigns to '{name}', which is neither a synaptic variable "
                                     f"({', '.join(self.synapse.variable_dims) or 'none'}) nor a state of the "
                                     f"post-synaptic {getattr(post, 'name', 'group')} "
                                     f"({', '.join(states) or 'none'})")


def _names(model) -> dict[str, Any]:
    """State and parameter names of a neuron model with their dimensions (none for a source)."""
    if model is None:
        return {}
    return {n: model.dims[n] for n in list(model.state_names) + list(model.parameter_names)}

