"""Excitability of a model: rheobase, f-I curve, bifurcation scan (part of :mod:`tidesim.dynamics`).

Two views of the onset of firing:

- **analytic** (:func:`rheobase` with ``method="analytic"``): from the symbolic equations. With every
  state but one (``v``) eliminated, the steady state is a curve ``I_ss(v)`` (the steady-state I-V
  curve, solved for the input from the reduced equation). Walking along it from hyperpolarised
  potentials, the resting state stops being a stable fixed point at the first of: a
  **saddle-node** (an eigenvalue crosses 0, where ``dI_ss/dv = 0``: the fixed points merge and
  vanish), an **Andronov-Hopf** bifurcation (a complex pair crosses the imaginary axis), or the
  stable state reaching the spike **threshold** (integrate-and-fire models such as LIF, whose
  equations alone never bifurcate). The current there is the rheobase. For AdEx this gives
  ``I_SN = (gL + a) (VT - EL - DeltaT + DeltaT ln(1 + a/gL))`` when ``a < C/tau_w`` and a Hopf
  current otherwise (Touboul & Brette 2008, Biol. Cybern. 99:319); for Izhikevich's model the
  saddle-node ``(5 - b)^2 = 0.16 (140 + I)`` when ``b < a`` and a Hopf bifurcation when ``b > a``
  (Izhikevich 2007, *Dynamical Systems in Neuroscience*, ch. 8).
- **simulated** (``method="simulate"``, :func:`fi_curve`, :func:`bifurcation_scan`): batched torch
  runs, one neuron per current or parameter value. Where the rest state coexists with firing
  (Hodgkin-Huxley between ~6.3 and ~9.8 uA/cm^2) the simulated onset of firing lies below the
  analytic (Hopf) rheobase.

Firing rates are spikes in the window ``[transient, duration]`` divided by its length (Hz).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
import sympy
import torch
from brian2 import amp, second
from scipy import optimize

from tidesim.core.errors import ModelError, SimulationError
from tidesim.core.model import NeuronModel
from tidesim.core.units import fmt, to_si, unit_name
from tidesim.dynamics.field import (
    _check_fixed,
    _field,
    _lambdify,
    _ranges,
    _symbolic,
    _unique_solution,
    resolve_values,
    threshold_margin,
)
from tidesim.dynamics.fixed import FixedPoint, find_fixed_points
from tidesim.dynamics.plots import plot_bifurcation
from tidesim.engines.simulate import simulate

__all__ = ["Rheobase", "rheobase", "fi_curve", "BifurcationScan", "bifurcation_scan", "firing_counts"]


@dataclass
class Rheobase:
    """The smallest constant input that makes a model fire.

    Attributes
    ----------
    current : float
        The rheobase, in the input's SI unit (amperes for ``I : amp``). ``float(r)`` gives it.
    kind : str
        ``"saddle-node"``, ``"hopf"``, ``"threshold"`` (analytic) or ``"simulated"``.
    method : str
        ``"analytic"`` or ``"simulate"``.
    input : str
        The parameter taken as the input.
    state : dict[str, float] | None
        Analytic: the fixed point where the resting state is lost (SI).
    eigenvalues : numpy.ndarray | None
        Analytic: the Jacobian's eigenvalues there (1/s).
    bracket : tuple[float, float] | None
        Simulated: the last silent and first firing current tried.
    formula : sympy.Expr | None
        Saddle-node: the rheobase as a symbolic expression of the parameters, when sympy finds it.
    unit : str
        SI unit of :attr:`current`.
    """

    current: float
    kind: str
    method: str
    input: str = "I"
    state: dict[str, float] | None = None
    eigenvalues: np.ndarray | None = None
    bracket: tuple[float, float] | None = None
    formula: sympy.Expr | None = None
    unit: str = "A"

    def __float__(self) -> float:
        return float(self.current)

    def __repr__(self) -> str:
        extra = f", bracket={self.bracket}" if self.bracket else ""
        return f"Rheobase({self.current:.8g} {self.unit}, {self.kind}, {self.method}{extra})"


# ---------------------------------------------------------------------- analytic
def _analytic(model: NeuronModel, values: dict[str, float], input: str, fixed: Mapping[str, Any],
              ranges: Mapping[str, Any] | None, resolution: int) -> Rheobase:
    system = _symbolic(model, fixed)
    red = system.reduction()
    if len(red.primaries) != 1:
        raise ModelError(f"{model.name}: the analytic rheobase needs all states but one eliminated; "
                         f"{', '.join(red.primaries)} remain. Use method='simulate'")
    if input not in system.param_names:
        raise ModelError(f"'{input}' does not appear in {model.name}'s equations; name the input with input=")
    p = red.primaries[0]
    x = red.args[0]
    u = sympy.Symbol(input, real=True)
    i_ss = _unique_solution(red.reduced[p], u)
    if i_ss is None:
        raise ModelError(f"cannot solve {model.name}'s steady state for '{input}'; use method='simulate'")
    others = {s: sympy.Float(values[s.name]) for s in system.param_syms if s.name != input}
    i_num = i_ss.xreplace(others)
    i_of = _lambdify([x], i_num)
    lo, hi = _ranges(model, [p], ranges, values)[p]
    xs = np.linspace(lo, hi, resolution)
    k_in = system.param_names.index(input)

    def branch(xv: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray]:
        cur = i_of(xv)
        params = [cur if k == k_in else values[n] for k, n in enumerate(system.param_names)]
        full = red.full_state([xv], params)
        jac = system.jacobian([np.broadcast_to(full[s], np.shape(xv)) for s in system.states], params)
        eig = np.linalg.eigvals(np.nan_to_num(jac, nan=0.0, posinf=1e300, neginf=-1e300))
        if margin_fn is not None:
            state_args = [full[s] for s in system.states]
            margin = margin_fn(*state_args, *[values[n] if n != input else cur for n in model.parameter_names])
        else:
            margin = np.full(np.shape(xv), -1.0)
        return cur, full, eig, margin

    margin_expr = threshold_margin(model, system)
    margin_fn = None
    if margin_expr is not None:
        par_syms = [sympy.Symbol(n, real=True) for n in model.parameter_names]
        margin_fn = _lambdify(list(system.state_syms) + par_syms, margin_expr)
    cur, _, eig, margin = branch(xs)
    maxre = eig.real.max(axis=-1)
    good = np.isfinite(cur) & np.isfinite(maxre) & (maxre < 0) & (margin < 0)
    if not good.any():
        raise ModelError(f"{model.name} has no stable resting state for {p} in [{lo}, {hi}] {model.unit_of(p)}; "
                         "widen ranges= or use method='simulate'")
    k0 = int(np.argmax(good))
    lost = np.flatnonzero(~good[k0:])
    if not lost.size:
        raise ModelError(f"{model.name}'s resting state stays stable and below threshold for {p} up to {hi} "
                         f"{model.unit_of(p)} (input {fmt(float(cur[-1]), model.dims[input])}); widen ranges= "
                         "or use method='simulate'")
    k = k0 + int(lost[0])
    a, b = xs[k - 1], xs[k]
    formula = None
    if np.isfinite(margin[k]) and margin[k] >= 0 and not (np.isfinite(maxre[k]) and maxre[k] >= 0):
        kind = "threshold"
        xc = optimize.brentq(lambda z: float(branch(np.asarray(z))[3]), a, b, xtol=1e-15, rtol=1e-15)
    else:
        def top(z: float) -> float:
            return float(branch(np.asarray(z))[2].real.max())
        xc = optimize.brentq(top, a, b, xtol=1e-15, rtol=1e-15)
        eig_c = branch(np.asarray(xc))[2]
        lead = eig_c[np.argmax(eig_c.real)]
        kind = "hopf" if abs(lead.imag) > 1e-6 * max(1.0, float(np.abs(eig_c).max())) else "saddle-node"
        if kind == "saddle-node":
            xc, formula = _refine_saddle_node(i_num, i_ss, x, a, b, xc, values, system, input)
    cur_c, full_c, eig_c, _ = branch(np.asarray(xc))
    state = {s: float(v) for s, v in full_c.items()}
    return Rheobase(float(cur_c), kind, "analytic", input, state, np.asarray(eig_c), formula=formula,
                    unit=unit_name(model.dims[input]))


def _refine_saddle_node(i_num: sympy.Expr, i_ss: sympy.Expr, x: sympy.Symbol, a: float, b: float, guess: float,
                        values: dict[str, float], system, input: str) -> tuple[float, sympy.Expr | None]:
    """The fold of the steady-state curve: ``dI_ss/dx = 0`` near ``guess`` (sympy, else Brent)."""
    d_num = sympy.diff(i_num, x)
    xc = guess
    d_fn = _lambdify([x], d_num)
    try:
        xc = optimize.brentq(lambda z: float(d_fn(np.asarray(z))), a, b, xtol=1e-16, rtol=1e-15)
    except ValueError:
        pass
    formula = None
    if sympy.count_ops(i_ss) > 200:  # too big to be worth a closed form
        return xc, None
    try:  # the closed form in the parameters, for the record
        for sol in sympy.solve(sympy.diff(i_ss, x), x, rational=False):
            subs = {s: sympy.Float(values[s.name]) for s in system.param_syms if s.name != input}
            value = complex(sol.xreplace(subs).evalf())
            if abs(value.imag) < 1e-12 and abs(value.real - xc) <= 1e-6 * max(1e-3, abs(xc)):
                formula = sympy.simplify(i_ss.xreplace({x: sol}))
                break
    except (NotImplementedError, ValueError, TypeError, RecursionError):
        formula = None
    return xc, formula


# ---------------------------------------------------------------------- simulation
def _input_values(model: NeuronModel, input: str, currents: Any) -> np.ndarray:
    if input not in model.parameter_names:
        raise ModelError(f"{model.name} has no parameter '{input}' to drive; its parameters are "
                         f"{', '.join(model.parameter_names)}")
    values = to_si(currents, input, model.dims[input])
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.atleast_1d(np.asarray(values, dtype=float))


def firing_counts(model: NeuronModel, parameter: str, values: np.ndarray, duration: float,
                  params: Mapping[str, Any] | None = None, dt: float = 1e-4, transient: float = 0.0,
                  initial: Mapping[str, Any] | None = None, engine: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Simulate one neuron per value of ``parameter`` (batched) and count spikes.

    Returns ``(counts in [transient, duration], time of the first spike (s, NaN if none))``.
    """
    if model.threshold is None:
        raise ModelError(f"{model.name} has no threshold: it cannot count spikes")
    if not 0 <= transient < duration:
        raise ValueError(f"transient must be in [0, duration), got {transient} s for duration {duration} s")
    per_neuron = torch.as_tensor(np.asarray(values, dtype=float), dtype=torch.float64)
    all_params = {**(params or {}), parameter: per_neuron}
    res = simulate(model, duration=duration, n=len(values), dt=dt, params=all_params, record=[],
                   initial=initial, engine=engine)
    counts = np.array([np.sum(np.asarray(tr) >= transient) for tr in res.spike_trains], dtype=int)
    first = np.array([float(tr[0]) if len(tr) else np.nan for tr in res.spike_trains])
    return counts, first


