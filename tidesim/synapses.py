"""``SynapseModel``: synapses in Brian2's syntax, bound to a pre- and a post-synaptic model.

``model`` declares the synaptic variables (``w : volt``), ``on_pre`` says what a pre-synaptic
spike does (``v_post += w``, ``g_e += w``: a bare name that is not a synaptic variable is the
post-synaptic neuron's, as in Brian2), ``on_post`` what a post-synaptic spike does. Names take the
``_pre``/``_post`` suffixes of Brian2. Unit-checked by Brian2 against both neuron models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import sympy
import torch
from brian2.equations.equations import DIFFERENTIAL_EQUATION, PARAMETER, SUBEXPRESSION
from brian2.equations.unitcheck import check_units_statements
from brian2.units.fundamentalunits import DimensionMismatchError

from .codegen import FunctionSource, Statement
from .equations import SPECIAL_DIMS, check_identifiers, parse_equations, parse_statements, unit_variables
from .errors import ModelError, UnitMismatchError, UnknownIdentifierError
from .units import dims_of, to_si

__all__ = ["SynapseModel", "BoundSynapse", "BoundStatement"]


class SynapseModel:
    """A synapse type: synaptic variables, and what pre- and post-synaptic spikes do.

    Parameters
    ----------
    model
        Brian2 equations of the synaptic variables, e.g. ``"w : volt"`` (one value per synapse).
    on_pre, on_post
        Brian2 statements run for each synapse when its pre- (post-) synaptic neuron spikes.
    parameters
        Default values of synaptic variables and constants used in the statements (quantities or
        SI floats).
    """

    def __init__(self, model: str = "", on_pre: str | None = None, on_post: str | None = None,
                 parameters: Mapping[str, Any] | None = None, name: str = "synapse"):
        self.name = name
        self.model = model
        eqs = parse_equations(model) if model.strip() else None
        self.variable_dims: dict[str, Any] = {}
        if eqs is not None:
            for eq in eqs.values():
                if eq.type in (DIFFERENTIAL_EQUATION, SUBEXPRESSION) or eq.flags:
                    kind = "differential equation" if eq.type == DIFFERENTIAL_EQUATION else "subexpression"
                    raise ModelError(
                        f"synapse {name!r}: '{eq.varname}' is a {kind}"
                        + (f" with flags {', '.join(eq.flags)}" if eq.flags else "")
                        + "; synaptic variables are parameters per synapse (e.g. 'w : volt') in this version")
                if eq.type == PARAMETER:
                    self.variable_dims[eq.varname] = eq.dim
        self.parameters: dict[str, float] = {}
        self.constant_dims: dict[str, Any] = {}
        for key, value in (parameters or {}).items():
            dim = self.variable_dims.get(key, dims_of(value))
            self.parameters[key] = float(to_si(value, f"synapse {name!r} parameter {key!r}", dim))
            if key not in self.variable_dims:
                self.constant_dims[key] = dim
        self.on_pre = on_pre or ""
        self.on_post = on_post or ""

    @property
    def variables(self) -> list[str]:
        """Names of the per-synapse variables."""
        return list(self.variable_dims)

    def bind(self, pre, post) -> "BoundSynapse":
        """Check the statements against the pre-/post-synaptic models (``NeuronModel``, or None
        for a spike source) and generate their torch functions."""
        return BoundSynapse(self, pre, post)

    def __repr__(self) -> str:
        return f"SynapseModel({self.name!r}: {self.model!r}; on_pre={self.on_pre!r})"


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
        if getattr(self, "_fn", None) is None:
            from .codegen import make_namespace

            fs = self.function
            self._fn = fs.bind(fs.compile(), make_namespace(torch.float64, torch.device("cpu"), (1,)))
        return self._fn


class BoundSynapse:
    """A SynapseModel resolved against its neuron models: each statement as a torch function of
    per-synapse values (synaptic variables, ``x_pre`` gathered by source, ``x_post`` by target)."""

    def __init__(self, syn: SynapseModel, pre, post):
        self.synapse = syn
        pre_names = _names(pre)
        post_names = _names(post)
        dims = {**SPECIAL_DIMS, **syn.constant_dims, **syn.variable_dims}
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
            expr = st.expr.xreplace({s: sympy.Symbol(self._qualified(s.name)) for s in st.expr.free_symbols})
            args = sorted({s.name for s in expr.free_symbols})
            fn = FunctionSource.from_statements(f"{where_name}_{st.target}", args, [Statement("_x", "=", expr)],
                                                ["_x"])
            out.append(BoundStatement(target, kind, st.op, fn, f"{st.target} {st.op} {st.expr}"))
        return out

    def _qualified(self, name: str) -> str:
        """The name an expression symbol stands for: synaptic/constant names stay, bare
        post-synaptic names get their ``_post`` suffix."""
        if name in self.synapse.variable_dims or name in self.synapse.constant_dims or name in SPECIAL_DIMS:
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

