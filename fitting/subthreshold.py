"""Stage a of a staged fit: the sub-threshold dynamics from the recorded voltage, by linear regression.

The model between spikes is linear: ``C dV/dt = g_L (E_L - V) + I - eta`` with the spike-triggered current
``eta = sum_k a_k sum_spikes exp(-(t - t_spike)/tau_k)`` (fixed ``tau_k``), ``V`` set to ``V_reset`` at
each spike and held for ``T_ref``. For a given membrane time constant its exponential-Euler solution (the
integration tidesim and Brian2 run) is linear in ``E_L``, ``R = 1/g_L``, ``V_reset`` and ``R a_k``, so
the voltage it predicts is a regression on filtered regressors: an output-error fit (the model's voltage
against the recorded one, not the noisy dV/dt of Pozzorini et al. 2015), solved by least squares for each
time constant of a grid, the best kept. The observed spikes are fed back (resets at the recorded spikes).

Single-electrode recordings carry the electrode's voltage drop (Brette et al. 2008, "High-resolution
intracellular recordings using a real-time computational model of the electrode", Neuron 59:379): a few
taps of the current around each sample (``electrode=(-1, 0, 1)``) are regressed with the membrane terms,
a short electrode kernel compensated at the same time (AEC without a calibration trace: the fluctuating
stimulus calibrates it). The kernel's taps are reported; the model's own voltage has no electrode.

Conventions (the model's steps, Brian2's schedule): a recorded spike at sample ``k`` is the model's spike
in step ``k - 1`` (the update from ``k - 1`` to ``k`` crossed the threshold); the reset sets ``V[k]``
to ``V_reset``, held for ``T_ref``, free again from sample ``k - 1 + n_ref``; ``eta`` jumps at sample ``k``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.signal import lfilter

from tidesim.fitting.data import FitData
from tidesim.fitting.errors import FitError

__all__ = ["SubthresholdFit", "fit_subthreshold", "model_voltage", "spike_steps", "exp_basis", "refractory_steps"]

#: Default membrane time constants tried (s).
TAU_GRID = tuple(np.geomspace(1e-3, 200e-3, 32))


def spike_steps(data: FitData) -> list[np.ndarray]:
    """Per sweep, the model step of each recorded spike (sample index - 1), sorted and unique."""
    out = []
    for s in range(data.n_sweeps):
        k = np.nonzero(data.spikes[:, s].numpy() > 0.5)[0]
        out.append(np.unique(np.maximum(k - 1, 0)))
    return out


def refractory_steps(data: FitData, t_ref: float | None) -> int:
    """``T_ref`` in steps: as given, else the shortest inter-spike intervals' 1st percentile (at most 4 ms,
    at least one step): a model must be able to fire as fast as the cell did."""
    if t_ref is not None:
        return max(1, int(round(t_ref / data.dt)))
    isis = np.concatenate([np.diff(np.sort(t)) for t in data.spike_times if len(t) > 1] or [np.zeros(0)])
    if isis.size == 0:
        return max(1, int(round(2e-3 / data.dt)))
    return int(np.clip(np.floor(np.percentile(isis, 1) / data.dt + 1e-9), 1, max(1, round(4e-3 / data.dt))))


def exp_basis(steps: np.ndarray, n: int, taus: Sequence[float], dt: float) -> np.ndarray:
    """``[len(taus), n]``: at sample ``k``, ``sum over spike steps i < k of exp(-(k - 1 - i) dt / tau)``
    (a component that jumps by 1 after each spike, sampled at the start of each step)."""
    s = np.zeros(n)
    np.add.at(s, steps[steps < n], 1.0)
    return np.stack([lfilter([0.0, 1.0], [1.0, -np.exp(-dt / tau)], s) for tau in taus]) if len(taus) \
        else np.zeros((0, n))


@dataclass
class SubthresholdFit:
    """What stage a estimated (SI units) and how well the model's voltage follows the recording."""

    C: float
    gL: float
    EL: float
    V_reset: float
    T_ref: float
    eta_taus: tuple[float, ...]
    a_eta: np.ndarray  # amplitudes of eta's components (A)
    lag: int  # the current is used ``lag`` samples later than the voltage (a delayed current channel)
    electrode_taps: dict[int, float]  # current tap (samples) -> resistance (ohm), compensated
    variance_explained: float  # of the recorded voltage, on the fitted samples
    rmse: float  # V
    n_samples: int
    tau_scores: dict[float, float] = field(default_factory=dict)  # tau_m -> rmse (V), the grid searched

    @property
    def tau_m(self) -> float:
        """Membrane time constant C/g_L (s)."""
        return self.C / self.gL