def _simulated(model: NeuronModel, params: Mapping[str, Any] | None, input: str, duration: float, dt: float,
               min_spikes: int, transient: float, bracket: tuple[Any, Any] | None, rtol: float, batch: int,
               initial: Mapping[str, Any] | None, guess: float | None) -> Rheobase:
    def fires(currents: np.ndarray) -> np.ndarray:
        counts, _ = firing_counts(model, input, currents, duration, params, dt, transient, initial)
        return counts >= min_spikes

    if bracket is not None:
        lo, hi = (float(v) for v in _input_values(model, input, list(bracket)))
    else:
        scale = abs(guess) if guess else (1e-10 if model.dims[input] is amp.dim else 1.0)
        ladder = scale * 2.0 ** np.arange(-6, 24)
        on = fires(ladder)
        if not on.any():
            raise SimulationError(f"{model.name} does not fire (>= {min_spikes} spikes in {duration} s) for "
                                  f"{input} up to {fmt(ladder[-1], model.dims[input])}")
        k = int(np.argmax(on))
        lo, hi = (ladder[k - 1] if k else 0.0), ladder[k]
    ends = fires(np.array([lo, hi]))
    if ends[0] or not ends[1]:
        raise SimulationError(f"rheobase bracket [{lo}, {hi}] {model.unit_of(input)}: the low end must be silent "
                              f"and the high end fire (got {bool(ends[0])}, {bool(ends[1])})")
    while hi - lo > rtol * abs(hi):
        currents = np.linspace(lo, hi, batch + 2)[1:-1]
        on = fires(currents)
        k = int(np.argmax(on)) if on.any() else len(currents)
        lo = currents[k - 1] if k > 0 else lo
        hi = currents[k] if k < len(currents) else hi
    return Rheobase(0.5 * (lo + hi), "simulated", "simulate", input, bracket=(float(lo), float(hi)),
                    unit=unit_name(model.dims[input]))


