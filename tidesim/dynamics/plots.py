"""Figures of :mod:`tidesim.dynamics`: the phase plane and the bifurcation scan.

Axes are drawn in readable units (mV, pA, nA, ...) chosen from the data's magnitude, and every
axis label names its unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import sympy
import torch
from brian2 import second
from scipy.integrate import solve_ivp

from tidesim.core.equations import to_sympy
from tidesim.core.errors import ModelError
from tidesim.core.model import NeuronModel
from tidesim.core.units import display_unit, fmt, to_si
from tidesim.dynamics.field import (
    FixedPoint,
    VectorField,
    _field,
    _ranges,
    _scalar,
    default_range,
    solve_for,
    threshold_margin,
)
from tidesim.dynamics.fixed import Nullcline, find_fixed_points, nullcline_curves
from tidesim.engines.simulate import simulate

__all__ = ["PhasePlane", "phase_plane", "plot_bifurcation", "threshold_value"]

_STYLE = {  # marker style of fixed points by stability
    "stable node": dict(marker="o", facecolor="k", edgecolor="k"),
    "stable focus": dict(marker="o", facecolor="k", edgecolor="k"),
    "saddle": dict(marker="X", facecolor="w", edgecolor="k"),
    "saddle-focus": dict(marker="X", facecolor="0.6", edgecolor="k"),
    "unstable node": dict(marker="o", facecolor="w", edgecolor="k"),
    "unstable focus": dict(marker="o", facecolor="w", edgecolor="k"),
    "non-hyperbolic": dict(marker="D", facecolor="0.6", edgecolor="k"),
}


def _label(name: str, unit: str) -> str:
    return f"{name} ({'dimensionless' if unit == '1' else unit})"


@dataclass
class PhasePlane:
    """What :func:`phase_plane` drew, in SI.

    Attributes
    ----------
    ax : matplotlib.axes.Axes
    field : VectorField
    fixed_points : list[FixedPoint]
    nullclines : list[Nullcline]
        Empty for 1-D models.
    trajectories : list[dict[str, numpy.ndarray]]
        Per initial state: ``"t"`` (s) and each free state (SI), NaN where a reset cut the path.
    xlim, ylim : tuple[float, float]
        Plotted ranges (SI); ``ylim`` of a 1-D plane is in the derivative's unit (per second).
    """

    ax: Any
    field: VectorField
    fixed_points: list[FixedPoint]
    nullclines: list[Nullcline]
    trajectories: list[dict[str, np.ndarray]]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    scales: dict[str, float] = field(default_factory=dict)

    @property
    def figure(self):
        """The matplotlib figure."""
        return self.ax.figure

    def savefig(self, path: Any, **kwargs: Any) -> None:
        """Save the figure (``matplotlib.figure.Figure.savefig`` arguments)."""
        self.figure.savefig(path, **kwargs)


# ---------------------------------------------------------------------- trajectories
def _initial_states(vf: VectorField, trajectories: Sequence[Any]) -> list[dict[str, float]]:
    model = vf.model
    out = []
    for k, item in enumerate(trajectories):
        if isinstance(item, Mapping):
            unknown = [s for s in item if s not in vf.states]
            if unknown:
                raise ModelError(f"trajectory {k}: {', '.join(map(repr, unknown))} not free states of "
                                 f"{model.name}; free states are {', '.join(vf.states)}")
            given = {s: _scalar(v, f"initial '{s}'", model.dims[s]) for s, v in item.items()}
        else:
            values = list(item)
            if len(values) != len(vf.states):
                raise ModelError(f"trajectory {k}: give {len(vf.states)} initial values ({', '.join(vf.states)}), "
                                 f"got {len(values)}")
            given = {s: _scalar(v, f"initial '{s}'", model.dims[s]) for s, v in zip(vf.states, values)}
        for s in vf.states:  # missing states: the model's initial value (numbers or expressions)
            if s in given:
                continue
            init = model.initial.get(s, 0.0)
            if isinstance(init, str):
                expr = to_sympy(init)
                env = {**vf.values, **given}
                subs = {x: env[x.name] for x in expr.free_symbols if x.name in env}
                init = float(expr.xreplace(subs))
            given[s] = float(init)
        out.append(given)
    return out


def _simulate_paths(vf: VectorField, starts: list[dict[str, float]], duration: float,
                    dt: float) -> list[dict[str, np.ndarray]]:
    if not starts:
        return []
    if vf.fixed:  # a plane of a larger model: integrate the reduced field itself (no resets)
        paths = []
        t_eval = np.arange(0.0, duration, dt)
        for start in starts:
            sol = solve_ivp(lambda t, y: np.array([float(d) for d in vf(*y)]), (0.0, duration),
                            [start[s] for s in vf.states], t_eval=t_eval, method="LSODA", rtol=1e-8,
                            atol=1e-12 * np.maximum(1.0, np.abs([start[s] for s in vf.states])))
            paths.append({"t": sol.t, **{s: sol.y[i] for i, s in enumerate(vf.states)}})
        return paths
    initial = {s: torch.tensor([st[s] for st in starts], dtype=torch.float64) for s in vf.states}
    res = simulate(vf.model, duration=duration, n=len(starts), dt=dt, params=dict(vf.values), initial=initial,
                   record=vf.states)
    t = res.t.detach().cpu().numpy()
    spikes = res.spikes.detach().cpu().numpy() > 0.5
    paths = []
    for j in range(len(starts)):
        path = {"t": t.copy()}
        cut = np.flatnonzero(spikes[:-1, j]) + 1  # the record after a spiking step is the reset state
        for s in vf.states:
            path[s] = np.insert(res[s][:, j].detach().cpu().numpy(), cut, np.nan)
        path["t"] = np.insert(t, cut, np.nan)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------- limits
def _span(values: list[float], default: tuple[float, float], pad: float = 0.12) -> tuple[float, float]:
    vals = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if vals.size == 0:
        return default
    lo, hi = float(vals.min()), float(vals.max())
    width = hi - lo
    if width <= 0:
        width = 0.1 * (default[1] - default[0])
    return lo - pad * width, hi + pad * width


def _y_from_nullcline(vf: VectorField, xlim: tuple[float, float]) -> list[float]:
    try:
        ncs = nullcline_curves(vf, xlim, None, resolution=50)
    except ModelError:
        return []
    out: list[float] = []
    for nc in ncs[1:]:  # the y-nullcline, e.g. w = a (v - E_L)
        for c in nc.curves:
            out += list(c[:, 1][np.isfinite(c[:, 1])])
    return out


# ---------------------------------------------------------------------- the figure
def phase_plane(model: NeuronModel, params: Mapping[str, Any] | None = None, *,
                trajectories: Sequence[Any] = (), duration: Any = 0.3, dt: Any = 1e-4,
                fixed: Mapping[str, Any] | None = None, xlim: tuple[Any, Any] | None = None,
                ylim: tuple[Any, Any] | None = None, ranges: Mapping[str, Any] | None = None,
                arrows: int = 21, resolution: int = 400, ax: Any = None, **values: Any) -> PhasePlane:
    """Phase-plane figure of a 1-D or 2-D model: vector field, nullclines, fixed points, trajectories.

    Parameters
    ----------
    model
        A :class:`~tidesim.NeuronModel` with 1 or 2 free states (``fixed`` holds others constant).
    params, **values
        Parameter values (SI floats or quantities), e.g. ``I=0.5e-9``.
    trajectories
        Initial states, each a mapping ``{"v": -0.07, "w": 0.0}`` (SI or quantities; missing states
        take the model's initial value) or a sequence in state order. They are simulated with
        :func:`tidesim.simulate` for ``duration`` seconds at step ``dt``, threshold and reset
        included (a reset breaks the drawn path). With ``fixed``, the reduced field is integrated
        with ``scipy.integrate.solve_ivp`` instead (no resets).
    xlim, ylim
        Plotted ranges (SI or quantities); by default they enclose the fixed points, trajectories
        and the second state's nullcline. ``ranges`` bounds the fixed-point search.
    arrows
        Arrows per axis of the (direction-only) vector field.
    ax
        Matplotlib axes to draw into (default: a new figure).

    Returns
    -------
    PhasePlane
        The axes and the drawn data (SI).
    """
    # matplotlib loads only when a figure is drawn
    import matplotlib.pyplot as plt

    vf = _field(model, params, values, fixed)
    fps = find_fixed_points(vf, ranges)
    dur = float(to_si(duration, "duration", second.dim))
    step = float(to_si(dt, "dt", second.dim))
    starts = _initial_states(vf, trajectories)
    paths = _simulate_paths(vf, starts, dur, step)
    x = vf.states[0]
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.8))
    if xlim is not None:
        xl = _ranges(model, [x], {x: xlim}, vf.values)[x]
    else:
        pts = [fp[x] for fp in fps] + [st[x] for st in starts]
        for p in paths:
            pts += list(p[x])
        xl = _span(pts, default_range(model, x, vf.values))
    if len(vf.states) == 1:
        return _plane_1d(vf, fps, paths, xl, ax)
    y = vf.states[1]
    if ylim is not None:
        yl = _ranges(model, [y], {y: ylim}, vf.values)[y]
    else:
        pts = [fp[y] for fp in fps] + [st[y] for st in starts] + _y_from_nullcline(vf, xl)
        for p in paths:
            pts += list(p[y])
        yl = _span(pts, default_range(model, y, vf.values), pad=0.08)
    sx, ux = display_unit(model.dims[x], max(abs(xl[0]), abs(xl[1])))
    sy, uy = display_unit(model.dims[y], max(abs(yl[0]), abs(yl[1])))
    X, Y, U, V = vf.grid(xl, yl, arrows)
    du, dv = U / (xl[1] - xl[0]), V / (yl[1] - yl[0])
    norm = np.hypot(du, dv)
    norm[norm == 0] = 1.0
    length = 0.6 / arrows
    ax.quiver(X / sx, Y / sy, du / norm * length * (xl[1] - xl[0]) / sx, dv / norm * length * (yl[1] - yl[0]) / sy,
              angles="xy", scale_units="xy", scale=1.0, color="0.7", width=0.0025, zorder=1)
    ncs = nullcline_curves(vf, xl, yl, resolution)
    for k, nc in enumerate(ncs):
        for i, c in enumerate(nc.curves):
            ax.plot(c[:, 0] / sx, c[:, 1] / sy, color=f"C{k}", lw=2, zorder=2,
                    label=f"d{nc.state}/dt = 0" if i == 0 else None)
    for j, path in enumerate(paths):
        ax.plot(path[x] / sx, path[y] / sy, color=f"C{j + 2}", lw=1.2, zorder=3,
                label="trajectory" if j == 0 else None)
        ax.plot(starts[j][x] / sx, starts[j][y] / sy, marker="s", ms=4, color=f"C{j + 2}", zorder=4)
    _mark_points(ax, fps, lambda fp: (fp[x] / sx, fp[y] / sy))
    _draw_threshold(ax, vf, sx, xl)
    ax.set_xlim(xl[0] / sx, xl[1] / sx)
    ax.set_ylim(yl[0] / sy, yl[1] / sy)
    ax.set_xlabel(_label(x, ux))
    ax.set_ylabel(_label(y, uy))
    ax.set_title(_title(vf))
    ax.legend(loc="best", fontsize=8)
    return PhasePlane(ax, vf, fps, ncs, paths, xl, yl, {x: sx, y: sy})


def _plane_1d(vf: VectorField, fps: list[FixedPoint], paths: list[dict[str, np.ndarray]],
              xl: tuple[float, float], ax: Any) -> PhasePlane:
    model = vf.model
    x = vf.states[0]
    sx, ux = display_unit(model.dims[x], max(abs(xl[0]), abs(xl[1])))
    xs = np.linspace(*xl, 400)
    f = vf(xs)[0]
    sf, uf = (sx * 1e3, f"{ux}/ms") if ux != "1" else (1e3, "1/ms")  # derivative per millisecond
    ax.axhline(0, color="0.6", lw=0.8)
    ax.plot(xs / sx, f / sf, color="C0", lw=2, label=f"d{x}/dt")
    grid = np.linspace(*xl, 15)[1:-1]
    direction = np.sign(vf(grid)[0])
    for g, d in zip(grid, direction):
        if d:
            ax.plot(g / sx, 0, marker=">" if d > 0 else "<", color="0.5", ms=6)
    for j, path in enumerate(paths):
        ax.plot(path[x] / sx, vf(path[x])[0] / sf, color=f"C{j + 2}", lw=1.2,
                label="trajectory" if j == 0 else None)
    _mark_points(ax, fps, lambda fp: (fp[x] / sx, 0.0))
    _draw_threshold(ax, vf, sx, xl)
    ax.set_xlim(xl[0] / sx, xl[1] / sx)
    ax.set_xlabel(_label(x, ux))
    ax.set_ylabel(_label(f"d{x}/dt", uf))
    ax.set_title(_title(vf))
    ax.legend(loc="best", fontsize=8)
    ylim = ax.get_ylim()
    return PhasePlane(ax, vf, fps, [], paths, xl, (ylim[0] * sf, ylim[1] * sf), {x: sx})


def _mark_points(ax: Any, fps: list[FixedPoint], where) -> None:
    seen = set()
    for fp in fps:
        style = _STYLE.get(fp.stability, _STYLE["non-hyperbolic"])
        px, py = where(fp)
        ax.scatter([px], [py], s=60, marker=style["marker"], facecolors=style["facecolor"],
                   edgecolors=style["edgecolor"], linewidths=1.5, zorder=5,
                   label=fp.stability if fp.stability not in seen else None)
        seen.add(fp.stability)


def threshold_value(vf: VectorField) -> float | None:
    """The first state's value (SI) at the spike threshold when the threshold depends on it alone
    (``v > V_th`` gives ``V_th``), else ``None``."""
    margin = threshold_margin(vf.model, vf.system)
    if margin is None:
        return None
    x = vf.system.state_syms[0]
    margin = margin.xreplace({s: sympy.Float(vf.values[s.name]) for s in margin.free_symbols
                              if s.name in vf.values})
    if margin.free_symbols != {x}:
        return None
    sols = solve_for(margin, x)
    if not sols or len(sols) != 1:
        return None
    try:
        return float(sols[0])
    except TypeError:
        return None


def _draw_threshold(ax: Any, vf: VectorField, scale: float, xlim: tuple[float, float]) -> None:
    th = threshold_value(vf)
    if th is not None and xlim[0] <= th <= xlim[1]:
        ax.axvline(th / scale, color="C3", ls=":", lw=1.2, zorder=1, label="threshold")


def _title(vf: VectorField) -> str:
    model = vf.model
    changed = [f"{k} = {fmt(v, model.dims[k])}" for k, v in vf.values.items()
               if k in vf.system.param_names and (k not in model.parameters or model.parameters[k] != v)]
    if not changed and "I" in vf.system.param_names:
        changed = [f"I = {fmt(vf.values['I'], model.dims['I'])}"]
    return model.name + (": " + ", ".join(changed) if changed else "")


def plot_bifurcation(scan: Any, state: str | None = None, ax: Any = None, scale: float | None = None,
                     unit: str | None = None) -> Any:
    """Fixed points of ``state`` (filled: stable, open: unstable) and the firing rate (right axis, Hz)
    against the scanned parameter; a dashed line marks the onset of sustained firing.

    ``scale``/``unit`` show the parameter as ``value/scale`` in ``unit`` (e.g. current density).
    Returns the left axes.
    """
    # matplotlib loads only when a figure is drawn
    import matplotlib.pyplot as plt

    model = scan.model
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    vals = np.asarray(scan.values, dtype=float)
    if scale is None:
        biggest = float(np.nanmax(np.abs(vals))) if vals.size else 1.0
        scale, unit = display_unit(model.dims[scan.parameter], biggest)
    unit = unit or ""
    have_fps = any(scan.fixed_points)
    state = state or (scan.fixed_points[0][0].states[0] if have_fps and scan.fixed_points[0] else
                      model.state_names[0])
    if have_fps:
        ys = [fp[state] for fps in scan.fixed_points for fp in fps if state in fp.state]
        sy, uy = display_unit(model.dims[state], max(np.abs(ys)) if ys else 1.0)
        for stable in (True, False):
            px = [v / scale for v, fps in zip(vals, scan.fixed_points) for fp in fps if fp.stable is stable]
            py = [fp[state] / sy for fps in scan.fixed_points for fp in fps if fp.stable is stable]
            if not px:
                continue
            ax.scatter(px, py, s=14, facecolors="k" if stable else "w", edgecolors="k", zorder=3,
                       label="stable fixed point" if stable else "unstable fixed point")
        ax.set_ylabel(_label(state, uy))
    ax.set_xlabel(_label(scan.parameter, unit))
    handles, labels = ax.get_legend_handles_labels()
    if scan.rate is not None:
        ax2 = ax.twinx() if have_fps else ax
        ax2.plot(vals / scale, scan.rate, color="C3", marker=".", lw=1, label="firing rate")
        ax2.set_ylabel("firing rate (Hz)")
        onset = scan.onset
        if onset is not None:
            ax2.axvline(onset / scale, color="C3", ls="--", lw=1, label=f"onset {onset / scale:.4g} {unit}")
        if ax2 is not ax:
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        else:
            handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="best", fontsize=8)
    ax.set_title(f"{model.name}: scan of {scan.parameter}")
    return ax
