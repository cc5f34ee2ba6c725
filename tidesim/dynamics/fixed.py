"""Fixed points and nullclines of :mod:`tidesim.dynamics` (root finding on the symbolic field).

Fixed points: the states that :mod:`tidesim.dynamics.field` eliminates are expressed through the
first state (usually ``v``); the one equation left is scanned for sign changes over a range, each
bracket refined by Brent's method, and near-tangencies (two roots about to merge in a saddle-node)
are checked by minimising ``|g|`` between grid points. Systems that reduce to two equations are
solved on a 2-D grid refined by ``scipy.optimize.root``.

Nullclines: analytic where ``d(state)/dt = 0`` is linear or quadratic in one of the plane's
states, else the zero contour of the derivative on a grid (contourpy, matplotlib's engine).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import sympy
from scipy import optimize

from tidesim.core.errors import ModelError
from tidesim.core.model import NeuronModel
from tidesim.core.units import fmt
from tidesim.dynamics.field import (
    _GRID_SHIFT,
    _NUMPY_FUNCS,
    FixedPoint,
    VectorField,
    _field,
    _ranges,
    solve_for,
)

__all__ = ["Nullcline", "fixed_points", "find_fixed_points", "nullclines", "nullcline_curves", "roots_1d",
           "describe_point"]


@dataclass
class Nullcline:
    """The curve(s) where ``d(state)/dt = 0`` in a 2-D phase plane.

    Attributes
    ----------
    state : str
        The state whose derivative vanishes on the curve (``"v"`` for the v-nullcline).
    axes : tuple[str, str]
        The plane's (x, y) states.
    curves : list[numpy.ndarray]
        Polylines ``[k, 2]`` of (x, y) points, SI; NaN rows separate branches.
    method : str
        ``"analytic"`` (sympy solved the equation for one state) or ``"numeric"`` (zero contour of
        the derivative on a grid).
    solutions : list[sympy.Expr]
        Analytic branches: ``axes[1]`` as expressions of ``axes[0]`` (or the reverse, see ``solved_for``).
    solved_for : str | None
        The state the analytic solutions give.
    """

    state: str
    axes: tuple[str, str]
    curves: list[np.ndarray]
    method: str
    solutions: list[sympy.Expr] = field(default_factory=list)
    solved_for: str | None = None


# ---------------------------------------------------------------------- root finding
def _grid(lo: float, hi: float, n: int) -> np.ndarray:
    x = np.linspace(lo, hi, n)
    return x + _GRID_SHIFT * (hi - lo) * (x != lo) * (x != hi)


def roots_1d(g: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, n: int = 5001) -> list[float]:
    """Roots of a scalar function on ``[lo, hi]``: sign changes on an ``n``-point grid refined by
    Brent's method, plus pairs of roots hidden between grid points near a tangency."""
    x = _grid(lo, hi, n)
    with np.errstate(all="ignore"):
        y = np.asarray(g(x), dtype=float)
    ok = np.isfinite(y)
    roots: list[float] = list(x[ok & (y == 0)])

    def f(z: float) -> float:
        with np.errstate(all="ignore"):
            return float(g(np.asarray(z)))

    idx = np.flatnonzero(ok[:-1] & ok[1:] & (np.sign(y[:-1]) * np.sign(y[1:]) < 0))
    for i in idx:
        r = optimize.brentq(f, x[i], x[i + 1], xtol=1e-15 * max(1.0, abs(x[i])), rtol=1e-15, maxiter=200)
        if abs(f(r)) <= 1e-6 * max(abs(y[i]), abs(y[i + 1])):  # a root, not a pole changing sign
            roots.append(r)
    scale = np.median(np.abs(y[ok])) if ok.any() else 1.0
    # extrema pointing towards zero without a sign change: two roots may hide between grid points
    inner = ok[:-2] & ok[1:-1] & ok[2:] & (y[1:-1] != 0)
    same = (np.sign(y[:-2]) == np.sign(y[1:-1])) & (np.sign(y[2:]) == np.sign(y[1:-1]))
    towards = (np.abs(y[1:-1]) < np.abs(y[:-2])) & (np.abs(y[1:-1]) <= np.abs(y[2:]))
    for i in np.flatnonzero(inner & same & towards) + 1:
        sign = float(np.sign(y[i]))
        res = optimize.minimize_scalar(lambda z, sign=sign: sign * f(z), bounds=(x[i - 1], x[i + 1]),
                                       method="bounded", options={"xatol": 1e-14 * max(1.0, abs(x[i]))})
        zmin, vmin = float(res.x), sign * float(res.fun)
        if np.sign(vmin) == -sign:
            roots.append(optimize.brentq(f, x[i - 1], zmin, xtol=1e-15, rtol=1e-15))
            roots.append(optimize.brentq(f, zmin, x[i + 1], xtol=1e-15, rtol=1e-15))
        elif abs(vmin) <= 1e-10 * scale:
            roots.append(zmin)  # a double root: the saddle-node itself
    roots = sorted(roots)
    out: list[float] = []
    for r in roots:
        if not out or abs(r - out[-1]) > 1e-12 * max(1.0, abs(r)) + 1e-13 * (hi - lo):
            out.append(float(r))
    return out