def rheobase(model: NeuronModel, params: Mapping[str, Any] | None = None, method: str = "analytic", *,
             input: str = "I", fixed: Mapping[str, Any] | None = None, ranges: Mapping[str, Any] | None = None,
             resolution: int = 5001, duration: Any = 1.0, dt: Any = 1e-4, min_spikes: int = 1,
             transient: Any = 0.0, bracket: tuple[Any, Any] | None = None, rtol: float = 1e-3, batch: int = 16,
             initial: Mapping[str, Any] | None = None) -> Rheobase:
    """The rheobase: the smallest constant ``input`` (SI, amperes for ``I``) at which the model fires.

    ``method="analytic"``: from the symbolic equations, the input at which the resting state stops
    being a stable fixed point below threshold: saddle-node, Hopf or threshold crossing (see the
    module notes). Needs every state but one eliminable; ``ranges`` bounds the scan of that
    state (default -250..150 mV).

    ``method="simulate"``: batched bisection on simulations. A current "fires" when the neuron,
    started from the model's initial state (or ``initial``), emits at least ``min_spikes`` spikes
    in ``[transient, duration]`` (seconds; quantities allowed) at time step ``dt``. Each round
    simulates ``batch`` currents inside the bracket, until it is narrower than ``rtol`` times the
    current. ``bracket`` (silent, firing) is found automatically when not given.

    Returns a :class:`Rheobase` (``float(r)`` is the current).
    """
    values = resolve_values(model, params)
    if input not in model.parameter_names:
        raise ModelError(f"{model.name} has no parameter '{input}'; its parameters are "
                         f"{', '.join(model.parameter_names)}")
    fixed = _check_fixed(model, fixed)
    if method == "analytic":
        return _analytic(model, values, input, fixed, ranges, resolution)
    if method != "simulate":
        raise ValueError(f"method must be 'analytic' or 'simulate', got {method!r}")
    if fixed:
        raise ModelError("fixed= applies to the analytic method only; simulations run the full model")
    guess = None
    try:
        guess = float(_analytic(model, values, input, fixed, ranges, resolution))
    except (ModelError, ValueError):
        guess = None
    return _simulated(model, params, input, float(to_si(duration, "duration", second.dim)),
                      float(to_si(dt, "dt", second.dim)), int(min_spikes),
                      float(to_si(transient, "transient", second.dim)), bracket, rtol, int(batch), initial,
                      guess if guess and guess > 0 else None)


