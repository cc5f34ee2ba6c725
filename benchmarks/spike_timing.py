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
  coincidence factor (4 ms) beats the 95th percentile of rate-matched Poisson trains; over each sweep's first
  step from rest, and over the whole stimulus.
- Fit time of a GIF on 20 s of recording, staged and with stage c.

Every model is fitted by ``ts.fit(model, rec)`` with its defaults (staged fits), on 1 torch thread. The
table goes into ``benchmarks/RESULTS.md`` between the ``spike_timing`` markers, the rows into
``benchmarks/out/spike_timing.csv``.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from results_md import write_section  # benchmarks/results_md.py (run from this folder)

import tidesim as ts

HERE = Path(__file__).resolve().parent
QSNMC = HERE.parents[1] / "shared" / "data" / "frozen_noise" / "qsnmc2007_challengeA"
MODELS = ["gif_threshold", "gif_hazard", "gif", "mat", "glif5", "adex_threshold", "adex"]
#: stage c on top of a-b': this many Adam steps through the simulator (its improvement is reported)
REFINE = {"gif_threshold": 50}
TRAIN_STEPS, TEST_STEPS = [2, 6, 8, 10, 12, 14, 16], [7, 9, 11, 13, 15]
#: (recording, window label) -> sweeps and window (s). "first step": each sweep's first step from rest and
#: the half second after it; "whole stimulus": also the hyperpolarising step and the step again after it.
STEPS = {
    ("regular_spiking", "first step"): dict(train=TRAIN_STEPS, test=TEST_STEPS, window=(0.1, 1.1)),
    ("regular_spiking", "whole stimulus"): dict(train=TRAIN_STEPS, test=TEST_STEPS, window=(0.1, 2.2)),
    ("fast_spiking", "first step"): dict(train=TRAIN_STEPS, test=TEST_STEPS, window=(0.1, 1.1)),
    ("fast_spiking", "whole stimulus"): dict(train=TRAIN_STEPS, test=TEST_STEPS, window=(0.1, 2.2)),
    ("axon_steps", "whole stimulus"): dict(train=[0, 3, 5, 6, 8], test=[4, 7], window=(0.15, 0.8)),
}


def _variants(models: list[str]) -> list[tuple[str, str, int]]:
    """(label, model name, refinement steps): each model as staged, and with stage c where REFINE says."""
    out = [(m, m, 0) for m in models]
    out += [(f"{m} + c ({n} steps)", m, n) for m, n in REFINE.items() if m in models]
    return out


