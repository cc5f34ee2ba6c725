"""Brunel network parameters (g, eta) from population statistics of Brian2 recordings (issue 16).

    python benchmarks/network_fit.py            # 1000 simulations, three points of the phase diagram
    python benchmarks/network_fit.py --quick    # 300 simulations, for a smoke test

The recordings: ``ts.network.examples.brunel`` (400 excitatory and 100 inhibitory LIF neurons with
delta synapses, in-degree 10 %, J = 0.5 mV, delay 1.5 ms) run by Brian2 (cython target) at three
points (g, eta) of the phase diagram; 100 excitatory units recorded, 1 s after a 0.2 s warm-up.
One NPE posterior (sbi) trained on tidesim simulations drawn from the uniform prior g in [3, 8],
eta in [0.8, 3] is conditioned on each recording (amortized: no new simulations per recording).
Reported: posterior median, 90 % interval, relative error of the median and whether the 90 %
interval covers the truth. Writes the section "Network parameters from population statistics".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import tidesim as ts
from tidesim.datasets.spikes import SpikeData

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import write_section  # noqa: E402  benchmarks/results_md.py

POINTS = [{"g": 6.0, "eta": 1.2}, {"g": 4.5, "eta": 0.9}, {"g": 5.0, "eta": 2.5}]
PRIOR = {"g": (3.0, 8.0), "eta": (0.8, 3.0)}
WARMUP, DURATION = 0.2, 1.0


def build(g: float, eta: float):
    return ts.network.examples.brunel(g=g, eta=eta, seed=7)


def recording(point: dict, seed: int) -> SpikeData:
    net = build(**point)
    res = net.run(WARMUP + DURATION, dt=1e-4, record={p: [] for p in net.populations}, seed=seed,
                  backend="brian2")
    return SpikeData([[np.asarray(t, dtype=float)] for t in res["exc"].spike_trains[:100]], 0.0,
                     WARMUP + DURATION)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n_sim = 300 if args.quick else 1000
    observed = []
    for k, point in enumerate(POINTS):
        t = time.perf_counter()
        observed.append(ts.analysis.population_statistics(recording(point, seed=100 + k), t_start=WARMUP))
        print(point, f"Brian2 {time.perf_counter() - t:.0f} s", observed[-1].round(3).to_dict(), flush=True)
    fit = ts.fitting.fit_network(build, observed[0], PRIOR, duration=DURATION, warmup=WARMUP,
                                 n_simulations=n_sim, seed=0)
    rows = []
    for point, obs in zip(POINTS, observed):
        cond = fit.condition(obs)
        iv = cond.intervals(0.9)
        for name, value in point.items():
            rows.append((point, name, value, iv.loc[name, "median"], iv.loc[name, "low"], iv.loc[name, "high"],
                         obs.rate_mean, obs.cv_mean))
        print(point, iv.round(3).to_dict(), flush=True)
    lines = [f"Command: `python benchmarks/network_fit.py{' --quick' if args.quick else ''}` (1 torch thread). "
             f"{n_sim} tidesim simulations ({fit.info['simulation_seconds']:.0f} s, "
             f"{fit.info['failed_simulations']} failed), NPE training {fit.info['training_seconds']:.0f} s; "
             "recordings by Brian2 (cython), 100 excitatory units, 1 s after 0.2 s warm-up; prior g in [3, 8], "
             "eta in [0.8, 3]; statistics used: " + ", ".join(fit.info["statistics_used"]) + ".", "",
             "| truth (g, eta) | recorded rate (Hz), CV | parameter | true | posterior median | 90 % interval | "
             "error of median | covered |", "|---|---|---|---:|---:|---|---:|---|"]
    for point, name, value, med, lo, hi, rate, cv in rows:
        lines.append(f"| ({point['g']:g}, {point['eta']:g}) | {rate:.1f}, {cv:.2f} | {name} | {value:g} | "
                     f"{med:.3f} | [{lo:.3f}, {hi:.3f}] | {100 * abs(med - value) / value:.1f} % | "
                     f"{'yes' if lo <= value <= hi else 'no'} |")
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        write_section("network_fit", text, "## Network parameters from population statistics (issue 16)")


if __name__ == "__main__":
    main()
