"""How well fitted models predict real cells' spike times, on data they were not fitted to.

    python benchmarks/spike_timing.py [--qsnmc FOLDER] [--models gif_threshold,gif_hazard,...] [--fast]

Two kinds of data:

- Frozen noise: challenge A of the 2007 Quantitative Single-Neuron Modeling Competition (rat L5 pyramidal
  cells, 4 repeats of each Ornstein-Uhlenbeck current, read from ``../shared/data/frozen_noise/``, never
  copied). Its released *test* spike times are the organisers' aEIF model's (see
  ``datasets/frozen_noise.py``), so the held-out data here are the *training* sets, left out one at a time:
  fit on the other seven sets, predict the left-out set's four repeats. Scores: the coincidence factor
  normalised by the cell's own reliability (2 ms, the competition's window), Md* (4 ms), spike counts.
- Current steps: the shipped recordings (``regular_spiking``, ``fast_spiking``, ``axon_steps``): fit on some
  sweeps, predict the others; held-out |spike-count error| per sweep and the fraction of spiking sweeps whose
  coincidence factor (4 ms) beats the 95th percentile of rate-matched Poisson trains.

Every model is fitted by ``ts.fit(model, rec)`` with its defaults (staged fits), on 1 torch thread. The
table goes into ``benchmarks/RESULTS.md`` between the ``spike_timing`` markers, the rows into
``benchmarks/out/spike_timing.csv``.
"""

from __future__ import annotations

import argparse
import platform
import re
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import tidesim as ts

HERE = Path(__file__).resolve().parent
QSNMC = HERE.parents[1] / "shared" / "data" / "frozen_noise" / "qsnmc2007_challengeA"
MODELS = {
    "gif_threshold": ("gif", {"spikes": "threshold"}),
    "gif_hazard": ("gif", {"spikes": "hazard"}),
    "gif (escape noise)": ("gif", {}),
    "mat": ("mat", {}),
    "glif5": ("glif", {"level": 5}),
    "adex_threshold": ("adex", {"adaptive_threshold": True}),
    "adex": ("adex", {}),
}
STEPS = {
    "regular_spiking": dict(train=[2, 6, 8, 10, 12, 14, 16], test=[7, 9, 11, 13, 15], window=(0.1, 2.2)),
    "fast_spiking": dict(train=[2, 6, 8, 10, 12, 14, 16], test=[7, 9, 11, 13, 15], window=(0.1, 2.2)),
    "axon_steps": dict(train=[0, 3, 5, 6, 8], test=[4, 7], window=(0.15, 0.8)),
}


def qsnmc_rows(folder: Path, models: list[str], sets: list[int]) -> list[dict]:
    full = ts.datasets.load_qsnmc2007(folder)
    rows = []
    for label in models:
        name, options = MODELS[label]
        for s in sets:
            held = f"set {s:02d}"
            train = full.select([k for k, lab in enumerate(full.stimuli) if lab != held])
            test = full.select(full.trials()[held])
            t0 = time.perf_counter()
            fit = ts.fit(ts.models.get(name, **options), train)
            seconds = time.perf_counter() - t0
            score = fit.score_trials(test, runs=20).iloc[0]
            rows.append(
                {
                    "data": "QSNMC 2007 A",
                    "model": label,
                    "held_out": held,
                    "reliability_2ms": score["reliability_2ms"],
                    "gamma_normalized_2ms": score["gamma_normalized_2ms"],
                    "md_star": score["md_star"],
                    "psth_ev": score["psth_ev"],
                    "spikes_data": score["spikes_data"],
                    "spikes_model": score["spikes_model"],
                    "fit_seconds": seconds,
                }
            )
            print(rows[-1], flush=True)
    return rows


def step_rows(models: list[str]) -> list[dict]:
    rows = []
    for label in models:
        name, options = MODELS[label]
        for rec_name, case in STEPS.items():
            rec = ts.datasets.load_bundled(rec_name)
            t0 = time.perf_counter()
            fit = ts.fit(ts.models.get(name, **options), rec, sweeps=case["train"], window=case["window"], dt=2e-4)
            seconds = time.perf_counter() - t0
            score = fit.score(rec.select(case["test"]))
            spiking = score[score.spikes_data > 0]
            rows.append(
                {
                    "data": rec_name,
                    "model": label,
                    "held_out": ",".join(map(str, case["test"])),
                    "count_error": float(np.mean(np.abs(score.spikes_model - score.spikes_data))),
                    "gamma_4ms": float(spiking.gamma.mean()),
                    "above_poisson_p95": float(np.mean(spiking.gamma > spiking.gamma_poisson_p95)),
                    "fit_seconds": seconds,
                }
            )
            print(rows[-1], flush=True)
    return rows


