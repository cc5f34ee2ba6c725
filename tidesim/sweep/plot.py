"""Maps of a sweep's measures: a line against one parameter, a heatmap over two (labelled, with units)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tidesim.sweep.points import SweepInputError

__all__ = ["plot_map"]

_PREFIXES = [(1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, ""), (1e3, "k"),
             (1e6, "M"), (1e9, "G")]
_SIMPLE = {"A", "V", "S", "F", "s", "Hz", "ohm", "Ohm", "siemens", "amp", "volt", "second", "farad"}


def _scale(values: np.ndarray, unit: str) -> tuple[float, str]:
    """(factor, label unit) so that the values shown are of order 1-1000 in a prefixed unit."""
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size else 0.0
    if not unit or unit == "1" or top == 0.0:
        return 1.0, "" if unit in ("", "1") else unit
    base, per = (unit.split("/", 1) + [""])[:2] if "/" in unit else (unit, "")
    if per and base in _SIMPLE and per in _SIMPLE:  # e.g. Hz/A -> Hz/nA: scale the denominator
        for f, p in _PREFIXES:  # shown = value * f, the first prefix that brings it to 1 or more
            if top * f >= 1:
                return f, f"{base}/{p}{per}"
        return _PREFIXES[-1][0], f"{base}/{_PREFIXES[-1][1]}{per}"
    if unit in _SIMPLE:
        for f, p in reversed(_PREFIXES):
            if top >= f:
                return 1.0 / f, f"{p}{unit}"
        return 1.0 / _PREFIXES[0][0], f"{_PREFIXES[0][1]}{unit}"
    return 1.0, unit


def _label(name: str, unit: str) -> str:
    return f"{name} ({unit})" if unit else name


def _select(df: pd.DataFrame, measure: str, amplitude: float | None) -> tuple[pd.DataFrame, str]:
    if measure not in df.columns:
        raise SweepInputError(f"no column {measure!r} in the sweep table; measures: "
                              f"{', '.join(df.attrs.get('measure_levels', {})) or ', '.join(df.columns)}")
    level = df.attrs.get("measure_levels", {}).get(measure, "step")
    note = ""
    if "amplitude" in df.columns:
        amps = np.unique(df["amplitude"].to_numpy())
        if amplitude is not None:
            pick = amps[np.isclose(amps, amplitude, rtol=1e-9, atol=0)]
            if pick.size == 0:
                raise SweepInputError(f"amplitude {amplitude!r} is not in the sweep; its amplitudes are "
                                      f"{amps.tolist()}")
            df = df[df["amplitude"] == pick[0]]
            f, u = _scale(np.array([pick[0]]), df.attrs.get("units", {}).get("amplitude", ""))
            note = f"step {pick[0] * f:g} {u}".rstrip()
        elif amps.size > 1:
            if level != "point":
                raise SweepInputError(f"the sweep has {amps.size} step amplitudes {amps.tolist()}: pass "
                                      f"amplitude= to choose the one to map {measure!r} at")
            df = df[df["amplitude"] == amps[0]]  # a per-point measure: the same on every amplitude's row
    return df, note


def plot_map(df: pd.DataFrame, x: str, y: str | None = None, measure: str = "rate", amplitude: float | None = None,
             ax: Any = None, log_x: bool = False, log_y: bool = False, cmap: str = "viridis", **kw: Any):
    """A 1-D (``y=None``: ``measure`` against ``x``) or 2-D (heatmap over ``x`` and ``y``) map of a
    sweep's measure; returns the matplotlib Figure.

    Axes and colour bar are labelled with names and units from ``df.attrs["units"]`` (values shown
    in a prefixed unit, e.g. nS, pA, Hz/nA). With several step amplitudes, ``amplitude=`` picks one
    (per-point measures such as ``fi_slope`` need none). A 2-D map of a full grid is a heatmap of
    cells (NaN cells grey); scattered points (Sobol samples) are drawn as coloured dots.
    """
    # matplotlib loads only when a figure is drawn
    import matplotlib.pyplot as plt

    for name in (x, y):
        if name is not None and name not in df.columns:
            raise SweepInputError(f"no parameter column {name!r} in the sweep table; columns: "
                                  f"{', '.join(df.columns)}")
    sel, note = _select(df, measure, amplitude)
    units = df.attrs.get("units", {})
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 4) if y else (5.5, 3.5))
    else:
        fig = ax.figure
    fx, ux = _scale(sel[x].to_numpy(dtype=float), units.get(x, ""))
    fm, um = _scale(sel[measure].to_numpy(dtype=float), units.get(measure, ""))
    others = [c for c in sel.columns if c not in (x, y, measure, "point", "amplitude")
              and c not in df.attrs.get("measure_levels", {}) and sel[c].nunique() > 1]
    if y is None:
        if sel[x].duplicated().any():
            example = others[0] if others else "b"
            raise SweepInputError(f"{x!r} alone does not identify the points: {_varying(others)}; pass y=, or "
                                  f"select rows first (e.g. df[df.{example} == value])")
        s = sel.sort_values(x)
        ax.plot(s[x].to_numpy() * fx, s[measure].to_numpy() * fm, marker=kw.pop("marker", "o"), ms=3, **kw)
        ax.set_xlabel(_label(x, ux))
        ax.set_ylabel(_label(measure, um))
        if log_x:
            _log_axis(ax.xaxis, ax.set_xscale)
    else:
        fy, uy = _scale(sel[y].to_numpy(dtype=float), units.get(y, ""))
        others = [c for c in others if c != y]
        if sel.duplicated([x, y]).any():
            raise SweepInputError(f"({x!r}, {y!r}) do not identify the points: {_varying(others)}; "
                                  "select rows first")
        table = sel.pivot(index=y, columns=x, values=measure)
        cm = plt.get_cmap(cmap).copy()
        cm.set_bad("0.8")
        if table.size == len(sel):  # a full grid
            xs, ys = table.columns.to_numpy(dtype=float) * fx, table.index.to_numpy(dtype=float) * fy
            img = ax.pcolormesh(_edges(xs, log_x), _edges(ys, log_y), np.ma.masked_invalid(table.to_numpy() * fm),
                                cmap=cm, shading="flat", **kw)
        else:
            vals = sel[measure].to_numpy(dtype=float) * fm
            ok = np.isfinite(vals)
            ax.scatter(sel[x].to_numpy()[~ok] * fx, sel[y].to_numpy()[~ok] * fy, c="0.8", s=8)
            img = ax.scatter(sel[x].to_numpy()[ok] * fx, sel[y].to_numpy()[ok] * fy, c=vals[ok], cmap=cm, s=8,
                             **kw)
        fig.colorbar(img, ax=ax, label=_label(measure, um))
        ax.set_xlabel(_label(x, ux))
        ax.set_ylabel(_label(y, uy))
        if log_x:
            _log_axis(ax.xaxis, ax.set_xscale)
        if log_y:
            _log_axis(ax.yaxis, ax.set_yscale)
    nan = int(sel[measure].isna().sum())
    title = ", ".join(p for p in (df.attrs.get("model", ""), note, f"{nan} NaN" if nan else "") if p)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def _log_axis(axis, set_scale) -> None:
    """A log axis labelled in plain numbers at 1, 2, 5 x 10^k."""
    # matplotlib loads only when a figure is drawn
    from matplotlib import ticker

    set_scale("log")
    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def _varying(names: list[str]) -> str:
    if not names:
        return "rows repeat"
    if len(names) == 1:
        return f"parameter {names[0]!r} also varies"
    return f"parameters {', '.join(repr(n) for n in names)} also vary"


def _edges(centres: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around sorted centres (midpoints; geometric midpoints on a log axis)."""
    c = np.log(centres) if log else centres
    if c.size == 1:
        e = np.array([c[0] - 0.5, c[0] + 0.5]) if not log else np.array([c[0] - 0.1, c[0] + 0.1])
    else:
        mid = (c[1:] + c[:-1]) / 2
        e = np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])
    return np.exp(e) if log else e
