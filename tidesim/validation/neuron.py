"""``ts.crossvalidate``: run a model in torch and in Brian2 with the same inputs, and compare.

Deterministic models are compared trace by trace and spike by spike: before each neuron's first
spike the traces must agree to ``trace_rtol`` of the variable's scale (the same arithmetic runs
in both, so the errors are rounding-sized); spike counts must be equal and every spike time must
agree within ``spike_tol`` time steps. Models with noise (``xi``) are compared in distribution:
mean rate and trace statistics within ``stat_rtol``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from brian2 import second

from tidesim.core.model import NeuronModel
from tidesim.core.result import SimulationResult
from tidesim.core.units import fmt, lab_unit
from tidesim.engines.simulate import simulate
from tidesim.validation.verdicts import SpikeVerdict, TraceVerdict, spike_verdict, trace_verdict

__all__ = ["crossvalidate_neuron", "CrossValidationReport", "compare", "VariableComparison", "SpikeComparison"]


@dataclass
class VariableComparison:
    """Agreement of one recorded variable (errors in the variable's SI unit)."""

    name: str
    unit: str
    scale: float
    tolerance: float
    max_abs_error_before_first_spike: float
    max_abs_error: float
    rmse: float
    passed: bool
    verdict: TraceVerdict | None = None  # deterministic models: exact, within tolerance, diverged, disagree

    def describe(self, dim) -> str:
        """One line whose verdict follows from the numbers on it."""
        v = self.verdict
        head = f"{self.name:>10}: "
        if v is None:  # compared in distribution
            return (head + f"mean and spread within {fmt(self.tolerance, dim)} of Brian2's (difference of means "
                    f"{fmt(self.max_abs_error_before_first_spike, dim)})  {'ok' if self.passed else 'FAIL'}")
        if v.outcome == "exact":
            return head + "exact (bitwise equal at every step)"
        if v.outcome == "within tolerance":
            return head + (f"within tolerance: max |error| {fmt(self.max_abs_error, dim)} <= "
                           f"{fmt(self.tolerance, dim)}")
        where = f"at {v.at:.4g} s (neuron {v.neuron}, after {v.spikes_before} of its spikes)"
        grew = (f", grown from {fmt(v.first_difference, dim)} about {v.growth_per_50ms:.3g}x per 50 ms"
                if v.growth_per_50ms is not None else "")
        if v.outcome == "diverged":
            return head + (f"diverged {where}: |error| <= {fmt(self.tolerance, dim)} until then{grew}; max "
                           f"{fmt(self.max_abs_error, dim)} after  {'ok' if self.passed else 'FAIL'}")
        return head + (f"DISAGREE {where}: |error| exceeds the tolerance {fmt(self.tolerance, dim)} (first "
                       f"difference {fmt(v.first_difference or 0.0, dim)}); max {fmt(self.max_abs_error, dim)}"
                       "  FAIL")


@dataclass
class SpikeComparison:
    """Agreement of spikes: counts per neuron and the largest spike-time difference (s)."""

    counts_torch: np.ndarray
    counts_brian2: np.ndarray
    max_time_difference: float
    tolerance: float
    passed: bool
    verdict: SpikeVerdict | None = None

    def describe(self) -> str:
        """One line whose verdict follows from the numbers on it."""
        v, total = self.verdict, f"torch {int(self.counts_torch.sum())}, Brian2 {int(self.counts_brian2.sum())}"
        head = f"{'spikes':>10}: "
        if v is None:
            return head + (f"{total}; mean rates within the statistical tolerance  "
                           f"{'ok' if self.passed else 'FAIL'}")
        if v.outcome == "exact":
            return head + f"exact ({total}, every spike time identical)"
        if v.outcome == "within tolerance":
            return head + (f"within tolerance ({total}): max spike-time difference "
                           f"{self.max_time_difference * 1e3:.3g} ms <= {self.tolerance * 1e3:.3g} ms")
        stats = ", ".join(f"{k.replace('_', ' ')} {x:.4g} vs {y:.4g}"
                          for k, (x, y) in (v.statistics or {}).items())
        where = f"at {v.at:.4g} s (neuron {v.neuron}, spike {v.spike_index + 1})"
        if v.outcome == "diverged":
            return head + (f"diverged {where}; statistics agree within {v.stat_rtol:.0%}: {stats}  "
                           f"{'ok' if self.passed else 'FAIL'}")
        why = (f"statistics differ by more than {v.stat_rtol:.0%}" if not v.statistics_agree
               else "no earlier spike could have amplified a rounding difference" if v.spike_index == 0
               else "the traces disagree before any spike")
        return head + f"DISAGREE: differ {where}; {why}: {stats}  FAIL"

    @property
    def mismatched_neurons(self) -> list[int]:
        return [int(k) for k in np.nonzero(self.counts_torch != self.counts_brian2)[0]]


@dataclass
class CrossValidationReport:
    """Result of :func:`crossvalidate`: per-variable and spike agreement, pass/fail."""

    model: str
    variables: list[VariableComparison]
    spikes: SpikeComparison | None
    torch_result: SimulationResult
    brian2_result: SimulationResult
    timings: dict[str, float] = field(default_factory=dict)
    stochastic: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every variable and the spikes agree within their tolerances."""
        ok = all(v.passed for v in self.variables)
        return ok and (self.spikes is None or self.spikes.passed)

    def to_dataframe(self) -> pd.DataFrame:
        """A row per variable (errors in its SI unit) and a row ``spikes``."""
        rows = []
        for v in self.variables:
            rows.append({"quantity": v.name, "outcome": v.verdict.outcome if v.verdict else "statistics",
                         "diverged_at": v.verdict.at if v.verdict else None,
                         "unit": v.unit, "scale": v.scale, "tolerance": v.tolerance,
                         "max_abs_error_before_first_spike": v.max_abs_error_before_first_spike,
                         "max_abs_error": v.max_abs_error, "rmse": v.rmse, "passed": v.passed})
        if self.spikes is not None:
            s = self.spikes
            rows.append({"quantity": "spikes", "outcome": s.verdict.outcome if s.verdict else "statistics",
                         "diverged_at": s.verdict.at if s.verdict else None, "unit": "s", "tolerance": s.tolerance,
                         "spikes_torch": int(s.counts_torch.sum()), "spikes_brian2": int(s.counts_brian2.sum()),
                         "neurons_with_count_mismatch": len(s.mismatched_neurons),
                         "max_spike_time_difference": s.max_time_difference, "passed": s.passed})
        return pd.DataFrame(rows).set_index("quantity")

    def __str__(self) -> str:
        lines = [f"Cross-validation of {self.model}: torch vs Brian2 "
                 f"({self.brian2_result.n} neurons, {self.brian2_result.duration:g} s, "
                 f"dt = {fmt(self.brian2_result.dt, _second())}, Brian2 target "
                 f"{getattr(self.brian2_result, 'target', '?')})"]
        for v in self.variables:
            lines.append("  " + v.describe(self.torch_result.model.dims[v.name]))
        if self.spikes is not None:
            lines.append("  " + self.spikes.describe())
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.timings:
            lines.append("  wall time: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.timings.items()))
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines)

    def plot(self, neurons: Sequence[int] | None = None):
        """Traces of both simulators and their difference, per variable."""
        # matplotlib loads only when a figure is drawn
        import matplotlib.pyplot as plt

        names = [v.name for v in self.variables]
        neurons = list(neurons if neurons is not None else range(min(3, self.torch_result.n)))
        fig, axes = plt.subplots(len(names), 2, figsize=(11, 2.4 * len(names)), squeeze=False, sharex=True)
        t = self.torch_result.t.detach().cpu().numpy()
        for row, name in enumerate(names):
            dim = self.torch_result.model.dims[name]
            scale, label = lab_unit(dim)
            unit = label or self.torch_result.model.unit_of(name)
            a_trace, a_err = axes[row]
            for k in neurons:
                tb = self.brian2_result[name][:, k].detach().cpu().numpy()
                tt = self.torch_result[name][:, k].detach().cpu().numpy()
                a_trace.plot(t, tb / scale, lw=1.5, alpha=0.5, label=f"Brian2, neuron {k}")
                a_trace.plot(t, tt / scale, "--", lw=0.8, label=f"torch, neuron {k}")
                a_err.plot(t, (tt - tb) / scale, lw=0.8, label=f"neuron {k}")
            a_trace.set_ylabel(f"{name} ({unit})")
            a_err.set_ylabel(f"torch - Brian2 ({unit})")
        axes[0, 0].legend(fontsize=7)
        axes[-1, 0].set_xlabel("time (s)")
        axes[-1, 1].set_xlabel("time (s)")
        fig.suptitle(f"{self.model}: {'PASSED' if self.passed else 'FAILED'}")
        fig.tight_layout()
        return fig


def _second():
    return second.dim


def _first_spike_steps(res: SimulationResult) -> np.ndarray:
    s = res.spikes.detach().cpu().numpy()
    first = np.full(s.shape[1], s.shape[0], dtype=int)
    rows, cols = np.nonzero(s)
    for r, c in zip(rows[::-1], cols[::-1]):
        first[c] = r
    return first


def compare(
    res_torch: SimulationResult,
    res_b2: SimulationResult,
    trace_rtol: float = 1e-6,
    spike_tol: float = 1.0,
    stat_rtol: float = 0.1,
) -> tuple[list[VariableComparison], SpikeComparison | None, list[str]]:
    """Compare two results of the same model and inputs (see :func:`crossvalidate`).

    Deterministic models get one of four outcomes per variable and for the spikes (see
    :mod:`tidesim.validation.verdicts`); a variable that diverged after spikes passes only when the
    spike statistics agree. Models with noise are compared in distribution."""
    model = res_torch.model
    if model.stochastic:
        return _compare_in_distribution(res_torch, res_b2, stat_rtol)
    spikes = None
    if model.threshold is not None:
        spikes = _spike_comparison(res_torch, res_b2, spike_tol, stat_rtol)
    first = np.minimum(_first_spike_steps(res_torch), _first_spike_steps(res_b2))
    raster = (res_torch.spikes.detach().cpu().numpy() + res_b2.spikes.detach().cpu().numpy()) > 0
    variables = []
    for name in res_b2.states:
        a, b, err, scale = _errors(res_torch, res_b2, name)
        mask = np.arange(a.shape[0])[:, None] <= first[None, :]
        before = float(np.max(np.where(mask, err, 0.0))) if err.size else 0.0
        tol = trace_rtol * scale
        verdict = trace_verdict(a, b, tol, res_b2.dt, raster)
        passed = verdict.outcome in ("exact", "within tolerance") or (
            verdict.outcome == "diverged" and spikes is not None and spikes.passed)
        variables.append(VariableComparison(
            name=name, unit=model.unit_of(name), scale=scale, tolerance=tol,
            max_abs_error_before_first_spike=before,
            max_abs_error=float(np.nanmax(err)) if err.size else 0.0,
            rmse=float(np.sqrt(np.nanmean(err**2))) if err.size else 0.0, passed=passed, verdict=verdict))
    if spikes is not None and spikes.verdict.outcome == "diverged" and \
            any(v.verdict.outcome == "disagree" for v in variables):  # not a rounding divergence, then
        spikes.verdict.outcome, spikes.passed = "disagree", False
        for v in variables:
            v.passed = v.passed and v.verdict.outcome != "diverged"
    return variables, spikes, []


def _errors(res_torch: SimulationResult, res_b2: SimulationResult, name: str):
    a = res_torch[name].detach().cpu().to(torch.float64).numpy()
    b = res_b2[name].detach().cpu().to(torch.float64).numpy()
    finite_b = b[np.isfinite(b)]
    scale = float(np.max(np.abs(finite_b))) if finite_b.size else 0.0
    return a, b, np.abs(a - b), scale if scale > 0 else 1.0


def _spike_comparison(res_torch: SimulationResult, res_b2: SimulationResult, spike_tol: float,
                      stat_rtol: float) -> SpikeComparison:
    ct = res_torch.spikes.detach().cpu().numpy().sum(0).astype(int)
    cb = res_b2.spikes.detach().cpu().numpy().sum(0).astype(int)
    trains_t = [np.asarray(x) for x in res_torch.spike_trains]
    trains_b = [np.asarray(x) for x in res_b2.spike_trains]
    worst = 0.0
    for tt, tb in zip(trains_t, trains_b):
        m = min(len(tt), len(tb))
        if m:
            worst = max(worst, float(np.max(np.abs(tt[:m] - tb[:m]))))
    tol = spike_tol * res_b2.dt * (1 + 1e-9)
    verdict = spike_verdict(trains_t, trains_b, tol, res_b2.duration, stat_rtol)
    return SpikeComparison(ct, cb, worst, tol, verdict.outcome != "disagree", verdict)


def _compare_in_distribution(res_torch: SimulationResult, res_b2: SimulationResult, stat_rtol: float
                             ) -> tuple[list[VariableComparison], SpikeComparison | None, list[str]]:
    model = res_torch.model
    variables = []
    for name in res_b2.states:
        a, b, err, scale = _errors(res_torch, res_b2, name)
        tol = stat_rtol * max(float(np.std(b)), 1e-300)
        mean_diff = abs(float(np.mean(a)) - float(np.mean(b)))
        std_diff = abs(float(np.std(a)) - float(np.std(b)))
        passed = mean_diff <= tol and std_diff <= stat_rtol * float(np.std(b)) + 1e-300
        variables.append(VariableComparison(
            name=name, unit=model.unit_of(name), scale=scale, tolerance=tol,
            max_abs_error_before_first_spike=mean_diff,
            max_abs_error=float(np.nanmax(err)) if err.size else 0.0,
            rmse=float(np.sqrt(np.nanmean(err**2))) if err.size else 0.0, passed=passed))
    spikes = None
    if model.threshold is not None:
        ct = res_torch.spikes.detach().cpu().numpy().sum(0).astype(int)
        cb = res_b2.spikes.detach().cpu().numpy().sum(0).astype(int)
        ok = abs(ct.mean() - cb.mean()) <= stat_rtol * max(cb.mean(), 1.0 / max(len(cb), 1))
        spikes = SpikeComparison(ct, cb, float("nan"), float("nan"), bool(ok))
    return variables, spikes, ["noise: traces compared in distribution (mean, std), spikes by mean rate"]


def crossvalidate_neuron(
    model: NeuronModel,
    duration: Any = 1.0,
    n: int | None = None,
    dt: Any = 1e-4,
    params: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    record: Sequence[str] | None = None,
    initial: Mapping[str, Any] | None = None,
    target: str = "auto",
    dtype: torch.dtype = torch.float64,
    trace_rtol: float = 1e-6,
    spike_tol: float = 1.0,
    stat_rtol: float = 0.1,
    seed: int | None = 0,
) -> CrossValidationReport:
    """Run ``model`` in torch and in Brian2 with the same arguments and compare them (see
    :func:`tidesim.crossvalidate`)."""
    common = dict(duration=duration, n=n, dt=dt, params=params, inputs=inputs, record=record, initial=initial)
    t0 = time.perf_counter()
    with torch.no_grad():
        res_t = simulate(model, backend="torch", dtype=dtype, seed=seed, **common)
    t1 = time.perf_counter()
    res_b = simulate(model, backend="brian2", target=target, seed=seed, **common)
    t2 = time.perf_counter()
    variables, spikes, notes = compare(res_t, res_b, trace_rtol, spike_tol, stat_rtol)
    return CrossValidationReport(
        model=model.name, variables=variables, spikes=spikes, torch_result=res_t, brian2_result=res_b,
        timings={"torch": t1 - t0, "brian2": t2 - t1}, stochastic=model.stochastic, notes=notes)