class _Sweeps:
    """The regression's data: per sweep the current, voltage, spike steps and fitted-sample mask."""

    def __init__(self, data: FitData, n_ref: int, before: float, eta_taus: Sequence[float], reset: bool = True,
                 rest: Sequence[float] | None = None):
        self.dt, self.n_ref = data.dt, n_ref
        self.rest = np.full(data.n_sweeps, np.nan) if rest is None else np.asarray(rest, dtype=float)
        self.n = data.n_steps
        self.I = [data.current[:, s].numpy() for s in range(data.n_sweeps)]
        self.V = [data.voltage[:, s].numpy() for s in range(data.n_sweeps)]
        self.steps = spike_steps(data)
        nb = int(round(before / data.dt))
        self.masks, self.starts = [], []
        for st in self.steps:
            keep = np.ones(self.n, bool)
            for i in st:  # from `before` ahead of the spike to the end of its refractory period
                keep[max(0, i + 1 - nb):min(self.n, i + n_ref)] = False
            self.masks.append(keep)
            starts = np.unique(np.concatenate([[0], st + n_ref]).astype(int)) if reset else np.zeros(1, int)
            self.starts.append(starts[starts < self.n])
        self.eta = [exp_basis(st, self.n, eta_taus, data.dt) for st in self.steps]


def _segment_filter(u: np.ndarray, starts: np.ndarray, d: float) -> np.ndarray:
    """``y[k+1] = d y[k] + (1 - d) u[k]`` restarted at 0 at every segment start (linear, so the restarted
    response is the whole response minus its state at the start, decayed)."""
    n = len(u)
    y = lfilter([0.0, 1.0 - d], [1.0, -d], u)
    seg = np.zeros(n, dtype=int)
    seg[starts] = starts
    a = np.maximum.accumulate(seg)
    return y - d ** (np.arange(n) - a) * y[a]