def fi_curve(model: NeuronModel, currents: Any, duration: Any = 1.0, params: Mapping[str, Any] | None = None, *,
             input: str = "I", dt: Any = 1e-4, transient: Any = 0.0, initial: Mapping[str, Any] | None = None):
    """The f-I curve by one batched simulation (one neuron per current).

    ``currents``: SI values (amperes for ``I``), a quantity array or a tensor. Each neuron starts
    from the model's initial state (or ``initial``) and gets a constant input for ``duration``
    seconds at step ``dt``. Returns a pandas DataFrame with columns ``current`` (SI), ``rate``
    (Hz: spikes in ``[transient, duration]`` over the window's length), ``n_spikes`` (in the
    window) and ``first_spike`` (s, NaN when silent).
    """
    cur = _input_values(model, input, currents)
    dur = float(to_si(duration, "duration", second.dim))
    tr = float(to_si(transient, "transient", second.dim))
    counts, first = firing_counts(model, input, cur, dur, params, float(to_si(dt, "dt", second.dim)), tr, initial)
    return pd.DataFrame({"current": cur, "rate": counts / (dur - tr), "n_spikes": counts, "first_spike": first})


# ---------------------------------------------------------------------- bifurcation scan
@dataclass
class BifurcationScan:
    """Fixed points and firing against one parameter (built by :func:`bifurcation_scan`).

    Attributes
    ----------
    model : NeuronModel
    parameter : str
    values : numpy.ndarray
        Parameter values (SI).
    fixed_points : list[list[FixedPoint]]
        Per value, the fixed points with their stability (empty lists when not computed).
    rate : numpy.ndarray | None
        Firing rate (Hz) in the window ``[transient, duration]`` of a run from the initial state.
    n_spikes : numpy.ndarray | None
        Spikes in that window.
    window : tuple[float, float]
        The counting window (s).
    min_spikes : int
        Spikes in the window that count as repetitive firing.
    """

    model: NeuronModel
    parameter: str
    values: np.ndarray
    fixed_points: list[list[FixedPoint]]
    rate: np.ndarray | None
    n_spikes: np.ndarray | None
    window: tuple[float, float]
    min_spikes: int = 2
    unit: str = field(default="")

    @property
    def repetitive(self) -> np.ndarray:
        """Boolean per value: at least ``min_spikes`` spikes in the window (sustained firing)."""
        if self.n_spikes is None:
            raise ModelError("this scan ran no simulations (simulate=False)")
        return self.n_spikes >= self.min_spikes

    @property
    def onset(self) -> float | None:
        """First value from which firing is sustained for every larger scanned value (SI); the midpoint
        with the last silent value before it. ``None`` when no scanned value fires."""
        rep = self.repetitive
        if not rep.any():
            return None
        order = np.argsort(self.values)
        rep_sorted = rep[order]
        silent = np.flatnonzero(~rep_sorted)
        k = int(silent[-1]) + 1 if silent.size else 0
        if k >= len(order):
            return None
        if k == 0:
            return float(self.values[order[0]])
        return float(0.5 * (self.values[order[k - 1]] + self.values[order[k]]))

    @property
    def stable_state(self) -> np.ndarray:
        """Per value, whether some fixed point is stable."""
        return np.array([any(fp.stable for fp in fps) for fps in self.fixed_points])

    def to_dataframe(self):
        """One row per fixed point (value, states, stability, largest real part of the eigenvalues in 1/s),
        plus a row per value without fixed points; ``rate`` and ``n_spikes`` repeated on each row."""
        rows = []
        for k, value in enumerate(self.values):
            extra = {}
            if self.rate is not None:
                extra = {"rate": float(self.rate[k]), "n_spikes": int(self.n_spikes[k])}
            if not self.fixed_points[k]:
                rows.append({self.parameter: float(value), "stability": None, **extra})
            for fp in self.fixed_points[k]:
                rows.append({self.parameter: float(value), **fp.state, "stability": fp.stability,
                             "stable": fp.stable, "max_real_eigenvalue": float(np.max(fp.eigenvalues.real)),
                             **extra})
        return pd.DataFrame(rows)

    def plot(self, state: str | None = None, ax=None, scale: float | None = None, unit: str | None = None):
        """Draw the scan (see :func:`tidesim.dynamics.plots.plot_bifurcation`)."""
        return plot_bifurcation(self, state=state, ax=ax, scale=scale, unit=unit)

    def __repr__(self) -> str:
        onset = self.onset if self.n_spikes is not None else None
        shown = f", onset={fmt(onset, self.model.dims[self.parameter])}" if onset is not None else ""
        return f"BifurcationScan({self.model.name}, {self.parameter}: {len(self.values)} values{shown})"


