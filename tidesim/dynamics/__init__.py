"""Dynamics of 1-D and 2-D neuron models: vector field, nullclines, fixed points and their stability,
phase plane, rheobase, f-I curve, bifurcation scan.

Everything starts from the model's Brian2 equations, turned into sympy expressions in SI units
(subexpressions substituted, noise set to zero, refractoriness ignored); the Jacobian is their
symbolic derivative. Values in and out are SI floats (or Brian2 quantities going in).

>>> import tidesim as ts
>>> adex = ts.models.get("adex")
>>> ts.dynamics.fixed_points(adex, I=0.2e-9)          # stable node and saddle, with eigenvalues
>>> ts.dynamics.rheobase(adex)                          # analytic: Hopf or saddle-node current (A)
>>> ts.dynamics.phase_plane(adex, I=0.7e-9, trajectories=[{"v": -0.07, "w": 0.0}]).savefig("pp.png")
>>> scan = ts.dynamics.bifurcation_scan(adex, "I", np.linspace(0, 1e-9, 41), duration=1.0)
>>> scan.plot()

Larger models are analysed by holding states fixed (``fixed={"m": "alpha_m/(alpha_m + beta_m)"}``);
fixed points, rheobase and bifurcation scans also work directly on models whose extra states can be
eliminated from their own steady-state equation (Hodgkin-Huxley's gates). The modules behind it:
:mod:`tidesim.dynamics.field` (symbolic field), :mod:`tidesim.dynamics.fixed` (fixed points,
nullclines), :mod:`tidesim.dynamics.excitability` (rheobase, f-I, scans) and
:mod:`tidesim.dynamics.plots` (figures).
"""

from __future__ import annotations

from tidesim.core.units import display_unit
from tidesim.dynamics.excitability import (
    BifurcationScan,
    Rheobase,
    bifurcation_scan,
    fi_curve,
    firing_counts,
    rheobase,
)
from tidesim.dynamics.field import (
    FixedPoint,
    VectorField,
    classify,
    default_range,
    resolve_values,
    vector_field,
)
from tidesim.dynamics.fixed import (
    Nullcline,
    fixed_points,
    nullclines,
    roots_1d,
)
from tidesim.dynamics.plots import (
    PhasePlane,
    phase_plane,
    plot_bifurcation,
    threshold_value,
)

__all__ = [
    "vector_field", "VectorField", "fixed_points", "FixedPoint", "classify", "nullclines", "Nullcline",
    "phase_plane", "PhasePlane", "rheobase", "Rheobase", "fi_curve", "firing_counts", "bifurcation_scan",
    "BifurcationScan", "plot_bifurcation", "display_unit", "threshold_value", "default_range", "resolve_values",
    "roots_1d",
]