def _roots_2d(g1: Callable, g2: Callable, xr: tuple[float, float], yr: tuple[float, float],
              n: int = 201) -> list[tuple[float, float]]:
    x, y = _grid(*xr, n), _grid(*yr, n)
    X, Y = np.meshgrid(x, y)
    A, B = g1(X, Y), g2(X, Y)
    sx = (xr[1] - xr[0]) / (n - 1)
    sy = (yr[1] - yr[0]) / (n - 1)
    scale = (np.nanmedian(np.abs(A)), np.nanmedian(np.abs(B)))
    found: list[tuple[float, float]] = []

    def changes(Z: np.ndarray) -> np.ndarray:
        corners = np.stack([Z[:-1, :-1], Z[1:, :-1], Z[:-1, 1:], Z[1:, 1:]])
        return (np.nanmin(corners, axis=0) <= 0) & (np.nanmax(corners, axis=0) >= 0)

    for j, i in zip(*np.nonzero(changes(A) & changes(B))):
        start = np.array([(x[i] + x[i + 1]) / 2 / sx, (y[j] + y[j + 1]) / 2 / sy])
        sol = optimize.root(lambda z: [g1(z[0] * sx, z[1] * sy) / scale[0], g2(z[0] * sx, z[1] * sy) / scale[1]],
                            start, method="hybr", options={"xtol": 1e-13})
        if not sol.success:
            continue
        px, py = float(sol.x[0] * sx), float(sol.x[1] * sy)
        if not (xr[0] - sx <= px <= xr[1] + sx and yr[0] - sy <= py <= yr[1] + sy):
            continue
        if all(abs(px - qx) > 1e-6 * sx or abs(py - qy) > 1e-6 * sy for qx, qy in found):
            found.append((px, py))
    return sorted(found)


def find_fixed_points(vf: VectorField, ranges: Mapping[str, Any] | None = None,
                      n: int = 5001) -> list[FixedPoint]:
    """Fixed points of a :class:`VectorField` of any number of free states (see module notes)."""
    red = vf.system.reduction()
    rng = _ranges(vf.model, red.primaries, ranges, vf.values)
    if len(red.primaries) == 1:
        p = red.primaries[0]
        roots = roots_1d(lambda x: red.g[0](x, *vf.params), *rng[p], n=n)
        points = [red.full_state([r], vf.params) for r in roots]
    elif len(red.primaries) == 2:
        p, q = red.primaries
        roots2 = _roots_2d(lambda x, y: red.g[0](x, y, *vf.params), lambda x, y: red.g[1](x, y, *vf.params),
                           rng[p], rng[q], n=max(51, int(np.sqrt(n) * 3)))
        points = [red.full_state([a, b], vf.params) for a, b in roots2]
    else:
        raise ModelError(
            f"{vf.model.name}: cannot find fixed points in {len(red.primaries)} dimensions "
            f"({', '.join(red.primaries)} could not be eliminated); fix some with fixed={{...}}")
    out = []
    for point in points:
        point = {s: float(v) for s, v in point.items()}
        if all(np.isfinite(list(point.values()))):
            out.append(vf.fixed_point(point))
    return out


def fixed_points(model: NeuronModel, params: Mapping[str, Any] | None = None, *,
                 fixed: Mapping[str, Any] | None = None, ranges: Mapping[str, Any] | None = None,
                 resolution: int = 5001, **values: Any) -> list[FixedPoint]:
    """Fixed points of a model and their stability, from its symbolic equations.

    Works for any number of states as long as all but one or two can be eliminated (solved from
    their own equation): LIF, AdEx, Izhikevich, Hodgkin-Huxley (gates at their steady state).

    Parameters
    ----------
    model
        A :class:`~tidesim.NeuronModel`.
    params, **values
        Parameter values (SI floats or quantities), e.g. ``I=0.3e-9`` for 0.3 nA.
    fixed
        States held constant (values or Brian2 expressions), as in :func:`vector_field`.
    ranges
        Search range per remaining state, ``{"v": (-0.1, 0.0)}`` (SI or quantities); default
        -250..150 mV for voltages (see :func:`default_range`).
    resolution
        Grid points of the sign-change scan.

    Returns
    -------
    list[FixedPoint]
        Sorted by the first state; each with Jacobian, eigenvalues (1/s) and stability type.
    """
    vf = _field(model, params, values, fixed, max_states=None)
    return find_fixed_points(vf, ranges, n=resolution)


