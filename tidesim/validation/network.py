"""``ts.crossvalidate(network)``: run a :class:`~tidesim.Network` in torch and in Brian2 and compare
population by population.

A deterministic network (spike generators, no Poisson sources, no noise ``xi``) is compared as
single models are (:func:`tidesim.validation.compare`): traces before each neuron's first spike
within ``trace_rtol`` of the variable's scale, equal spike counts and spike times within
``spike_tol`` steps; spike-generator sources must emit the same spikes. A network with Poisson
sources or noise is compared in distribution, per population: the mean rate (Hz per unit) and the
mean coefficient of variation of the inter-spike intervals (elephant), each within
``stat_rtol`` relative or within the statistical noise of the two samples, whichever is larger.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from tidesim.analysis import cv_isi
from tidesim.core.network import SpikeSource
from tidesim.core.result import SimulationResult
from tidesim.engines.simulate import simulate_network
from tidesim.validation.neuron import SpikeComparison, VariableComparison, compare
from tidesim.validation.verdicts import spike_verdict

__all__ = ["crossvalidate_network", "compare_networks", "NetworkCrossValidationReport", "PopulationComparison"]

Z_NOISE = 4.0  # statistical tolerance, in standard errors of the difference


@dataclass
class PopulationComparison:
    """Agreement of one population (or spike source) between the two runs.

    ``rate_*`` in Hz per unit; ``cv_*``: mean CV of the inter-spike intervals over units with at
    least three spikes (NaN when fewer than ``min_units_for_cv`` such units).
    """

    name: str
    kind: str  # "neurons" or "source"
    n: int
    stochastic: bool
    variables: list[VariableComparison]
    spikes: SpikeComparison | None
    rate_torch: float
    rate_brian2: float
    rate_tolerance: float
    cv_torch: float
    cv_brian2: float
    cv_tolerance: float
    passed: bool
    notes: list[str] = field(default_factory=list)

    @property
    def rate_difference(self) -> float:
        """``rate_torch - rate_brian2`` (Hz)."""
        return self.rate_torch - self.rate_brian2


@dataclass
class NetworkCrossValidationReport:
    """Result of :func:`tidesim.crossvalidate` on a network: one :class:`PopulationComparison`
    per population (``report["exc"]``), pass/fail, both runs' results and timings."""

    network: str
    populations: dict[str, PopulationComparison]
    torch_results: dict[str, SimulationResult]
    brian2_results: dict[str, SimulationResult]
    stochastic: bool
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every population agrees."""
        return all(p.passed for p in self.populations.values())

    @property
    def failed_populations(self) -> list[str]:
        """Names of the populations that disagree."""
        return [name for name, p in self.populations.items() if not p.passed]

    def __getitem__(self, name: str) -> PopulationComparison:
        return self.populations[name]

    def to_dataframe(self) -> pd.DataFrame:
        """A row per population: rates (Hz), CVs, spike counts and times (s), trace errors, passed."""
        rows = []
        for p in self.populations.values():
            row: dict[str, Any] = {"population": p.name, "kind": p.kind, "n": p.n, "rate_torch": p.rate_torch,
                                   "rate_brian2": p.rate_brian2, "rate_tolerance": p.rate_tolerance,
                                   "cv_torch": p.cv_torch, "cv_brian2": p.cv_brian2}
            if p.spikes is not None:
                row.update(spikes_torch=int(p.spikes.counts_torch.sum()),
                           spikes_brian2=int(p.spikes.counts_brian2.sum()),
                           neurons_with_count_mismatch=len(p.spikes.mismatched_neurons),
                           max_spike_time_difference=p.spikes.max_time_difference,
                           spikes_outcome=p.spikes.verdict.outcome if p.spikes.verdict else "statistics")
            for v in p.variables:
                row[f"{v.name}_max_abs_error_before_first_spike"] = v.max_abs_error_before_first_spike
                row[f"{v.name}_outcome"] = v.verdict.outcome if v.verdict else "statistics"
            row["passed"] = p.passed
            rows.append(row)
        return pd.DataFrame(rows).set_index("population")

    def __str__(self) -> str:
        any_res = next(iter(self.brian2_results.values()), None)
        head = f"Cross-validation of network {self.network!r}: torch vs Brian2"
        if any_res is not None:
            head += f" ({any_res.duration:g} s, dt = {any_res.dt * 1e3:g} ms)"
        lines = [head + (", compared in distribution" if self.stochastic else ", spike for spike")]
        for p in self.populations.values():
            ok = "ok" if p.passed else "FAIL"
            if p.stochastic:
                lines.append(f"  {p.name:>10} ({p.kind}, {p.n}): rate {p.rate_torch:.4g} vs {p.rate_brian2:.4g} "
                             f"Hz (tolerance {p.rate_tolerance:.3g}), CV {p.cv_torch:.3g} vs "
                             f"{p.cv_brian2:.3g}  {ok}")
            else:  # each line states its outcome: exact, within tolerance, diverged after t, disagree
                lines.append(f"  {p.name} ({p.kind}, {p.n}):  {ok}")
                lines.append("    " + p.spikes.describe())
                model = self.torch_results[p.name].model
                lines.extend("    " + v.describe(model.dims[v.name]) for v in p.variables)
            lines.extend(f"      note: {n}" for n in p.notes)
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.timings:
            lines.append("  wall time: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.timings.items()))
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines)


def is_stochastic(net) -> bool:
    """True when the network has Poisson sources or neuron models with noise (``xi``)."""
    for pop in net.populations.values():
        if isinstance(pop, SpikeSource):
            if pop.rates is not None:
                return True
        elif pop.model.stochastic:
            return True
    return False


def _cvs(res: SimulationResult) -> np.ndarray:
    return np.array([float(cv_isi([np.asarray(t)])[0]) for t in res.spike_trains if len(t) >= 3])


def _source_spikes(a: SimulationResult, b: SimulationResult, spike_tol: float) -> SpikeComparison:
    ca = a.spikes.detach().cpu().numpy().sum(0).astype(int)
    cb = b.spikes.detach().cpu().numpy().sum(0).astype(int)
    worst = 0.0
    for ta, tb in zip(a.spike_trains, b.spike_trains):
        m = min(len(ta), len(tb))
        if m:
            worst = max(worst, float(np.max(np.abs(np.asarray(ta[:m]) - np.asarray(tb[:m])))))
    tol = spike_tol * b.dt * (1 + 1e-9)
    verdict = spike_verdict([np.asarray(t) for t in a.spike_trains], [np.asarray(t) for t in b.spike_trains], tol,
                            b.duration, stat_rtol=0.0)  # a source's spikes are given: equal or disagreeing
    return SpikeComparison(ca, cb, worst, tol, verdict.outcome in ("exact", "within tolerance"), verdict)


def _statistics(name: str, kind: str, a: SimulationResult, b: SimulationResult, stat_rtol: float,
                min_units_for_cv: int) -> PopulationComparison:
    n, duration = b.n, b.duration
    ca = float(a.spikes.detach().cpu().numpy().sum())
    cb = float(b.spikes.detach().cpu().numpy().sum())
    ra, rb = ca / (n * duration), cb / (n * duration)
    # counts are near-Poisson: the difference of two counts has variance about ca + cb
    rate_tol = max(stat_rtol * max(rb, ra), Z_NOISE * np.sqrt(max(ca + cb, 1.0)) / (n * duration))
    passed = abs(ra - rb) <= rate_tol
    notes = []
    cva, cvb = _cvs(a), _cvs(b)
    cv_a = cv_b = cv_tol = float("nan")
    if min(len(cva), len(cvb)) >= min_units_for_cv:
        cv_a, cv_b = float(cva.mean()), float(cvb.mean())
        se = np.sqrt(cva.var(ddof=1) / len(cva) + cvb.var(ddof=1) / len(cvb))
        cv_tol = float(max(stat_rtol * cv_b, Z_NOISE * se))
        passed = passed and abs(cv_a - cv_b) <= cv_tol
    else:
        notes.append(f"CV not compared: fewer than {min_units_for_cv} units with 3 spikes or more")
    return PopulationComparison(name, kind, n, True, [], None, ra, rb, rate_tol, cv_a, cv_b, cv_tol,
                                bool(passed), notes)


def compare_networks(results_torch: Mapping[str, SimulationResult], results_brian2: Mapping[str, SimulationResult],
                     stochastic: bool = False, trace_rtol: float = 1e-6, spike_tol: float = 1.0,
                     stat_rtol: float = 0.1, min_units_for_cv: int = 5, name: str = "network"
                     ) -> NetworkCrossValidationReport:
    """Compare two runs of a network (``{population: SimulationResult}``, as ``Network.run``
    returns) population by population; see the module docstring for the criteria.

    ``stochastic``: compare in distribution (rates, CVs) instead of spike for spike.
    """
    missing = sorted(set(results_brian2) ^ set(results_torch))
    pops = {}
    for pop, b in results_brian2.items():
        if pop not in results_torch:
            continue
        a = results_torch[pop]
        if not isinstance(a, SimulationResult):  # e.g. a recorded projection
            continue
        kind = "source" if a.model is None else "neurons"
        if stochastic:
            pops[pop] = _statistics(pop, kind, a, b, stat_rtol, min_units_for_cv)
            continue
        if kind == "source":
            variables, spikes = [], _source_spikes(a, b, spike_tol)
        else:
            variables, spikes, _ = compare(a, b, trace_rtol, spike_tol, stat_rtol)
        if spikes is None:  # a population without threshold
            spikes = _source_spikes(a, b, spike_tol)
        n, duration = b.n, b.duration
        ra = float(spikes.counts_torch.sum()) / (n * duration)
        rb = float(spikes.counts_brian2.sum()) / (n * duration)
        ca, cb = _cvs(a), _cvs(b)
        passed = spikes.passed and all(v.passed for v in variables)
        pops[pop] = PopulationComparison(
            pop, kind, n, False, variables, spikes, ra, rb, 0.0,
            float(ca.mean()) if len(ca) else float("nan"), float(cb.mean()) if len(cb) else float("nan"),
            float("nan"), bool(passed))
    notes = [f"only in one run: {', '.join(missing)}"] if missing else []
    return NetworkCrossValidationReport(name, pops, dict(results_torch), dict(results_brian2), stochastic,
                                        notes=notes)


def crossvalidate_network(net, duration: Any = 1.0, dt: Any = 1e-4,
                          inputs: Mapping[str, Mapping[str, Any]] | None = None,
                          record: Mapping[str, Sequence[str]] | None = None, target: str = "auto",
                          dtype: torch.dtype = torch.float64, trace_rtol: float = 1e-6, spike_tol: float = 1.0,
                          stat_rtol: float = 0.1, seed: int | None = 0, min_units_for_cv: int = 5
                          ) -> NetworkCrossValidationReport:
    """Run ``net`` for ``duration`` s (step ``dt`` s) in torch and in Brian2 with the same per-population
    ``inputs``/``record`` (as for :meth:`tidesim.Network.run`) and compare them population by
    population (:func:`compare_networks`). Stochastic networks (Poisson sources, noise) are compared
    in distribution, the others spike for spike."""
    duration, dt = float(duration), float(dt)
    common = dict(inputs=inputs, record=record, seed=seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        res_t = simulate_network(net, duration, dt=dt, dtype=dtype, **common)
    t1 = time.perf_counter()
    res_b = simulate_network(net, duration, dt=dt, backend="brian2", target=target, **common)
    t2 = time.perf_counter()
    report = compare_networks(res_t, res_b, stochastic=is_stochastic(net), trace_rtol=trace_rtol,
                              spike_tol=spike_tol, stat_rtol=stat_rtol, min_units_for_cv=min_units_for_cv,
                              name=net.name)
    report.timings = {"torch": t1 - t0, "brian2": t2 - t1}
    if report.stochastic:
        report.notes.append("Poisson sources or noise: populations compared by rate and CV of ISIs, not spike "
                            "for spike (the two simulators draw different random numbers)")
    return report