def bifurcation_scan(model: NeuronModel, parameter: str, values: Any, params: Mapping[str, Any] | None = None, *,
                     fixed_points: bool = True, simulate: bool = True, duration: Any = 1.0, dt: Any = 1e-4,
                     transient: Any = None, min_spikes: int = 2, initial: Mapping[str, Any] | None = None,
                     ranges: Mapping[str, Any] | None = None, resolution: int = 5001) -> BifurcationScan:
    """Fixed points (with stability) and firing rate against one parameter (e.g. the input ``I``).

    Parameters
    ----------
    model, parameter, values
        The model, the parameter to vary and its values (SI floats, a quantity array or a tensor).
    params
        Other parameter values (SI or quantities).
    fixed_points
        Compute the fixed points at every value (:func:`~tidesim.dynamics.fixed_points`, over ``ranges``).
    simulate
        Run one batched simulation (one neuron per value) from the model's initial state (or
        ``initial``) for ``duration`` seconds at step ``dt``; spikes in ``[transient, duration]``
        give the rate. ``transient`` defaults to half the duration, so that the rate is that of
        sustained firing: a value fires repetitively when at least ``min_spikes`` spikes fall in
        the window.
    """
    if parameter not in model.parameter_names:
        raise ModelError(f"{model.name} has no parameter '{parameter}'; its parameters are "
                         f"{', '.join(model.parameter_names)}")
    vals = _input_values(model, parameter, values)
    base = dict(params or {})
    fps: list[list[FixedPoint]] = [[] for _ in vals]
    if fixed_points:
        vf = _field(model, base, {parameter: float(vals[0])}, None, max_states=None)
        k_par = vf.system.param_names.index(parameter) if parameter in vf.system.param_names else None
        for k, value in enumerate(vals):
            if k_par is not None:
                vf.params[k_par] = float(value)
                vf.values[parameter] = float(value)
            fps[k] = find_fixed_points(vf, ranges, n=resolution)
    dur = float(to_si(duration, "duration", second.dim))
    tr = 0.5 * dur if transient is None else float(to_si(transient, "transient", second.dim))
    rate = counts = None
    if simulate:
        step = float(to_si(dt, "dt", second.dim))
        counts, _ = firing_counts(model, parameter, vals, dur, base, step, tr, initial)
        rate = counts / (dur - tr)
    return BifurcationScan(model, parameter, vals, fps, rate, counts, (tr, dur), int(min_spikes),
                           unit_name(model.dims[parameter]))