def _regressors(sw: _Sweeps, s: int, tau: float, lag: int, taps: Sequence[int],
                starts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(see :func:`_membrane_regressors`), with a sweep's known resting potential (``sw.rest``) moved from
    the E_L column to the known part."""
    X, known = _membrane_regressors(sw, s, tau, lag, taps, starts)
    rest = sw.rest[s]
    if np.isfinite(rest):
        known = known + rest * X[:, 0]
        X = X.copy()
        X[:, 0] = 0.0
    return X, known


def _membrane_regressors(sw: _Sweeps, s: int, tau: float, lag: int, taps: Sequence[int],
                         starts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Columns (E_L, R, V_reset, R a_k..., electrode taps) and the known part of the voltage (the sweep's
    initial value, decaying) for sweep ``s`` (segments restart at ``starts``, default after each reset)."""
    d = np.exp(-sw.dt / tau)
    n = sw.n
    starts = sw.starts[s] if starts is None else starts
    I = np.roll(sw.I[s], -lag)
    if lag:
        I[-lag:] = I[-lag - 1]
    seg = np.zeros(n, dtype=int)
    seg[starts] = starts
    a = np.maximum.accumulate(seg)
    decay = d ** (np.arange(n) - a)
    reset_col = np.where(a > 0, decay, 0.0)
    known = np.where(a == 0, decay * sw.V[s][0], 0.0)
    cols = [1.0 - decay, _segment_filter(I, starts, d), reset_col]
    cols += [-_segment_filter(e, starts, d) for e in sw.eta[s]]
    cols += [np.roll(sw.I[s], -t) for t in taps]
    return np.column_stack(cols), known


def _solve(sw: _Sweeps, n_sweeps: int, tau: float, lag: int, electrode: Sequence[int]
           ) -> tuple[float, np.ndarray, float]:
    """Least squares at one membrane time constant: (mean squared error, coefficients, variance of V)."""
    rows, target = [], []
    for s in range(n_sweeps):
        X, known = _regressors(sw, s, tau, lag, electrode)
        rows.append(X[sw.masks[s]])
        target.append((sw.V[s] - known)[sw.masks[s]])
    X, y = np.concatenate(rows), np.concatenate(target)
    scale = np.abs(X).max(0)
    scale[scale == 0] = 1.0
    coef, *_ = np.linalg.lstsq(X / scale, y, rcond=None)
    coef = coef / scale
    return float(np.mean((y - X @ coef) ** 2)), coef, float(np.var(y))


def fit_subthreshold(data: FitData, eta_taus: Sequence[float] = (), t_ref: float | None = None,
                     before: float = 2e-3, taus: Sequence[float] = TAU_GRID, lags: Sequence[int] = (0, 1),
                     electrode: Sequence[int] = (-1, 0, 1), reset: bool = True,
                     rest: Sequence[float] | None = None) -> SubthresholdFit:
    """Stage a: ``C``, ``g_L``, ``E_L``, ``V_reset`` and the amplitudes of ``eta`` (time constants
    ``eta_taus``, s) from the recorded voltage, the current and the recorded spikes.

    ``t_ref``: refractory period (s; default from the shortest inter-spike intervals, at most 4 ms);
    ``before``: how long before a recorded spike its upstroke starts (those samples are not sub-threshold);
    ``taus``: membrane time constants tried; ``lags``: current-to-voltage delays tried (samples);
    ``electrode``: current taps of the electrode kernel regressed with the membrane (``()`` for none);
    ``reset=False``: the model's voltage runs through spikes (MAT), their samples are only left out;
    ``rest``: per sweep, a known resting potential (V; NaN where unknown): such a sweep relaxes to it (an
    unrecorded holding current shifts a cell's rest from sweep to sweep), the others to the fitted ``E_L``.
    """
    if data.n_steps < 10:
        raise FitError("stage a needs recorded voltage traces, not a few samples")
    if not np.isfinite(data.voltage.numpy()).all():
        raise FitError(f"stage a needs the recorded voltage, and {', '.join(data.names)} hold NaN (a sweep "
                       "without a recorded voltage can be predicted, not fitted)")
    n_ref = refractory_steps(data, t_ref)
    sw = _Sweeps(data, n_ref, before, eta_taus, reset, rest)
    fitted = sum(int(m.sum()) for m in sw.masks)
    n_params = 3 + len(eta_taus) + len(electrode)
    if fitted < 20 * n_params:
        raise FitError(f"{', '.join(data.names[:3])}{'...' if data.n_sweeps > 3 else ''}: only {fitted} "
                       "sub-threshold samples between spikes; stage a needs stretches without spikes "
                       "(add sweeps with weaker or hyperpolarizing currents)")
    scores = {}
    for lag in lags:
        for tau in taus:
            scores[(lag, tau)] = _solve(sw, data.n_sweeps, tau, lag, electrode)
    lag, tau = min(scores, key=lambda key: scores[key][0])
    # the grid's best time constant, refined between its neighbours (the regression is exact only at the
    # true tau: a grid point leaves its error in the other coefficients)
    grid = sorted(taus)
    j = grid.index(tau)
    lo, hi = np.log(grid[max(j - 1, 0)]), np.log(grid[min(j + 1, len(grid) - 1)])
    if hi > lo:
        opt = minimize_scalar(lambda x: _solve(sw, data.n_sweeps, float(np.exp(x)), lag, electrode)[0],
                              bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
        if opt.fun < scores[(lag, tau)][0]:
            tau = float(np.exp(opt.x))
            scores[(lag, tau)] = _solve(sw, data.n_sweeps, tau, lag, electrode)
    best = (*scores[(lag, tau)][:1], lag, tau, *scores[(lag, tau)][1:])
    mse, lag, tau, coef, var = best
    EL, R, V_reset = coef[0], coef[1], coef[2]
    if np.all(np.isfinite(sw.rest)):  # every sweep's rest known: E_L is their mean
        EL = float(np.mean(sw.rest))
    k = len(eta_taus)
    if not (R > 0 and np.isfinite(R)):
        raise FitError(f"{', '.join(data.names[:3])}{'...' if data.n_sweeps > 3 else ''}: stage a found no "
                       f"positive input resistance (R = {R:.3g} ohm): the voltage does not follow the injected "
                       "current; check the current channel and its units")
    return SubthresholdFit(C=tau / R, gL=1.0 / R, EL=float(EL), V_reset=float(V_reset), T_ref=n_ref * data.dt,
                           eta_taus=tuple(float(t) for t in eta_taus), a_eta=np.asarray(coef[3:3 + k]) / R,
                           lag=int(lag),
                           electrode_taps={int(t): float(c) for t, c in zip(electrode, coef[3 + k:])},
                           variance_explained=1.0 - mse / var if var > 0 else float("nan"),
                           rmse=float(np.sqrt(mse)),
                           n_samples=fitted,
                           tau_scores={t: float(np.sqrt(v[0])) for (lg, t), v in scores.items() if lg == lag})


def model_voltage(data: FitData, fit: SubthresholdFit, pre_reset: bool = True, reset: bool = True,
                  rest: Sequence[float] | None = None) -> list[np.ndarray]:
    """Per sweep, the model's voltage driven by the recorded current with the recorded spikes fed back
    (no electrode). With ``pre_reset``, the sample of each spike holds the value the update reached (what
    the threshold saw) rather than ``V_reset``; ``reset=False`` for a model that never resets (MAT);
    ``rest``: per-sweep resting potentials, as for :func:`fit_subthreshold`."""
    n_ref = max(1, int(round(fit.T_ref / data.dt)))
    sw = _Sweeps(data, n_ref, 0.0, fit.eta_taus, reset, rest)
    out = []
    coef = np.concatenate([[fit.EL, 1.0 / fit.gL, fit.V_reset], fit.a_eta / fit.gL])
    tau = fit.C / fit.gL
    for s in range(data.n_sweeps):
        X, known = _regressors(sw, s, tau, fit.lag, ())
        v = X @ coef + known
        steps = sw.steps[s][sw.steps[s] + 1 < sw.n] if reset else np.zeros(0, int)
        for i in steps:  # frozen at V_reset while refractory
            v[i + 1:i + n_ref] = fit.V_reset
        if pre_reset and len(steps):
            # the update that crossed: segments restarted one sample later leave each spike sample to the
            # segment before it
            late = sw.starts[s][sw.starts[s] > 0] + 1
            X2, known2 = _regressors(sw, s, tau, fit.lag, (), np.concatenate([[0], late[late < sw.n]]))
            v[steps + 1] = (X2 @ coef + known2)[steps + 1]
        out.append(v)
    return out
