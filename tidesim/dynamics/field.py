"""Symbolic core of :mod:`tidesim.dynamics`: the vector field of a model, its Jacobian, and the
elimination of states that fixed-point analysis builds on.

Everything is derived from the model's Brian2 equations: the right-hand sides ``d(state)/dt``
(subexpressions substituted, units replaced by SI numbers, noise terms set to zero, refractoriness
ignored) become sympy expressions; the Jacobian is their symbolic derivative. Numbers going in and
out are SI floats (volts, amperes, seconds; derivatives in SI units per second).

*Elimination*: every state whose equation ``d(state)/dt = 0`` is linear in that state (adaptation
``w = a (v - E_L)``, recovery ``u = b v``, gating ``m = alpha_m/(alpha_m + beta_m)``) is expressed
through the others, which usually leaves one equation in the first state (``v``):
:mod:`tidesim.dynamics.fixed` finds its roots, :mod:`tidesim.dynamics.excitability` follows the
branch of fixed points to the rheobase.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import sympy
from brian2 import volt
from brian2.units.fundamentalunits import DIMENSIONLESS

from tidesim.core.errors import MissingParameterError, ModelError, UnknownIdentifierError
from tidesim.core.model import NeuronModel
from tidesim.core.units import to_si, unit_name

__all__ = ["FixedPoint", "VectorField", "vector_field", "classify", "default_range", "solve_for", "resolve_values",
           "threshold_margin"]

#: Functions Brian2 equations may use that numpy lacks under the same name.
_NUMPY_FUNCS: dict[str, Callable] = {
    "exprel": lambda x: np.where(np.asarray(x) == 0, 1.0, np.expm1(x) / np.where(np.asarray(x) == 0, 1.0, x)),
    "clip": np.clip,
    "int_": lambda x: np.asarray(x, dtype=float),
}
#: Scan ranges (SI) for states of these dimensions when none is given.
_DEFAULT_RANGES = {volt.dim: (-0.25, 0.15)}
#: Small irrational shift of scan grids, so that they do not hit removable singularities exactly
#: (the Hodgkin-Huxley rate ``(v + 40 mV)/(1 - exp(...))`` at -40 mV evaluates to 0/0).
_GRID_SHIFT = 1.2345678901e-7


def _lambdify(args: Sequence[sympy.Symbol], expr: sympy.Expr) -> Callable[..., np.ndarray]:
    fn = sympy.lambdify(list(args), expr, modules=[_NUMPY_FUNCS, "numpy"])

    def evaluate(*xs: Any) -> np.ndarray:
        with np.errstate(all="ignore"):
            out = fn(*xs)
        shape = np.broadcast_shapes(*(np.shape(x) for x in xs)) if xs else ()
        return np.broadcast_to(np.asarray(out, dtype=float), shape).copy() if shape else np.asarray(
            out, dtype=float)

    return evaluate


def classify(eigenvalues: np.ndarray) -> str:
    """Stability type of a fixed point from the eigenvalues of its Jacobian (units 1/s).

    ``"stable node"`` / ``"stable focus"`` (all real parts negative; focus when some eigenvalues
    are complex), ``"unstable node"`` / ``"unstable focus"`` (all positive), ``"saddle"``
    (mixed signs) / ``"saddle-focus"`` (mixed signs with complex eigenvalues, in 3 or more
    dimensions), ``"non-hyperbolic"`` (a real part is zero to rounding: a bifurcation point).
    """
    eig = np.asarray(eigenvalues, dtype=complex)
    scale = float(np.max(np.abs(eig))) if eig.size else 0.0
    tol = 1e-9 * scale if scale > 0 else 1e-300
    re = eig.real
    if np.any(np.abs(re) <= tol):
        return "non-hyperbolic"
    complex_ = bool(np.any(np.abs(eig.imag) > tol))
    n_pos = int(np.sum(re > 0))
    if n_pos == 0:
        return "stable focus" if complex_ else "stable node"
    if n_pos == eig.size:
        return "unstable focus" if complex_ else "unstable node"
    return "saddle-focus" if complex_ else "saddle"


@dataclass(frozen=True)
class FixedPoint:
    """A fixed point (equilibrium) of a model's equations, with its linear stability.

    Attributes
    ----------
    state : dict[str, float]
        State values at the fixed point, SI (volts, amperes, ...), for every free state.
    jacobian : numpy.ndarray
        ``[d, d]`` matrix ``d f_i / d x_j`` (SI units of ``state_i`` per second per unit of ``state_j``),
        rows and columns in :attr:`states` order.
    eigenvalues : numpy.ndarray
        Complex eigenvalues of the Jacobian, in 1/s.
    stability : str
        ``"stable node"``, ``"stable focus"``, ``"unstable node"``, ``"unstable focus"``,
        ``"saddle"``, ``"saddle-focus"`` or ``"non-hyperbolic"`` (see :func:`classify`).
    units : dict[str, str]
        SI unit of each state (``'V'``, ``'A'``, ``'1'``).
    """

    state: dict[str, float]
    jacobian: np.ndarray
    eigenvalues: np.ndarray
    stability: str
    units: dict[str, str] = field(default_factory=dict)

    @property
    def states(self) -> list[str]:
        """State names, in the order of the Jacobian's rows."""
        return list(self.state)

    @property
    def stable(self) -> bool:
        """True when every eigenvalue has a negative real part (linearly stable)."""
        return self.stability.startswith("stable")

    def __getitem__(self, name: str) -> float:
        return self.state[name]

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v:.6g} {self.units.get(k, '')}".rstrip() for k, v in self.state.items())
        return f"FixedPoint({values}; {self.stability})"