def _markdown(qsnmc: pd.DataFrame, steps: pd.DataFrame, sets: list[int]) -> str:
    lines = [
        f"`python benchmarks/spike_timing.py` ({date.today()}, {platform.machine()}, 1 torch thread). "
        "Every model fitted by `ts.fit(model, rec)` with its defaults (staged: sub-threshold regression, "
        "threshold likelihood, threshold level), nothing tuned per data set.",
        "",
    ]
    if len(qsnmc):
        reliable = qsnmc[qsnmc.reliability_2ms >= 0.5]
        names = ", ".join(f"{s:02d}" for s in sets)
        lines += [
            f"QSNMC 2007 challenge A, leave one training set out (sets {names}; the test sets' "
            "released spikes are the organisers' aEIF model's, not the cell's, so they are not used). "
            "Normalized Gamma = the model's coincidence factor with the held-out repeats (2 ms) / "
            "the cell's own between repeats; its mean is over the sets whose reliability is at least 0.5 "
            f"({', '.join(sorted(set(reliable.held_out)))}): below that the cell is too unreliable for the "
            "ratio to mean much.",
            "",
            "| model | normalized Gamma, mean (reliable sets) | per set | Md* (4 ms), mean | spikes model/data, "
            "reliable sets | fit time |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for label, g in qsnmc.groupby("model", sort=False):
            r = g[g.reliability_2ms >= 0.5]
            per = ", ".join(f"{h[-2:]}: {v:.2f}" for h, v in zip(g.held_out, g.gamma_normalized_2ms))
            lines.append(
                f"| {label} | **{r.gamma_normalized_2ms.mean():.2f}** | {per} | {g.md_star.mean():.2f} | "
                f"{r.spikes_model.sum() / r.spikes_data.sum():.2f} | {g.fit_seconds.mean():.0f} s |"
            )
        lines.append("")
    if len(steps):
        lines += [
            "Current steps, held-out sweeps of the shipped recordings (fit on the others): mean |spike-count "
            "error| per sweep, mean coincidence factor (4 ms) and the share of spiking sweeps above the 95th "
            "percentile of rate-matched Poisson trains (floor: count error <= 1, share >= 0.8).",
            "",
            "| model | " + " | ".join(f"{r}: count error / Gamma / > Poisson p95" for r in STEPS) + " |",
            "| --- |" + " --- |" * len(STEPS),
        ]
        for label, g in steps.groupby("model", sort=False):
            cells = [
                f"{row.count_error:.1f} / {row.gamma_4ms:.2f} / {row.above_poisson_p95:.1f}"
                for row in g.itertuples()
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_results(text: str) -> None:
    path = HERE / "RESULTS.md"
    doc = path.read_text()
    block = f"<!-- spike_timing:start -->\n{text}\n<!-- spike_timing:end -->"
    if "<!-- spike_timing:start -->" in doc:
        doc = re.sub(r"<!-- spike_timing:start -->.*<!-- spike_timing:end -->", lambda _: block, doc, flags=re.S)
    else:
        doc = doc.rstrip() + "\n\n## Predicting real cells' spike times (issue 15)\n\n" + block + "\n"
    path.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qsnmc", default=str(QSNMC), help="folder of challenge A (training/, test/)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--fast", action="store_true", help="only the four reliable sets, no step recordings")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = args.models.split(",")
    sets = [0, 4, 5, 11] if args.fast else [0, 4, 5, 6, 8, 9, 11, 12]
    folder = Path(args.qsnmc)
    qsnmc = pd.DataFrame(qsnmc_rows(folder, models, sets)) if folder.is_dir() else pd.DataFrame()
    steps = pd.DataFrame([] if args.fast else step_rows(models))
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    pd.concat([qsnmc, steps]).to_csv(out / "spike_timing.csv", index=False)
    text = _markdown(qsnmc, steps, sets)
    print(text)
    if not args.no_write:
        write_results(text)


if __name__ == "__main__":
    main()
