"""Sweep throughput (issue 7): parameter points x simulated seconds per wall second.

The same AdEx sweep (a x b grid, current steps) run four ways in one process:
- tidesim ``ts.sweep`` in this process (compiled C loop, float64, 1 torch thread);
- the same on a 2-worker Dask LocalCluster (worker processes, 1 thread each; the cluster is started
  and warmed up first: its start-up time is reported separately);
- Brian2 simulating all points x amplitudes as ONE NeuronGroup (as brian2modelfitting does: a
  per-neuron parameter per point, the step currents from a 2-D TimedArray), cython target when a C
  compiler is available (else numpy), warm code cache, then the same measures computed from the
  SpikeMonitor by the sweep's own vectorised measure functions.

Every side runs the same arithmetic in float64 (same equations, exponential Euler, same dt), so the
spike counts are compared point by point as a correctness check.

    python benchmarks/sweep_throughput.py             # 10,000 points x 2 amplitudes x 0.5 s (~1-2 min)
    python benchmarks/sweep_throughput.py --quick     # 400 points x 2 amplitudes x 0.2 s
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time

import numpy as np
import torch

import tidesim as ts
from tidesim import sweep
from tidesim.core.inputs import n_steps_for
from tidesim.sweep.measures import BUILTIN, StepSpikes, point_measure_values

torch.set_num_threads(1)
MEASURES = list(BUILTIN)


def setup(n_side: int, duration: float):
    adex = ts.models.get("adex")
    points = sweep.grid(a=np.linspace(0, 10e-9, n_side), b=np.linspace(0, 200e-12, n_side))
    protocol = sweep.steps([0.8e-9, 1.2e-9], start=0.05, stop=duration - 0.05, duration=duration)
    return adex, points, protocol


def time_tidesim(adex, points, protocol, dt, per_chunk, client=None, repeats=2):
    sweep(adex, points.iloc[:50], protocol, dt=dt, progress=False, client=client)  # kernels built, workers warm
    best, df = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        df = sweep(adex, points, protocol, dt=dt, progress=False, n_per_chunk=per_chunk, client=client,
                   measures=MEASURES)
        best = min(best, time.perf_counter() - t0)
    return best, df


def brian2_sweep(adex, points, protocol, dt, target, repeats=2):
    """All points x amplitudes in one NeuronGroup.

    Returns (best total s, best ``net.run`` s, ([n_amp, P] spike counts, step measures)).
    """
    import brian2 as b2

    amps = np.asarray(protocol.amplitudes)
    P, A = len(points), amps.size
    n = P * A
    n_steps = n_steps_for(protocol.duration, dt)
    i0, i1 = protocol.step_indices(dt)
    wave = np.stack([protocol.waveform(a, dt, n_steps) for a in amps], axis=1)  # [T, A]
    kept = [eq for eq in adex.equations.ordered if eq.varname != "I"]  # I becomes the stimulus
    eqs = b2.Equations(kept) + b2.Equations("I = stim(t, amp_index) : amp\namp_index : integer (constant)")
    codeobj = None
    if target == "cython":
        from brian2.codegen.runtime.cython_rt import CythonCodeObject as codeobj
    else:
        from brian2.codegen.runtime.numpy_rt import NumpyCodeObject as codeobj

    def build():
        clock = b2.Clock(dt=dt * b2.second)
        stim = b2.TimedArray(wave * b2.amp, dt=dt * b2.second)
        g = b2.NeuronGroup(n, eqs, threshold=adex.threshold, reset=adex.reset, method=adex.method, clock=clock,
                           codeobj_class=codeobj, namespace={"stim": stim})
        fixed = {k: np.full(n, float(v)) for k, v in adex.parameters.items() if k != "I"}
        fixed["a"] = np.repeat(points["a"].to_numpy(), A)  # neuron k = point k // A, amplitude k % A
        fixed["b"] = np.repeat(points["b"].to_numpy(), A)
        g.set_states(fixed, units=False)
        g.set_states({"v": np.full(n, adex.parameters["EL"]), "amp_index": np.tile(np.arange(A), P)}, units=False)
        mon = b2.SpikeMonitor(g, codeobj_class=codeobj)
        return b2.Network(g, mon), mon

    net, _ = build()
    net.run(protocol.duration * b2.second, namespace={})  # compiles (or loads the cache): a warm run follows
    best_total, best_run, out = np.inf, np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        net, mon = build()
        t1 = time.perf_counter()
        net.run(protocol.duration * b2.second, namespace={})
        t2 = time.perf_counter()
        idx = np.asarray(mon.i[:], dtype=np.int64)
        steps = np.round(np.asarray(mon.t[:]) / dt).astype(np.int64)
        inside = (steps >= i0) & (steps < i1)
        counts = np.zeros((A, P), dtype=np.int64)
        values = {m: np.zeros((A, P)) for m in MEASURES if BUILTIN[m].level == "step"}
        for j in range(A):
            sel = inside & (idx % A == j)
            owner = idx[sel] // A
            order = np.lexsort((steps[sel], owner))
            s = StepSpikes(P, owner[order], steps[sel][order] * dt - i0 * dt, (i1 - i0) * dt, amps[j], dt)
            counts[j] = s.counts()
            for m in values:
                values[m][j] = BUILTIN[m].fn(s)
        point_measure_values([BUILTIN[m] for m in MEASURES], counts, amps, (i1 - i0) * dt)
        t3 = time.perf_counter()
        if t3 - t0 < best_total:
            best_total, out = t3 - t0, (counts, values)
        best_run = min(best_run, t2 - t1)
    return best_total, best_run, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", type=int, default=100, help="grid side: side^2 points")
    parser.add_argument("--duration", type=float, default=0.5)
    parser.add_argument("--dt", type=float, default=1e-4)
    parser.add_argument("--chunk", type=int, default=2500, help="points per chunk (both tidesim runs)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    side, duration, chunk = (20, 0.2, 100) if args.quick else (args.side, args.duration, args.chunk)
    adex, points, protocol = setup(side, duration)
    P, A = len(points), len(protocol.amplitudes)
    work = P * A * duration  # point-amplitude runs x simulated seconds
    target = "cython" if shutil.which("gcc") or shutil.which("cc") else "numpy"
    print(f"AdEx sweep: {P} points (a x b grid) x {A} step amplitudes x {duration} s at dt = {args.dt * 1e3} ms "
          f"= {work:.0f} simulated neuron-seconds; float64; {chunk} points per chunk; 1 torch thread; "
          f"{os.cpu_count()} cores ({platform.machine()}, torch {torch.__version__}); "
          f"measures: {', '.join(MEASURES)}")
    rows = []
    t_single, df_single = time_tidesim(adex, points, protocol, args.dt, chunk)
    rows.append(("tidesim ts.sweep, 1 process", t_single))

    import distributed

    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    t_start = time.perf_counter() - t0
    try:
        t_dask, df_dask = time_tidesim(adex, points, protocol, args.dt, chunk, client=client)
    finally:
        client.close()
        cluster.close()
    rows.append(("tidesim ts.sweep, 2-worker LocalCluster (processes)", t_dask))
    same = df_dask.equals(df_single)

    t_b2, t_b2_run, (counts_b2, values_b2) = brian2_sweep(adex, points, protocol, args.dt, target)
    rows.append((f"Brian2 {target}, one NeuronGroup + SpikeMonitor + same measures", t_b2))
    rows.append((f"Brian2 {target}, net.run alone", t_b2_run))

    counts_ts = df_single["spike_count"].to_numpy().reshape(P, A).T
    agree = float(np.mean(counts_ts == counts_b2))
    print("\n| what | wall time | throughput (point-amplitude runs x simulated s / wall s) |")
    print("| --- | --- | --- |")
    for name, t in rows:
        print(f"| {name} | {t:.3f} s | {work / t:,.0f} |")
    print(f"\nLocalCluster start-up (2 worker processes): {t_start:.1f} s (not in the times above)")
    print(f"2-worker result identical to 1 process: {same}")
    print(f"spike counts identical to Brian2's: {agree * 100:.2f}% of {P * A} point-amplitude runs "
          f"(total {int(counts_ts.sum())} tidesim, {int(counts_b2.sum())} Brian2)")
    print(f"ratio Brian2 {target} (with measures) / tidesim 1 process: {t_b2 / t_single:.2f}x (floor: >= 1)")
    print(f"ratio 1 process / 2 workers: {t_single / t_dask:.2f}x")


if __name__ == "__main__":
    main()