# ---------------------------------------------------------------------- symbolic system
class _Symbolic:
    """The free states' right-hand sides with parameters kept as symbols (cached per model)."""

    def __init__(self, model: NeuronModel, fixed: Mapping[str, Any]):
        self.model = model
        eqs = {e.varname: e for e in model.equations.values()}
        sym = {n: sympy.Symbol(n, real=True) for n in model.dims}
        rhs = {}
        for s in model.state_names:
            expr = model.substituted(eqs[s].expr.code)
            noise = {x: sympy.Integer(0) for x in expr.free_symbols if x.name in model.noise_names}
            rhs[s] = expr.xreplace(noise) if noise else expr
        fixed_exprs = {}
        for s, value in fixed.items():
            if isinstance(value, str):
                fixed_exprs[s] = model.substituted(value)
            else:
                fixed_exprs[s] = sympy.Float(float(value))
        for _ in range(len(fixed_exprs) + 1):  # fixed expressions may use other fixed states
            fixed_exprs = {s: _subs_names(e, fixed_exprs) for s, e in fixed_exprs.items()}
        self.fixed_exprs = fixed_exprs
        self.states = [s for s in model.state_names if s not in fixed]
        self.state_syms = [sym[s] for s in self.states]
        self.rhs = {s: _subs_names(rhs[s], fixed_exprs) for s in self.states}
        self.rhs = {s: _rebind(e, sym) for s, e in self.rhs.items()}
        names = set()
        for e in list(self.rhs.values()) + list(fixed_exprs.values()):
            names |= {x.name for x in e.free_symbols}
        if names & {"t", "i", "N", "dt"}:
            raise ModelError(f"{model.name}: dynamics analysis needs autonomous equations; they use "
                             f"{', '.join(sorted(names & {'t', 'i', 'N', 'dt'}))}")
        self.param_names = [p for p in model.parameter_names if p in names]
        self.param_syms = [sym[p] for p in self.param_names]
        self.args = self.state_syms + self.param_syms
        self.f = [_lambdify(self.args, self.rhs[s]) for s in self.states]
        self.jac_exprs = [[sympy.diff(self.rhs[si], sj) for sj in self.state_syms] for si in self.states]
        self.jac = [[_lambdify(self.args, e) for e in row] for row in self.jac_exprs]
        self._reduction = None

    def jacobian(self, point: Sequence[Any], params: Sequence[float]) -> np.ndarray:
        """``[..., d, d]`` Jacobian at (broadcastable) points."""
        args = list(point) + list(params)
        rows = [np.stack(np.broadcast_arrays(*[fn(*args) for fn in row]), axis=-1) for row in self.jac]
        return np.stack(rows, axis=-2)

    def reduction(self) -> "_Reduction":
        """States eliminated by solving their own equation (computed once)."""
        if self._reduction is None:
            self._reduction = _Reduction(self)
        return self._reduction


def _subs_names(expr: sympy.Expr, values: Mapping[str, sympy.Expr]) -> sympy.Expr:
    subs = {x: values[x.name] for x in expr.free_symbols if x.name in values}
    return expr.xreplace(subs) if subs else expr


