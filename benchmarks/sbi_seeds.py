"""Calibration of tidesim's sbi posterior over several training seeds, with sbi's own diagnostics.

The setting of ``benchmarks/sbi_calibration.py`` (synthetic AdEx, a, b, tau_w with uniform priors, 3 sweeps,
3000 simulations, 24 summary statistics), trained once per seed (``--seeds``, default 5). Every posterior is
checked on the same ``--datasets`` synthetic recordings (true parameters drawn from the prior, recording noise
drawn independently), with sbi's diagnostics on the unit-cube parameters the estimator works in:

- expected coverage of the highest-posterior-density regions at every level (``sbi.diagnostics.run_sbc`` with
  the negative log-density as reduce function: the fraction of posterior samples denser than the truth);
- simulation-based calibration of each marginal (``run_sbc`` ranks, ``check_sbc``: KS p-values);
- TARP (``run_tarp``, ``check_tarp``: area to curve, KS p-value).

A posterior is called over-confident at a level when its coverage falls below the level by more than 2.58
binomial standard errors (one-sided 0.5%). The table goes into ``benchmarks/RESULTS.md`` between the
``sbi_seeds`` markers, the coverage curves into ``benchmarks/out/sbi_coverage.png``.

    python benchmarks/sbi_seeds.py                       # 5 seeds x 3000 simulations, 200 datasets, ~6 min
    python benchmarks/sbi_seeds.py --seeds 2 --datasets 40 --no-write    # a smoke test
"""

from __future__ import annotations

import argparse
import datetime
import platform
from pathlib import Path

import numpy as np
import torch
from results_md import write_section  # benchmarks/results_md.py (run from this folder)
from sbi.diagnostics import check_sbc, check_tarp, run_sbc, run_tarp
from sbi_calibration import AMPLITUDES, BOUNDS  # the same setting as the single-seed benchmark

import tidesim as ts
from tidesim.fitting import sbi as tsbi

HERE = Path(__file__).resolve().parent
LEVELS = np.round(np.arange(0.05, 1.0, 0.05), 2)
Z = 2.58


def recording(model, params, seed):
    return ts.datasets.synthetic(model, params, protocol=AMPLITUDES, duration=0.5, noise=0.5e-3, seed=seed)


def datasets(model, space, n: int) -> tuple[torch.Tensor, list]:
    """``n`` prior draws (unit cube) and their recordings: the same for every seed."""
    rng = np.random.default_rng(10_000)
    unit = torch.as_tensor(rng.uniform(size=(n, len(space))), dtype=torch.float64)
    points = tsbi.from_unit(space, unit)
    recs = [recording(model, dict(zip(space.names, p.tolist())), 1000 + i) for i, p in enumerate(points)]
    return unit, recs


def diagnose(post, unit: torch.Tensor, recs: list, samples: int) -> dict:
    xs = torch.stack([post.estimator_input(r) for r in recs])
    thetas = unit.to(torch.float32)
    estimator = post.posterior
    torch.manual_seed(0)

    def minus_log_density(theta, x):
        return -estimator.log_prob(theta, x=x)

    hpd_ranks, _ = run_sbc(thetas, xs, estimator, num_posterior_samples=samples, reduce_fns=minus_log_density,
                           show_progress_bar=False)
    alpha = hpd_ranks[:, 0].numpy() / samples  # fraction of samples denser than the truth
    coverage = np.array([(alpha < level).mean() for level in LEVELS])
    ranks, dap = run_sbc(thetas, xs, estimator, num_posterior_samples=samples, show_progress_bar=False)
    sbc = check_sbc(ranks, thetas, dap, num_posterior_samples=samples)
    ecp, tarp_alpha = run_tarp(thetas, xs, estimator, num_posterior_samples=samples)
    atc, tarp_p = check_tarp(ecp, tarp_alpha)
    return {"coverage": coverage, "ks": sbc["ks_pvals"].numpy(), "atc": float(atc), "tarp_p": float(tarp_p)}