# ---------------------------------------------------------------------- nullclines
def _real_curve(fn: Callable, t: np.ndarray, params: Sequence[float]) -> np.ndarray:
    with np.errstate(all="ignore"):
        out = np.asarray(fn(t.astype(complex), *params), dtype=complex)
    out = np.broadcast_to(out, t.shape)
    real = np.where(np.abs(out.imag) <= 1e-9 * np.maximum(np.abs(out.real), 1e-300), out.real, np.nan)
    return real


def _analytic_nullcline(vf: VectorField, k: int, xlim, ylim, n: int) -> Nullcline | None:
    x_sym, y_sym = vf.system.state_syms
    expr = vf.expressions[vf.states[k]]
    for target, other, lim in ((y_sym, x_sym, xlim), (x_sym, y_sym, ylim)):
        sols = solve_for(expr, target)
        if not sols or lim is None:
            continue
        t = np.linspace(*lim, n)
        curves = []
        for sol in sols:
            fn = sympy.lambdify([other], sol, modules=[_NUMPY_FUNCS, "numpy"])
            vals = _real_curve(fn, t, [])
            if not np.any(np.isfinite(vals)):
                continue
            pts = np.column_stack([t, vals]) if target is y_sym else np.column_stack([vals, t])
            curves.append(pts)
        if curves:
            return Nullcline(vf.states[k], (vf.states[0], vf.states[1]), curves, "analytic", list(sols),
                             target.name)
    return None


def _numeric_nullcline(vf: VectorField, k: int, xlim, ylim, n: int) -> Nullcline:
    # contourpy (matplotlib's contour engine) loads only for nullclines
    import contourpy

    X, Y = np.meshgrid(np.linspace(*xlim, n), np.linspace(*ylim, n))
    Z = vf(X, Y)[k]
    gen = contourpy.contour_generator(X, Y, np.where(np.isfinite(Z), Z, np.nan), line_type="Separate")
    curves = [np.asarray(c) for c in gen.lines(0.0)]
    return Nullcline(vf.states[k], (vf.states[0], vf.states[1]), curves, "numeric")


def nullcline_curves(vf: VectorField, xlim: tuple[float, float], ylim: tuple[float, float] | None,
                     resolution: int = 400, analytic: bool = True) -> list[Nullcline]:
    """Nullclines of a 2-D :class:`VectorField` over ``xlim`` x ``ylim`` (SI)."""
    if len(vf.states) != 2:
        raise ModelError(f"nullclines need a 2-D plane; free states are {', '.join(vf.states)} (in 1-D the "
                         "nullcline is the set of fixed points: use fixed_points)")
    out = []
    for k in range(2):
        nc = _analytic_nullcline(vf, k, xlim, ylim, resolution) if analytic else None
        if nc is None:
            if ylim is None:
                raise ModelError(f"the {vf.states[k]}-nullcline has no closed form; give ylim for a numeric "
                                 "contour")
            nc = _numeric_nullcline(vf, k, xlim, ylim, resolution)
        out.append(nc)
    return out


def nullclines(model: NeuronModel, params: Mapping[str, Any] | None = None, *,
               fixed: Mapping[str, Any] | None = None, xlim: tuple[Any, Any] | None = None,
               ylim: tuple[Any, Any] | None = None, resolution: int = 400, analytic: bool = True,
               **values: Any) -> list[Nullcline]:
    """The two nullclines of a 2-D model: analytic where sympy solves ``d(state)/dt = 0`` for one
    of the states, else the zero contour of the derivative on a ``resolution``-square grid.

    ``xlim``/``ylim`` (SI or quantities) bound the plane; default :func:`default_range`. Returns
    one :class:`Nullcline` per state (x-nullcline first), curves in SI.
    """
    vf = _field(model, params, values, fixed)
    if len(vf.states) != 2:
        raise ModelError(f"nullclines need a 2-D plane; {model.name}'s free states are {', '.join(vf.states)}")
    lims = _ranges(model, vf.states, {k: v for k, v in zip(vf.states, (xlim, ylim)) if v is not None}, vf.values)
    return nullcline_curves(vf, lims[vf.states[0]], lims[vf.states[1]], resolution, analytic)


def describe_point(model: NeuronModel, fp: FixedPoint) -> str:
    """A fixed point in readable units (``v = -70.6 mV, w = 0 A: stable node``)."""
    return ", ".join(f"{k} = {fmt(v, model.dims[k])}" for k, v in fp.state.items()) + f": {fp.stability}"
