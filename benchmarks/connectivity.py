"""Coupling inference against Brian2 ground truth, and its cost at scale (issue 16).

    python benchmarks/connectivity.py            # accuracy vs recording length + scale run
    python benchmarks/connectivity.py --quick    # shorter recordings, for a smoke test

1. Accuracy: a Brian2 network (``ts.validation.brian2_coupled_network``: 50 noise-driven LIF neurons,
   p = 0.1, 80 % excitatory, log-normal weights around 1 mV, inhibitory -2 mV, delay 1.5 ms) runs
   30 min once; its first 5, 10, 20 and 30 min go to ``infer_connectivity`` with ``method="glm"``
   and ``method="ccg"``; ROC AUC (ranking by p-value), precision and recall of the pairs significant
   at FDR 5 %, sign accuracy and fit time against the known weights.
2. Scale: 200 Brian2 neurons, 1 h at 1 ms bins; the glm fit runs in a fresh process that reads the
   spikes from disk, so its peak resident memory is the fit's own.
Writes ``benchmarks/out/connectivity.csv`` and the section "Coupling between recorded units" of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import tidesim as ts
from tidesim.datasets.spikes import SpikeData

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import write_section  # noqa: E402  benchmarks/results_md.py

OUT = Path(__file__).resolve().parent / "out"


def truncate(data: SpikeData, stop: float) -> SpikeData:
    return SpikeData([[u[0][u[0] < stop]] for u in data.trains], 0.0, stop, data.unit_names, data.name)


def accuracy(lengths_min: list[float], seed: int) -> pd.DataFrame:
    started = time.perf_counter()
    truth = ts.validation.brian2_coupled_network(n=50, p=0.1, duration=max(lengths_min) * 60, seed=seed)
    print(f"Brian2 network simulated in {time.perf_counter() - started:.0f} s", flush=True)
    rows = []
    for minutes in lengths_min:
        data = truncate(truth.spikes, minutes * 60)
        for method in ("glm", "ccg"):
            res = ts.fitting.infer_connectivity(data, method=method)
            score = res.compare(truth.weights)
            rows.append({"seed": seed, "minutes": minutes, "method": method, **score, "fit_s": res.fit_time,
                         "integral_fraction": res.settings.get("integral_fraction", float("nan"))})
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def scale(n: int, minutes: float, seed: int, reuse: bool = False) -> dict:
    path = OUT / "connectivity_scale.npz"
    started = time.perf_counter()
    if reuse and path.exists():  # the same Brian2 network, simulated by an earlier run of this script
        with np.load(path) as z:
            sim = float(z["brian2_s"]) if "brian2_s" in z else float("nan")
            if int(z["n"]) != n or float(z["t_stop"]) != minutes * 60 or int(z["seed"]) != seed:
                raise SystemExit(f"{path} holds another network; run without --reuse-simulations")
    else:
        truth = ts.validation.brian2_coupled_network(n=n, p=0.05, duration=minutes * 60, seed=seed)
        sim = time.perf_counter() - started
        np.savez(path, t_stop=truth.spikes.t_stop, weights=truth.weights, n=n, seed=seed, brian2_s=sim,
                 **{f"u{u}": tr[0] for u, tr in enumerate(truth.spikes.trains)})
    code = f"""
import json, resource, time, numpy as np, torch
torch.set_num_threads(2)
import tidesim as ts
from tidesim.datasets.spikes import SpikeData
z = np.load({str(path)!r})
n = {n}
data = SpikeData([[z[f"u{{u}}"]] for u in range(n)], 0.0, float(z["t_stop"]))
t = time.perf_counter()
res = ts.fitting.infer_connectivity(data)
out = res.compare(z["weights"])
out.update(fit_s=time.perf_counter() - t, peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
           integral_fraction=res.settings["integral_fraction"], spikes=int(data.spike_counts.sum()))
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(n=n, minutes=minutes, brian2_s=sim)
    print(result, flush=True)
    return result


def section(acc: pd.DataFrame, big: dict | None, command: str) -> str:
    lines = [f"Command: `{command}` (2 torch threads). Ground truth simulated by Brian2 "
             "(`ts.validation.brian2_coupled_network`: 50 noise-driven LIF neurons, p = 0.1, 80 % excitatory, "
             "log-normal weights around 1 mV, inhibitory -2 mV, delay 1.5 ms, about 10-17 Hz). "
             "AUC ranks all 2450 ordered pairs by p-value; precision and recall are those of the pairs "
             "significant at FDR 5 %; sign accuracy over the true pairs found.", "",
             "| minutes | method | AUC | precision | recall | sign accuracy | fit time (s) |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for _, r in acc.iterrows():
        lines.append(f"| {r.minutes:g} | {r.method} | {r.auc:.3f} | {r.precision:.3f} | {r.recall:.3f} | "
                     f"{r.sign_accuracy:.3f} | {r.fit_s:.1f} |")
    if big is not None:
        lines += ["", f"Scale: {big['n']} Brian2 neurons (p = 0.05), {big['minutes']:g} min at 1 ms bins, "
                  f"{big['spikes']:,} spikes: glm fit {big['fit_s']:.0f} s, peak resident memory "
                  f"{big['peak_rss_gib']:.2f} GiB (fresh process reading the spikes from disk; the likelihood's "
                  f"integral on {100 * big['integral_fraction']:.1f} % of the bins), AUC {big['auc']:.3f}, "
                  f"precision {big['precision']:.3f}, recall {big['recall']:.3f}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reuse-simulations", action="store_true",
                        help="take the accuracy rows from out/connectivity.csv and the scale run's Brian2 spikes "
                             "from out/connectivity_scale.npz (both written by an earlier full run)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    OUT.mkdir(exist_ok=True)
    lengths = [1, 2] if args.quick else [5, 10, 20, 30]
    if args.reuse_simulations and (OUT / "connectivity.csv").exists():
        acc = pd.read_csv(OUT / "connectivity.csv")
    else:
        acc = accuracy(lengths, args.seed)
        acc.to_csv(OUT / "connectivity.csv", index=False)
    big = scale(40, 2, args.seed) if args.quick else scale(200, 60, args.seed, args.reuse_simulations)
    command = "python benchmarks/connectivity.py" + (" --quick" if args.quick else "") + \
        (" --reuse-simulations" if args.reuse_simulations else "")
    if not args.quick:
        write_section("connectivity", section(acc, big, command), "## Coupling between recorded units (issue 16)")
    else:
        print(section(acc, big, command))


if __name__ == "__main__":
    main()