def table(results: list[dict], infos: list[dict], n: int, samples: int, sims: int) -> str:
    cov = np.stack([r["coverage"] for r in results])
    se = np.sqrt(LEVELS * (1 - LEVELS) / n)
    over = cov < (LEVELS - Z * se)
    lines = [
        f"`python benchmarks/sbi_seeds.py` ({datetime.date.today()}, {platform.machine()}, 1 torch thread; "
        f"{len(results)} training seeds x {sims} simulations; the same {n} synthetic recordings for every seed; "
        f"{samples} posterior samples per recording). Diagnostics are sbi's own on the unit-cube parameters "
        "(`run_sbc` with the negative log-density as reduce function for the expected coverage of HPD "
        "regions; `run_sbc`/`check_sbc` for the marginal ranks; `run_tarp`/`check_tarp`).",
        "",
        "Expected coverage of the HPD region, min / median / max over the seeds (a calibrated posterior "
        "covers the level; over-confident: below the level by more than 2.58 binomial SE):",
        "",
        "| level | " + " | ".join(f"{lv:.2f}" for lv in LEVELS[1::2]) + " |",
        "| --- | " + " | ".join("---" for _ in LEVELS[1::2]) + " |",
    ]
    for name, fn in (("min", np.min), ("median", np.median), ("max", np.max)):
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in fn(cov, 0)[1::2]) + " |")
    lines.append("| over-confident seeds | " + " | ".join(str(int(v)) for v in over.sum(0)[1::2]) + " |")
    lines += ["", "| seed | 90% HPD | 50% HPD | SBC KS p (a, b, tau_w) | TARP ATC | TARP KS p | epochs | "
              "training CPU s |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    i90, i50 = int(np.argmin(abs(LEVELS - 0.9))), int(np.argmin(abs(LEVELS - 0.5)))
    for seed, (r, info) in enumerate(zip(results, infos)):
        lines.append(f"| {seed} | {r['coverage'][i90]:.3f} | {r['coverage'][i50]:.3f} | "
                     + ", ".join(f"{p:.2f}" for p in r["ks"]) + f" | {r['atc']:.3f} | {r['tarp_p']:.2f} | "
                     f"{info['epochs']} | {info['training_cpu_seconds']:.1f} |")
    worst = int(over.any(1).sum())
    wide = [f"{lv:.2f}" for lv, c, e in zip(LEVELS, np.median(cov, 0), se) if c > lv + Z * e]
    ks_low = sum(bool((r["ks"] < 0.05).any()) for r in results)
    lines += ["", f"Over-confident beyond binomial noise at some level: {worst} of {len(results)} seeds. "
              "The coverage curves are in `benchmarks/out/sbi_coverage.png`.", "",
              f"What this shows: at the 90% level the HPD region holds the truth {cov[:, i90].min():.1%}-"
              f"{cov[:, i90].max():.1%} of the time over the seeds, at the 50% level {cov[:, i50].min():.1%}-"
              f"{cov[:, i50].max():.1%}. "
              + ("No seed is over-confident. " if worst == 0 else
                 f"{worst} seed(s) are over-confident: do not trust this setting's intervals. ")
              + (f"The median seed covers more than the level beyond binomial noise at levels {', '.join(wide)}: "
                 "there the posterior is too wide (it errs on the side of under-confidence), and " if wide else "")
              + f"sbi's SBC rank test rejects uniform marginal ranks (KS p < 0.05) on {ks_low} of {len(results)} "
              "seeds."]
    return "\n".join(lines), cov


def plot(cov: np.ndarray, n: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    se = np.sqrt(LEVELS * (1 - LEVELS) / n)
    ax.fill_between(LEVELS, LEVELS - Z * se, LEVELS + Z * se, color="0.85", label="binomial 99% band")
    for k, c in enumerate(cov):
        ax.plot(LEVELS, c, lw=1, label=f"seed {k}")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("credibility level")
    ax.set_ylabel("expected coverage (HPD)")
    ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    (HERE / "out").mkdir(exist_ok=True)
    fig.savefig(HERE / "out" / "sbi_coverage.png", dpi=120)


def write_results(text: str) -> None:
    write_section("sbi_seeds", text, "### Calibration over training seeds", before="## Sweeps (issue 7)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--simulations", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = ts.models.get("adex")
    results, infos, unit, recs = [], [], None, None
    for seed in range(args.seeds):
        post = tsbi.train(model, recording(model, {}, 0), BOUNDS, n_simulations=args.simulations, seed=seed)
        if recs is None:
            unit, recs = datasets(model, post.space, args.datasets)
        results.append(diagnose(post, unit, recs, args.samples))
        infos.append(post.info)
        r = results[-1]
        print(f"seed {seed}: HPD coverage at 0.5 / 0.9: {r['coverage'][9]:.3f} / {r['coverage'][17]:.3f}; "
              f"SBC KS p {np.round(r['ks'], 2)}; TARP ATC {r['atc']:.3f}, p {r['tarp_p']:.2f}", flush=True)
    text, cov = table(results, infos, args.datasets, args.samples, args.simulations)
    print(text)
    plot(cov, args.datasets)
    if not args.no_write:
        write_results(text)


if __name__ == "__main__":
    main()
