"""``ts.fit(model, rec, method="staged")``: fit a model the way the field does, in stages, then refine it
with what only a differentiable simulator can do.

- a: the sub-threshold dynamics (C, g_L, E_L, V_reset, spike-triggered currents) by linear regression of
  the recorded voltage (:mod:`tidesim.fitting.subthreshold`), in seconds, with no search.
- b: the threshold (its resting value, escape-noise sharpness, spike-triggered movement) by maximising the
  likelihood of the recorded spikes (:mod:`tidesim.fitting.threshold`).
- b': for a model with a hard threshold, the threshold's level: the one shift of stage b's threshold (in
  units of its escape-noise width) whose deterministic spikes best match the recorded ones (coincidence
  factor, with a penalty on the spike count), all candidates in one batched simulation.
- c: optionally (``refine=N``), N Adam steps through the simulator on a spike-timing loss for all the
  fitted parameters at once, starting from a-b'.

Each zoo family says how its parameters follow from the stages (:data:`FAMILIES`): the GIF directly; MAT
(no reset, no adaptation current, two threshold time scales); GLIF levels 1-5 (after-spike currents are
the GIF's with the opposite sign, the spike-induced threshold one exponential, the voltage-dependent
threshold an extra feature of stage b); AdEx (one adaptation time scale; with ``adaptive_threshold``, one
threshold component). The fit's ``settings["stages"]`` says what was estimated from the data, how, and
how well.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.signal import lfilter

from tidesim.analysis.timing import coincidence_factor
from tidesim.fitting.data import FitData
from tidesim.fitting.errors import FitError
from tidesim.fitting.subthreshold import SubthresholdFit, fit_subthreshold, model_voltage
from tidesim.fitting.threshold import ThresholdFit, fit_threshold

__all__ = ["Family", "FAMILIES", "family_of", "run_stages", "StagedEstimate", "rest_bias"]


@dataclass(frozen=True)
class Family:
    """How one zoo family is fitted in stages.

    ``eta_taus``/``gamma_taus`` read the model's fixed time constants (s); ``to_params`` turns the stage a
    and b estimates into the model's parameters; ``level`` names the threshold parameter stage b' shifts
    (None: a model with escape noise keeps stage b's threshold); ``reset``: whether stage a resets the
    voltage at spikes (MAT's does not); ``extra``: threshold features of stage b beyond V (GLIF5's
    voltage-dependent component)."""

    eta_taus: Callable[[Any], Sequence[float]]
    gamma_taus: Callable[[Any], Sequence[float]]
    to_params: Callable[[Any, SubthresholdFit, ThresholdFit], dict[str, float]]
    level: str | None
    reset: bool = True
    extra: Callable[[Any, FitData, SubthresholdFit, list], dict] | None = None


def _taus(model, names: Sequence[str]) -> tuple[float, ...]:
    return tuple(float(model.parameters[n]) for n in names)


def _gif_params(model, sub: SubthresholdFit, thr: ThresholdFit) -> dict[str, float]:
    out = {"C": sub.C, "gL": sub.gL, "EL": sub.EL, "V_reset": sub.V_reset, "T_ref": sub.T_ref,
           "VT_star": thr.VT_star}
    if "DV" in model.parameter_names:
        out["DV"] = thr.DV
    out.update({f"a_eta_{k + 1}": float(a) for k, a in enumerate(sub.a_eta)})
    out.update({f"a_gamma_{k + 1}": float(a) for k, a in enumerate(thr.a_gamma)})
    if "theta_v" in thr.extra:
        out["a_v"] = float(thr.extra["theta_v"])
    return out


def _mat_params(model, sub: SubthresholdFit, thr: ThresholdFit) -> dict[str, float]:
    return {"EL": sub.EL, "R": 1.0 / sub.gL, "tau_m": sub.tau_m, "omega": thr.VT_star,
            "alpha_1": float(thr.a_gamma[0]), "alpha_2": float(thr.a_gamma[1])}


def _glif_level(model) -> int:
    return int(model.name[-1])


def _glif_params(model, sub: SubthresholdFit, thr: ThresholdFit) -> dict[str, float]:
    level = _glif_level(model)
    out = {"C": sub.C, "R": 1.0 / sub.gL, "EL": sub.EL, "theta_inf": thr.VT_star, "t_ref": sub.T_ref}
    if level in (1, 3):
        out["V_reset"] = sub.V_reset
    else:  # reset rules start as a fixed reset: v <- E_L + 0 * (v - E_L) + (V_reset - E_L)
        out.update({"f_v": 0.0, "delta_V": sub.V_reset - sub.EL, "delta_theta_s": float(thr.a_gamma[0])})
    if level >= 3:  # after-spike currents add to the input: the GIF's eta with the opposite sign
        out.update({"A_1": float(-sub.a_eta[0]), "A_2": float(-sub.a_eta[1])})
    if level == 5:
        out["a_v"] = float(thr.extra["theta_v"])
    return out


def _voltage_threshold(data: FitData, sub: SubthresholdFit, voltages: list, rate: float, gain: float) -> dict:
    """A threshold component that follows the voltage: ``d theta/dt = rate (gain a (V - E_L) - theta)`` as
    exponential Euler steps it (``V`` held over each step, the start of step ``k`` giving sample
    ``k + 1``), as a feature whose coefficient is ``a`` (the voltage is the model's, spikes fed back)."""
    d = np.exp(-rate * data.dt)
    return {"theta_v": [lfilter([0.0, (1 - d) * gain], [1.0, -d], v - sub.EL) for v in voltages]}


def _glif_extra(model, data: FitData, sub: SubthresholdFit, voltages: list) -> dict:
    """GLIF5's voltage-dependent threshold: ``d theta_v/dt = a_v (V - E_L) - b_v theta_v``."""
    if _glif_level(model) != 5:
        return {}
    b_v = float(model.parameters["b_v"])
    return _voltage_threshold(data, sub, voltages, b_v, 1.0 / b_v)


def _gif_extra(model, data: FitData, sub: SubthresholdFit, voltages: list) -> dict:
    """The GIF's voltage-dependent threshold: ``tau_v d theta_v/dt = a_v (V - E_L) - theta_v``."""
    return _voltage_threshold(data, sub, voltages, 1.0 / float(model.parameters["tau_v"]), 1.0)


def _adex_params(model, sub: SubthresholdFit, thr: ThresholdFit) -> dict[str, float]:
    out = {"C": sub.C, "gL": sub.gL, "EL": sub.EL, "V_reset": sub.V_reset, "a": 0.0, "b": float(sub.a_eta[0]),
           "DeltaT": float(np.clip(thr.DV, 0.5e-3, 5e-3))}
    if "VT_rest" in model.parameter_names:
        out.update({"VT_rest": thr.VT_star, "delta_VT": float(max(thr.a_gamma[0], 0.0))})
    else:
        out["VT"] = thr.VT_star
    return out


#: The zoo families a staged fit knows, by model name.
FAMILIES: dict[str, Family] = {
    **{name: Family(lambda m: _taus(m, [f"tau_eta_{k}" for k in range(1, 6)]),
                    lambda m: _taus(m, [f"tau_gamma_{k}" for k in range(1, 6)]), _gif_params, level,
                    extra=_gif_extra)
       for name, level in (("gif", None), ("gif_hazard", None), ("gif_threshold", "VT_star"))},
    # MAT's membrane runs through spikes; stage a regresses the GIF's spike-triggered kernels too, as nuisance
    # terms for the recorded after-potentials, so that they do not bias R and tau_m
    "mat": Family(lambda m: tuple(t * 1e-3 for t in (3, 10, 30, 100, 300)), lambda m: _taus(m, ["tau_1", "tau_2"]),
                  _mat_params, "omega", reset=False),
    "adex": Family(lambda m: _taus(m, ["tau_w"]), lambda m: (), _adex_params, "VT"),
    "adex_threshold": Family(lambda m: _taus(m, ["tau_w"]), lambda m: _taus(m, ["tau_VT"]), _adex_params,
                             "VT_rest"),
}
for _level in range(1, 6):
    FAMILIES[f"glif{_level}"] = Family(
        (lambda m: (1.0 / float(m.parameters["k_1"]), 1.0 / float(m.parameters["k_2"])))
        if _level >= 3 else (lambda m: ()),
        (lambda m: (1.0 / float(m.parameters["b_s"]),)) if _level in (2, 4, 5) else (lambda m: ()),
        _glif_params, "theta_inf", extra=_glif_extra)


def family_of(model) -> Family | None:
    """The staged-fit family of ``model`` (by its zoo name), or None."""
    return FAMILIES.get(getattr(model, "name", ""))


@dataclass
class StagedEstimate:
    """The parameters after stages a, b (and b'), and what each stage did (for ``settings["stages"]``)."""

    params: dict[str, float]
    subthreshold: SubthresholdFit
    threshold: ThresholdFit
    stages: list[dict[str, Any]] = field(default_factory=list)
    rest: dict[str, float] | None = None  # how sweeps' own resting potentials become bias currents

    def bias(self, data: FitData) -> torch.Tensor:
        """Per sweep of ``data``, the constant current (A) that puts the model at the sweep's recorded
        resting potential (0 where the sweep has none, or the fit did not use them)."""
        return rest_bias(data, self.rest)


def rest_bias(data: FitData, rest: dict[str, float] | None) -> torch.Tensor:
    """``g_L (V_baseline - E_L)`` per sweep (A): the unrecorded holding current that makes the cell rest
    where the sweep's pre-stimulus voltage says (0 without a baseline, or when ``rest`` is None)."""
    if not rest:
        return torch.zeros(data.n_sweeps, dtype=torch.float64)
    return torch.nan_to_num(rest["gL"] * (data.baseline_voltage() - rest["EL"]), nan=0.0)


def _stage_a_report(sub: SubthresholdFit, seconds: float) -> dict[str, Any]:
    return {"stage": "a: sub-threshold", "how": "linear regression of the recorded voltage (output error, "
            "recorded spikes fed back), membrane time constant searched on a grid and refined",
            "estimated": {"C": sub.C, "gL": sub.gL, "EL": sub.EL, "V_reset": sub.V_reset, "T_ref": sub.T_ref,
                          "tau_m": sub.tau_m, "a_eta": [float(a) for a in sub.a_eta],
                          "current_lag_samples": sub.lag,
                          "electrode_taps_ohm": {str(k): v for k, v in sub.electrode_taps.items()}},
            "quality": {"voltage_variance_explained": sub.variance_explained, "voltage_rmse_V": sub.rmse,
                        "samples": sub.n_samples}, "seconds": seconds}


def _stage_a_warnings(sub: SubthresholdFit, poor: float = 0.8) -> list[str]:
    out = []
    grid = sorted(sub.tau_scores) if sub.tau_scores else []
    if grid and (sub.tau_m >= grid[-1] * 0.999 or sub.tau_m <= grid[0] * 1.001):
        out.append(f"stage a: the membrane time constant ({sub.tau_m * 1e3:.3g} ms) is at the edge of the range "
                   f"searched ({grid[0] * 1e3:.3g}-{grid[-1] * 1e3:.3g} ms): the leaky membrane does not describe "
                   "this recording well (or its time constant is outside that range)")
    if sub.variance_explained < poor:
        out.append(f"stage a: the sub-threshold model explains {100 * sub.variance_explained:.0f}% of the "
                   f"recorded voltage's variance away from spikes (below {100 * poor:.0f}%): expect poor "
                   "predictions; look at fit.plot() and the recording")
    return out


def _stage_b_warnings(thr: ThresholdFit, dropped: list[str], broad: float = 10e-3) -> list[str]:
    out = [f"stage b: the voltage-dependent threshold ({', '.join(dropped)}) took the membrane voltage's role in "
           "the likelihood; it was left out (kept at the model's value)"] if dropped else []
    if thr.DV > broad:
        out.append(f"stage b: the escape noise is {thr.DV * 1e3:.3g} mV wide (more than {broad * 1e3:.0f} mV): "
                   "the model's voltage hardly predicts when this cell spikes (the spike history does the work); "
                   "parts of the recording may be outside what the model can describe (rectification, "
                   "rebound, depolarization block)")
    return out


def _stage_b_report(thr: ThresholdFit, seconds: float) -> dict[str, Any]:
    return {"stage": "b: threshold", "how": "maximum likelihood of the recorded spikes under escape noise "
            "(Newton's method; log-concave)",
            "estimated": {"VT_star": thr.VT_star, "DV": thr.DV, "lambda0": thr.lambda0,
                          "a_gamma": [float(a) for a in thr.a_gamma], **thr.extra},
            "quality": {"bits_per_spike": thr.bits_per_spike, "log_likelihood": thr.log_likelihood,
                        "spikes": thr.n_spikes}, "seconds": seconds}


def run_stages(model, data: FitData, t_ref: float | None = None, electrode: Sequence[int] = (-1, 0, 1),
               lags: Sequence[int] = (0, 1), rest: str = "baseline") -> StagedEstimate:
    """Stages a and b on ``data`` for a model of a known family (see :data:`FAMILIES`).

    ``rest="baseline"``: each sweep with a pre-stimulus stretch rests at its recorded voltage there (a bias
    current the recording did not store; see :meth:`FitData.baseline_voltage`), ``"model"``: every sweep
    rests at the fitted ``E_L``."""
    fam = family_of(model)
    if fam is None:
        raise FitError(f"{model.name} has no staged fit (known: {', '.join(sorted(FAMILIES))}); use "
                       "method='auto' with parameter bounds")
    if rest not in ("baseline", "model"):
        raise FitError(f"rest must be 'baseline' or 'model', got {rest!r}")
    t0 = time.perf_counter()
    rests = data.baseline_voltage().numpy() if rest == "baseline" else None
    sub = fit_subthreshold(data, eta_taus=fam.eta_taus(model), t_ref=t_ref, electrode=electrode, lags=lags,
                           rest=rests, reset=fam.reset)
    t1 = time.perf_counter()
    if not fam.reset:  # MAT: the spike-triggered kernels only absorbed the recorded spikes' after-potentials;
        # its model voltage has none, so the threshold is fitted to the voltage without them
        sub = replace(sub, a_eta=np.zeros_like(sub.a_eta))
    voltages = model_voltage(data, sub, pre_reset=True, reset=fam.reset, rest=rests)
    lam0 = float(model.parameters.get("lambda0", 1000.0))
    # the voltage-dependent threshold follows the voltage as the model runs it: reset, frozen while refractory
    extra = fam.extra(model, data, sub, model_voltage(data, sub, pre_reset=False, reset=fam.reset,
                                                      rest=rests)) if fam.extra else {}
    dropped = False
    try:
        thr = fit_threshold(data, voltages, sub.T_ref, gamma_taus=fam.gamma_taus(model), lambda0=lam0,
                            extra=extra)
    except FitError:
        if not extra:
            raise
        # the voltage-dependent part took the voltage's role (1/DV <= 0): the threshold without it
        thr = fit_threshold(data, voltages, sub.T_ref, gamma_taus=fam.gamma_taus(model), lambda0=lam0)
        dropped = True
    t2 = time.perf_counter()
    params = {k: v for k, v in fam.to_params(model, sub, thr).items() if k in model.parameter_names}
    stages = [_stage_a_report(sub, t1 - t0), _stage_b_report(thr, t2 - t1)]
    stages[0]["warnings"] = _stage_a_warnings(sub)
    stages[1]["warnings"] = _stage_b_warnings(thr, list(extra) if dropped else [])
    used = rests is not None and bool(np.isfinite(rests).any())
    if used:
        stages[0]["estimated"]["sweep_rest_V"] = [float(r) for r in rests]
    return StagedEstimate(params, sub, thr, stages, {"EL": sub.EL, "gL": sub.gL} if used else None)


def _score(out, data: FitData, delta: float) -> torch.Tensor:
    """Per parameter point: mean over sweeps of 2|n_model - n_data|/max(n_data, 1) - Gamma (lower is
    better; the rate-corrected coincidence error of Clopath et al. 2007)."""
    B = out.spikes.shape[1]
    scores = torch.zeros(B, dtype=torch.float64)
    for b in range(B):
        total = 0.0
        for s in range(data.n_sweeps):
            d = np.asarray(data.spike_times[s], dtype=float)
            m = np.nonzero(out.spikes[:, b, s].numpy() > 0.5)[0] * data.dt
            g = coincidence_factor(d, m, data.duration, delta) if len(d) + len(m) else 1.0
            total += 2 * abs(len(m) - len(d)) / max(len(d), 1) - (0.0 if np.isnan(g) else g)
        scores[b] = total / data.n_sweeps
    return scores


def threshold_level(problem, est: StagedEstimate, name: str, delta: float,
                    offsets: Sequence[float] = tuple(np.linspace(-4, 4, 17))) -> pd.DataFrame:
    """Stage b': the hard threshold's level, shifted from stage b's by ``offset * DV``, chosen by the
    deterministic spikes' agreement with the recorded ones (:func:`_score`); sets it in ``est.params``."""
    names = problem.names
    base = torch.tensor([est.params[n] for n in names], dtype=torch.float64)
    j = names.index(name)
    x = base.repeat(len(offsets), 1)
    x[:, j] = base[j] + torch.tensor(offsets, dtype=torch.float64) * est.threshold.DV
    t0 = time.perf_counter()
    with torch.no_grad():
        out = problem.simulate(x)
    scores = _score(out, problem.data, delta)
    best = int(torch.argmin(scores))
    est.params[name] = float(x[best, j])
    est.stages.append({"stage": "b': threshold level", "how": f"{name} shifted by multiples of DV from stage b, "
                       "the shift whose deterministic spikes best match the recorded ones (rate-corrected "
                       f"coincidence error, delta {delta * 1e3:g} ms)", "estimated": {name: est.params[name],
                       "shift_in_DV": float(offsets[best])}, "quality": {"error": float(scores[best])},
                       "seconds": time.perf_counter() - t0})
    return pd.DataFrame({"offset_DV": list(offsets), name: x[:, j].numpy(), "error": scores.numpy()})


def _delta_for(data: FitData) -> float:
    """The coincidence window: 4 ms, or 2 ms (the 2007 competition's) where the cell fires so fast that 4 ms
    windows fill with chance coincidences (above 100 Hz on some sweep)."""
    rate = max((len(t) / data.duration for t in data.spike_times), default=0.0)
    return 2e-3 if rate > 100.0 else 4e-3


def bounds_around(model, params: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Search ranges for refining staged estimates: voltages +-10 mV, positive quantities x/÷ 3 (log
    scale), signed amplitudes +-(3 |value| + a small floor)."""
    out = {}
    for name, value in params.items():
        unit = model.unit_of(name)
        if unit == "V":
            out[name] = (value - 10e-3, value + 10e-3)
        elif value > 0 and name not in ("f_v",) and not name.startswith(("a_", "A_", "alpha_", "delta_")):
            out[name] = (value / 3.0, value * 3.0, "log")
        else:
            floor = {"A": 20e-12, "1": 0.1}.get(unit, 1e-3 if unit == "V" else abs(value) + 1e-12)
            half = 3 * abs(value) + floor
            out[name] = (value - half, value + half)
    if "f_v" in out:
        out["f_v"] = (0.0, 1.0)
    return out
