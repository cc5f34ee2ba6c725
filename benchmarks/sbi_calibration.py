"""Posterior-inference benchmark (issue 7): calibration of tidesim's sbi posterior on synthetic AdEx data.

One amortized posterior is trained (neural posterior estimation, sbi's masked autoregressive flow)
on prior draws of three AdEx parameters (a in 0-10 nS, b in 0-200 pA, tau_w in 20-300 ms, uniform),
each simulated on 3 sweeps of 0.5 s (steps of 0.6, 0.9, 1.2 nA from 50 to 450 ms) at dt = 0.1 ms
with 0.5 mV recording noise, and summarised by 8 statistics per sweep (``tidesim.fitting.sbi.STATISTICS``).
It is then conditioned on ``--datasets`` synthetic recordings (``ts.datasets.synthetic``) whose true
parameters are fresh prior draws. Coverage: how often the truth lies in the 90% / 50% credible region,
joint highest-posterior-density (HPD) or every marginal central interval ("box"). A calibrated
posterior covers 90% / 50% of the datasets in its HPD regions.

    python benchmarks/sbi_calibration.py                  # 3000 simulations, 200 datasets, ~1.5 min
    python benchmarks/sbi_calibration.py --datasets 20    # what the test suite checks
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

import tidesim as ts
from tidesim.fitting import sbi as tsbi

BOUNDS = {"a": (0.0, 10e-9), "b": (0.0, 200e-12), "tau_w": (20e-3, 300e-3)}
AMPLITUDES = [0.6e-9, 0.9e-9, 1.2e-9]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--simulations", type=int, default=3000)
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--estimator", default="maf", help="sbi density estimator: maf, nsf, mdn")
    parser.add_argument("--hidden", type=int, default=32, help="hidden features of the estimator")
    parser.add_argument("--transforms", type=int, default=3, help="flow transforms")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = ts.models.get("adex")

    def recording(params, seed):
        return ts.datasets.synthetic(model, params, protocol=AMPLITUDES, duration=0.5, noise=0.5e-3, seed=seed)

    t0 = time.perf_counter()
    post = tsbi.train(model, recording({}, 0), BOUNDS, n_simulations=args.simulations, seed=args.seed,
                      density_estimator=args.estimator, hidden_features=args.hidden,
                      num_transforms=args.transforms)
    wall = time.perf_counter() - t0
    info = post.info
    rng = np.random.default_rng(10_000 + args.seed)
    levels = (0.9, 0.5)
    hpd = dict.fromkeys(levels, 0)
    box = dict.fromkeys(levels, 0)
    per_param = {k: dict.fromkeys(levels, 0) for k in BOUNDS}
    t1 = time.perf_counter()
    for i in range(args.datasets):
        point = tsbi.from_unit(post.space, torch.as_tensor(rng.uniform(size=(1, 3))))[0]
        true = dict(zip(post.names, point.tolist()))
        cond = post.condition(recording(true, 1000 + i))
        samples = cond.sample(2000, seed=i)
        lp = cond.log_prob(samples)
        lp_true = cond.log_prob({k: [v] for k, v in true.items()})[0]
        for level in levels:
            hpd[level] += bool(lp_true >= np.quantile(lp, 1 - level))
            ci = tsbi.credible_intervals(samples, level)
            inside = {k: bool(ci.loc[k, "low"] <= true[k] <= ci.loc[k, "high"]) for k in BOUNDS}
            box[level] += all(inside.values())
            for k in BOUNDS:
                per_param[k][level] += inside[k]
    cond_s = time.perf_counter() - t1
    n = args.datasets
    print(f"machine: {platform.machine()} {platform.python_version()}, torch {torch.__version__}, "
          f"{args.threads} thread(s); estimator {args.estimator}, {args.hidden} hidden features, "
          f"{args.transforms} transforms")
    print(f"simulations: {info['n_simulations']} ({info['invalid_simulations']} invalid), "
          f"simulating {info['simulation_seconds']:.1f} s (CPU {info['simulation_cpu_seconds']:.1f} s), "
          f"training {info['training_seconds']:.1f} s (CPU {info['training_cpu_seconds']:.1f} s, "
          f"{info['epochs']} epochs), total {wall:.1f} s")
    print(f"conditioning + 2000 samples + coverage checks: {cond_s / n * 1e3:.0f} ms per dataset")
    for level in levels:
        marg = ", ".join(f"{k} {per_param[k][level] / n:.2f}" for k in BOUNDS)
        print(f"{level:.0%} region: HPD coverage {hpd[level] / n:.3f} ({hpd[level]}/{n}), "
              f"marginal box {box[level] / n:.3f}; per parameter: {marg}")


if __name__ == "__main__":
    main()