def _rebind(expr: sympy.Expr, sym: Mapping[str, sympy.Symbol]) -> sympy.Expr:
    subs = {x: sym[x.name] for x in expr.free_symbols if x.name in sym and x is not sym[x.name]}
    return expr.xreplace(subs) if subs else expr


class _Reduction:
    """Eliminate states whose own equation sympy solves uniquely; what is left are the primaries."""

    def __init__(self, system: _Symbolic):
        self.system = system
        exprs = dict(zip(system.states, (system.rhs[s] for s in system.states)))
        remaining = list(system.states)
        order: list[tuple[str, sympy.Expr]] = []
        progress = True
        while progress and len(remaining) > 1:
            progress = False
            for s in remaining[1:]:
                solution = _unique_solution(exprs[s], _symbol(system, s))
                if solution is None:
                    continue
                order.append((s, solution))
                remaining.remove(s)
                del exprs[s]
                exprs = {k: e.xreplace({_symbol(system, s): solution}) for k, e in exprs.items()}
                progress = True
                break
        self.primaries = remaining
        self.reduced = exprs  # primary -> equation in primaries only
        full: dict[str, sympy.Expr] = {}
        for s, sol in reversed(order):  # the last eliminated depends on primaries only
            full[s] = sol.xreplace({_symbol(system, k): v for k, v in full.items()})
        self.eliminated = {s: full[s] for s, _ in order}
        args = [_symbol(system, p) for p in self.primaries] + system.param_syms
        self.args = args
        self.g = [_lambdify(args, exprs[p]) for p in self.primaries]
        self.back = {s: _lambdify(args, e) for s, e in self.eliminated.items()}

    def full_state(self, primaries: Sequence[Any], params: Sequence[float]) -> dict[str, Any]:
        """Every free state's value from the primaries' values."""
        out = dict(zip(self.primaries, primaries))
        for s, fn in self.back.items():
            out[s] = fn(*primaries, *params)
        return {s: out[s] for s in self.system.states}


def _symbol(system: _Symbolic, name: str) -> sympy.Symbol:
    return system.state_syms[system.states.index(name)]


def solve_for(expr: sympy.Expr, x: sympy.Symbol) -> list[sympy.Expr] | None:
    """Solutions of ``expr = 0`` for ``x`` when cheap and explicit: linear (no call to sympy.solve)
    or polynomial of degree 2 in ``x``; ``None`` otherwise (the caller then works numerically)."""
    if x not in expr.free_symbols:
        return None
    slope = sympy.diff(expr, x)
    if x not in slope.free_symbols:
        return [-expr.xreplace({x: sympy.Integer(0)}) / slope] if slope != 0 else None
    try:
        num = sympy.together(expr).as_numer_denom()[0]
        poly = sympy.Poly(sympy.expand(num), x)
    except (sympy.PolynomialError, sympy.GeneratorsNeeded, ValueError, TypeError, RecursionError):
        return None
    if poly.degree() != 2 or any(x in c.free_symbols for c in poly.all_coeffs()):
        return None
    a, b, c = poly.all_coeffs()
    disc = sympy.sqrt(b**2 - 4 * a * c)
    return [(-b - disc) / (2 * a), (-b + disc) / (2 * a)]


def _unique_solution(expr: sympy.Expr, x: sympy.Symbol) -> sympy.Expr | None:
    sols = solve_for(expr, x)
    if sols is None or len(sols) != 1:
        return None
    return sols[0]


def _symbolic(model: NeuronModel, fixed: Mapping[str, Any]) -> _Symbolic:
    """The symbolic system of ``model`` with ``fixed`` states, built once per model and ``fixed``
    (kept on the model object, so that it goes away with it)."""
    key = tuple(sorted((k, v if isinstance(v, str) else float(v)) for k, v in fixed.items()))
    per_model = model.__dict__.setdefault("_dynamics_cache", {})
    if key not in per_model:
        per_model[key] = _Symbolic(model, dict(key))
    return per_model[key]


# ---------------------------------------------------------------------- values and the public field
def _scalar(value: Any, name: str, dim) -> float:
    si = to_si(value, name, dim)
    try:
        arr = np.asarray(si.detach().cpu() if hasattr(si, "detach") else si, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"'{name}' must be a number, got {value!r}") from exc
    if arr.size != 1:
        raise ModelError(f"dynamics analysis needs one value of '{name}', got {arr.size} values; "
                         "loop over them or use bifurcation_scan")
    return float(arr.reshape(()))