def qsnmc_rows(folder: Path, models: list[str], sets: list[int]) -> list[dict]:
    full = ts.datasets.load_qsnmc2007(folder)
    rows = []
    for label, name, refine in _variants(models):
        for s in sets:
            held = f"set {s:02d}"
            train = full.select([k for k, lab in enumerate(full.stimuli) if lab != held])
            test = full.select(full.trials()[held])
            t0 = time.perf_counter()
            try:
                fit = ts.fit(ts.models.get(name), train, refine=refine)
            except ts.fitting.FitError as err:  # a family that cannot describe the data says so: a table cell
                rows.append({"data": "QSNMC 2007 A", "model": label, "held_out": held, "error": str(err)})
                print(rows[-1], flush=True)
                continue
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
    for label, name, refine in _variants(models):
        for (rec_name, part), case in STEPS.items():
            rec = ts.datasets.load_bundled(rec_name)
            t0 = time.perf_counter()
            try:
                fit = ts.fit(
                    ts.models.get(name), rec, sweeps=case["train"], window=case["window"], dt=2e-4, refine=refine
                )
            except ts.fitting.FitError as err:
                rows.append({"data": f"{rec_name} ({part})", "model": label, "error": str(err)})
                print(rows[-1], flush=True)
                continue
            seconds = time.perf_counter() - t0
            score = fit.score(rec.select(case["test"]), window=case["window"])
            spiking = score[score.spikes_data > 0]
            rows.append(
                {
                    "data": f"{rec_name} ({part})",
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


def timing_rows(folder: Path) -> list[dict]:
    """The fit-time floor: a GIF fitted to 20.4 s of recording (three 6.8 s repeats of set 00), staged and
    with stage c (50 Adam steps), on 2 torch threads."""
    train = ts.datasets.load_qsnmc2007(folder).select([0, 1, 2])
    rows = []
    torch.set_num_threads(2)
    for name in ("gif_hazard", "gif_threshold"):  # deterministic: stage c runs (not for escape noise)
        for refine in (0, 50):
            t0 = time.perf_counter()
            ts.fit(ts.models.get(name), train, refine=refine)
            rows.append(
                {
                    "model": name,
                    "refine": refine,
                    "seconds": time.perf_counter() - t0,
                    "recording_s": train.duration * len(train),
                }
            )
            print(rows[-1], flush=True)
    torch.set_num_threads(1)
    return rows


def _qsnmc_lines(qsnmc: pd.DataFrame, sets: list[int]) -> list[str]:
    reliable = qsnmc[qsnmc.reliability_2ms >= 0.5]
    names = ", ".join(f"{s:02d}" for s in sets)
    lines = [
        f"**QSNMC 2007 challenge A**, leave one training set out (sets {names}; the test sets' released "
        "spikes are the organisers' aEIF model's, not the cell's, so they are not used). Normalized Gamma = "
        "the model's coincidence factor with the held-out repeats (2 ms) / the cell's own between repeats; "
        "its mean is over the sets whose reliability is at least 0.5 "
        f"({', '.join(sorted(set(reliable.held_out)))}): below that the cell is too unreliable for the "
        "ratio to mean much. Md* (Naud 2011, 4 ms) is 1 for a perfect model.",
        "",
        "| model | normalized Gamma, mean (reliable sets) | per set | Md* (4 ms), mean (reliable) | "
        "PSTH explained variance (10 ms), mean (reliable) | spikes model/data (reliable) | fit time |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, g in qsnmc.groupby("model", sort=False):
        r = g[g.reliability_2ms >= 0.5]
        failed = g.error.notna() if "error" in g else pd.Series(False, index=g.index)
        per = ", ".join(
            f"{h[-2:]}: " + ("fit failed" if bad else f"{v:.2f}")
            for h, v, bad in zip(g.held_out, g.gamma_normalized_2ms, failed)
        )
        if failed.all():
            lines.append(f"| {label} | fit failed: {_reason(g.error.iloc[0])} | | | | | |")
            continue
        lost = int((failed & (g.held_out.isin(reliable.held_out) | g.reliability_2ms.isna())).sum())
        if lost:  # a mean over the sets that happened to fit would flatter the model
            lines.append(
                f"| {label} | fit failed on {int(failed.sum())} of {len(g)} sets "
                f"({_reason(g.error[failed].iloc[0])}) | {per} | | | | |"
            )
            continue
        lines.append(
            f"| {label} | **{r.gamma_normalized_2ms.mean():.2f}** | {per} | {r.md_star.mean():.2f} | "
            f"{r.psth_ev.mean():.2f} | {r.spikes_model.sum() / r.spikes_data.sum():.2f} | "
            f"{g.fit_seconds.mean():.0f} s |"
        )
    means = {
        label: g[g.reliability_2ms >= 0.5].gamma_normalized_2ms.mean()
        for label, g in qsnmc.groupby("model", sort=False)
    }
    for label in means:
        if " + c " in label and label.split(" + c ")[0] in means:
            base = label.split(" + c ")[0]
            lines += [
                "",
                f"Stage c ({label.split('(')[1].rstrip(')')} of gradient descent through the simulator) "
                f"moved {base}'s held-out normalized Gamma from {means[base]:.2f} to {means[label]:.2f}.",
            ]
    return lines + [""]


def _step_lines(steps: pd.DataFrame) -> list[str]:
    parts = list(dict.fromkeys(steps.data))
    lines = [
        "**Current steps**, held-out sweeps of the shipped recordings (fit on the others): mean |spike-count "
        "error| per sweep / mean coincidence factor (4 ms) / share of spiking sweeps above the 95th "
        'percentile of rate-matched Poisson trains (floor: count error <= 1, share >= 0.8). "first step": '
        'each sweep\'s first step from rest and the half second after it (0.1-1.1 s); "whole stimulus": '
        "also the -100 pA step and the step again after it (0.1-2.2 s), where the fast-spiking cell sits "
        "flat at -100 mV (rectified), fires a rebound spike and pauses before firing again: things a GIF "
        "does not have.",
        "",
        "| model | " + " | ".join(parts) + " |",
        "| --- |" + " --- |" * len(parts),
    ]
    for label, g in steps.groupby("model", sort=False):
        by = {row.data: row for row in g.itertuples()}
        cells = [_step_cell(by.get(p)) for p in parts]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + [""]


def _reason(error: str) -> str:
    """The stage and what went wrong, without the sweep list."""
    return error[max(error.find("stage"), 0) :].split(";")[0].split(" (")[0]


def _step_cell(row) -> str:
    if row is None:
        return ""
    if isinstance(getattr(row, "error", None), str):
        return "fit failed: " + _reason(row.error)
    return f"{row.count_error:.1f} / {row.gamma_4ms:.2f} / {row.above_poisson_p95:.1f}"


def _markdown(qsnmc: pd.DataFrame, steps: pd.DataFrame, timing: pd.DataFrame, sets: list[int]) -> str:
    lines = [
        f"`python benchmarks/spike_timing.py` ({date.today()}, {platform.machine()}, 1 torch thread unless "
        "said). Every model fitted by `ts.fit(model, rec)` with its defaults (staged: sub-threshold "
        "regression, threshold likelihood, threshold level), nothing tuned per data set.",
        "",
    ]
    if len(qsnmc):
        lines += _qsnmc_lines(qsnmc, sets)
    if len(steps):
        lines += _step_lines(steps)
    if len(timing):
        cells = ", ".join(
            f"{r.model}{' + c (' + str(int(r.refine)) + ' steps)' if r.refine else ''} {r.seconds:.1f} s"
            for r in timing.itertuples()
        )
        lines += [
            f"**Fit time** on {timing.recording_s.iloc[0]:.1f} s of recording (QSNMC set 00, three "
            f"repeats), 2 torch threads: {cells} (floor: 60 s staged, 5 min with refinement).",
            "",
        ]
    lines += [
        "Published, for scale (other cells and protocols, so not comparable number for number): GLIF1-5 "
        "explain 70.2%, 67.7%, 72.4%, 75.9% and 77.6% of the PSTH variance (10 ms bins) of held-out noise "
        "stimuli in mouse V1 cells (Teeter et al. 2018, Nat Commun 9:709, Table 2; checked). The 2007-2008 "
        "competitions' results are in Jolivet et al. 2008, Biol Cybern 99:417 (not checked here; "
        "approximate)."
    ]
    return "\n".join(lines)


def write_results(text: str) -> None:
    write_section("spike_timing", text, "## Predicting real cells' spike times (issue 15)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qsnmc", default=str(QSNMC), help="folder of challenge A (training/, test/)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--fast", action="store_true", help="only the four reliable sets, no step recordings")
    parser.add_argument(
        "--parts",
        default="steps,timing,qsnmc",
        help="which parts to run (for --models); the rest is read back from benchmarks/out/spike_timing.csv",
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = args.models.split(",")
    sets = [0, 4, 5, 11] if args.fast else [0, 4, 5, 6, 8, 9, 11, 12]
    folder = Path(args.qsnmc)
    have = folder.is_dir()
    parts = set(args.parts.split(","))
    csv = HERE / "out" / "spike_timing.csv"
    old = (
        pd.read_csv(csv)
        if csv.exists() and (parts != {"steps", "timing", "qsnmc"} or models != MODELS)
        else pd.DataFrame()
    )
    labels = [label for label, _, _ in _variants(models)]

    def merged(part: str, run) -> pd.DataFrame:
        """This part's rows: rerun for the models asked (if the part is asked), the others read back."""
        before = old[old.part == part].dropna(axis=1, how="all") if "part" in old else pd.DataFrame()
        if part not in parts:
            return before
        fresh = pd.DataFrame(run())
        if part == "timing" or "model" not in before:
            return fresh
        rest = before[~before.model.isin(labels)]
        order = [label for label, _, _ in _variants(MODELS)]
        out = pd.concat([rest, fresh], ignore_index=True)
        return out.sort_values("model", key=lambda m: m.map(order.index), kind="stable").reset_index(drop=True)

    steps = merged("steps", lambda: [] if args.fast else step_rows(models))
    timing = merged("timing", lambda: timing_rows(folder) if have else [])
    qsnmc = merged("qsnmc", lambda: qsnmc_rows(folder, models, sets) if have else [])
    csv.parent.mkdir(exist_ok=True)
    pd.concat([qsnmc.assign(part="qsnmc"), steps.assign(part="steps"), timing.assign(part="timing")]).to_csv(
        csv, index=False
    )
    if len(qsnmc):
        sets = sorted({int(h[-2:]) for h in qsnmc.held_out})
    text = _markdown(qsnmc, steps, timing, sets)
    print(text)
    if not args.no_write:
        write_results(text)


if __name__ == "__main__":
    main()