def resolve_values(model: NeuronModel, params: Mapping[str, Any] | None = None,
                   values: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Parameter values (SI floats): the model's defaults, then ``params``, then ``values``."""
    merged = {**(params or {}), **(values or {})}
    unknown = [k for k in merged if k not in model.parameter_names]
    if unknown:
        raise UnknownIdentifierError(
            f"{model.name} has no parameter {', '.join(map(repr, unknown))}; its parameters are "
            f"{', '.join(model.parameter_names)} (states are set with fixed=...)")
    out = {k: v for k, v in model.parameters.items() if not isinstance(v, str)}
    for k, v in merged.items():
        out[k] = _scalar(v, k, model.dims[k])
    return {k: _scalar(v, k, model.dims[k]) for k, v in out.items()}


def _check_fixed(model: NeuronModel, fixed: Mapping[str, Any] | None) -> dict[str, Any]:
    out = {}
    for s, v in (fixed or {}).items():
        if s not in model.state_names:
            raise UnknownIdentifierError(f"fixed={{{s!r}: ...}}: '{s}' is not a state of {model.name}; its "
                                         f"states are {', '.join(model.state_names)}")
        out[s] = v if isinstance(v, str) else _scalar(v, f"fixed value of '{s}'", model.dims[s])
    return out


def default_range(model: NeuronModel, state: str,
                  values: Mapping[str, float] | None = None) -> tuple[float, float]:
    """Scan range (SI) of ``state``: -250..150 mV for voltages, -0.5..1.5 for dimensionless states,
    else +-3 times the largest parameter of the same unit."""
    dim = model.dims[state]
    if dim in _DEFAULT_RANGES:
        return _DEFAULT_RANGES[dim]
    if dim is DIMENSIONLESS:
        return (-0.5, 1.5)
    same = [abs(v) for k, v in (values or model.parameters).items()
            if model.dims.get(k) is dim and isinstance(v, (int, float)) and v != 0]
    scale = 3 * max(same) if same else 1.0
    return (-scale, scale)


def _ranges(model: NeuronModel, states: Sequence[str], ranges: Mapping[str, Any] | None,
            values: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    out = {}
    for s in states:
        if ranges and s in ranges:
            lo, hi = (_scalar(v, f"range of '{s}'", model.dims[s]) for v in ranges[s])
            if not lo < hi:
                raise ModelError(f"range of '{s}' must be (low, high), got {ranges[s]!r}")
            out[s] = (lo, hi)
        else:
            out[s] = default_range(model, s, values)
    return out



class VectorField:
    """``d(state)/dt`` of a model's free states at fixed parameter values (SI in, SI/s out).

    Built by :func:`vector_field`. Call it with one array per free state (broadcast together);
    it returns one array of derivatives per state.

    Attributes
    ----------
    model : NeuronModel
    states : list[str]
        Free states, in the model's order (the plane's x and y).
    values : dict[str, float]
        Parameter values used (SI).
    fixed : dict
        States held fixed: SI numbers or Brian2 expressions of the other states and parameters.
    expressions : dict[str, sympy.Expr]
        ``d(state)/dt`` with the parameter values substituted (SI units per second).
    """

    def __init__(self, model: NeuronModel, values: Mapping[str, float], fixed: Mapping[str, Any]):
        self.model = model
        self.fixed = dict(fixed)
        self.system = _symbolic(model, self.fixed)
        self.states = list(self.system.states)
        missing = [p for p in self.system.param_names if p not in values]
        if missing:
            raise MissingParameterError(f"{model.name}: no value for parameter {', '.join(map(repr, missing))}; "
                                        "give it in params= or as a keyword")
        self.values = dict(values)
        self.params = [self.values[p] for p in self.system.param_names]
        subs = dict(zip(self.system.param_syms, map(sympy.Float, self.params)))
        self.expressions = {s: self.system.rhs[s].xreplace(subs) for s in self.states}

    @property
    def units(self) -> dict[str, str]:
        """SI unit of each free state."""
        return {s: unit_name(self.model.dims[s]) for s in self.states}

    def __call__(self, *xs: Any) -> tuple[np.ndarray, ...]:
        if len(xs) != len(self.states):
            raise ModelError(f"the vector field takes {len(self.states)} arrays ({', '.join(self.states)}), "
                             f"got {len(xs)}")
        xs = tuple(np.asarray(x, dtype=float) for x in xs)
        return tuple(f(*xs, *self.params) for f in self.system.f)

    def jacobian(self, state: Mapping[str, float] | Sequence[float]) -> np.ndarray:
        """``[d, d]`` Jacobian ``d f_i/d x_j`` at one point (from sympy's derivatives)."""
        point = [state[s] for s in self.states] if isinstance(state, Mapping) else list(state)
        return self.system.jacobian([np.asarray(p, dtype=float) for p in point], self.params)

    def grid(self, xlim: tuple[float, float], ylim: tuple[float, float] | None = None,
             n: int = 25) -> tuple[np.ndarray, ...]:
        """The field on an ``n``-point (per axis) grid: ``(X, U)`` in 1-D, ``(X, Y, U, V)`` in 2-D."""
        x = np.linspace(*xlim, n)
        if len(self.states) == 1:
            return x, self(x)[0]
        if ylim is None:
            raise ModelError("a 2-D vector field grid needs ylim")
        X, Y = np.meshgrid(x, np.linspace(*ylim, n))
        U, V = self(X, Y)
        return X, Y, U, V

    def fixed_point(self, state: Mapping[str, float]) -> FixedPoint:
        """A :class:`FixedPoint` at ``state`` (assumed to be one): Jacobian, eigenvalues, type."""
        point = {s: float(state[s]) for s in self.states}
        jac = np.asarray(self.jacobian(point), dtype=float)
        eig = np.linalg.eigvals(jac)
        return FixedPoint(point, jac, eig, classify(eig), self.units)

    def describe(self) -> str:
        """The equations as text, one ``d(state)/dt = ...`` a line (SI)."""
        return "\n".join(f"d{s}/dt = {e}" for s, e in self.expressions.items())

    def __repr__(self) -> str:
        fixed = f", fixed={self.fixed}" if self.fixed else ""
        return f"VectorField({self.model.name}, states={self.states}{fixed})"


def _field(model: NeuronModel, params: Mapping[str, Any] | None, values: Mapping[str, Any] | None,
           fixed: Mapping[str, Any] | None, max_states: int | None = 2) -> VectorField:
    if not isinstance(model, NeuronModel):
        raise TypeError(f"expected a NeuronModel, got {type(model).__name__}")
    fixed = _check_fixed(model, fixed)
    free = [s for s in model.state_names if s not in fixed]
    if not free:
        raise ModelError(f"every state of {model.name} is fixed; leave one or two free")
    if max_states is not None and len(free) > max_states:
        extra = free[max_states:]
        raise ModelError(
            f"{model.name} has {len(free)} free state variables ({', '.join(free)}); phase-plane analysis "
            f"needs 1 or 2. Fix the others, e.g. fixed={{{', '.join(repr(s) + ': ...' for s in extra)}}} "
            "with values or Brian2 expressions of the remaining states")
    return VectorField(model, resolve_values(model, params, values), fixed)


def vector_field(model: NeuronModel, params: Mapping[str, Any] | None = None, *,
                 fixed: Mapping[str, Any] | None = None, **values: Any) -> VectorField:
    """The vector field ``d(state)/dt`` of a 1-D or 2-D model, from its symbolic equations.

    Parameters
    ----------
    model
        A :class:`~tidesim.NeuronModel` with 1 or 2 state variables (after ``fixed``).
    params, **values
        Parameter values overriding the model's defaults: SI floats or Brian2 quantities, e.g.
        ``I=0.5e-9`` (amperes) or ``I=500*pA``.
    fixed
        States held constant, to look at a plane of a larger model: SI numbers, quantities, or
        Brian2 expressions of the free states and parameters (``{"m": "alpha_m/(alpha_m + beta_m)"}``).

    Returns
    -------
    VectorField
        Callable on arrays of the free states (SI), returning their derivatives (SI per second).
    """
    return _field(model, params, values, fixed)


def threshold_margin(model: NeuronModel, system: _Symbolic) -> sympy.Expr | None:
    """``lhs - rhs`` of a ``>``/``>=`` threshold (reversed for ``<``), over states and parameters."""
    if not model.threshold:
        return None
    rel = model.substituted(model.threshold)
    if isinstance(rel, (sympy.StrictGreaterThan, sympy.GreaterThan)):
        margin = rel.lhs - rel.rhs
    elif isinstance(rel, (sympy.StrictLessThan, sympy.LessThan)):
        margin = rel.rhs - rel.lhs
    else:
        return None
    margin = _subs_names(margin, system.fixed_exprs)
    allowed = set(system.states) | set(model.parameter_names)
    if any(s.name not in allowed for s in margin.free_symbols):
        return None
    return margin
