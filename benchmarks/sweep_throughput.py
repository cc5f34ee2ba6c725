"""Sweep throughput (issue 7): parameter points x simulated seconds per wall second.

The same AdEx sweep (a x b grid, current steps) run four ways in one process:
- tidesim ``ts.sweep`` in this process (compiled C loop, float64, 1 torch thread);
- the same on a 2-worker Dask LocalCluster (worker processes, 1 thread each; the cluster is started
  and warmed up first: its start-up time is reported separately);
- Brian2 simulating all points x amplitudes as ONE NeuronGroup (as brian2modelfitting does: a
  per-neuron parameter per point, the step currents from a 2-D TimedArray), cython target when a C
  compiler is available (else numpy), warm code cache, then the same measures computed from the
  SpikeMonitor by the sweep's own vectorised measure functions. The swept ``a`` and ``b`` are per-neuron
  variables; every other constant is a namespace scalar (Brian2 lifts what depends only on them out of
  its loop), with Brian2's default compiler flags.

tidesim in one process and Brian2 run interleaved (A, B, A, B, ``--repeats`` times, at least 5): min and
median are reported.

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
from brian2.units.fundamentalunits import get_unit

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


def tidesim_runner(adex, points, protocol, dt, per_chunk, client=None):
    """A warmed-up sweep; the returned function runs it once and returns (seconds, DataFrame)."""
    sweep(adex, points.iloc[:50], protocol, dt=dt, progress=False, client=client)  # kernels built, workers warm

    def run():
        t0 = time.perf_counter()
        df = sweep(adex, points, protocol, dt=dt, progress=False, n_per_chunk=per_chunk, client=client,
                   measures=MEASURES)
        return time.perf_counter() - t0, df

    return run


def brian2_sweep(adex, points, protocol, dt, target):
    """All points x amplitudes in one NeuronGroup, compiled and warmed up; the returned function builds and
    runs it once and returns (total s, ``net.run`` s, ([n_amp, P] spike counts, step measures))."""
    import brian2 as b2

    amps = np.asarray(protocol.amplitudes)
    P, A = len(points), amps.size
    n = P * A
    n_steps = n_steps_for(protocol.duration, dt)
    i0, i1 = protocol.step_indices(dt)
    wave = np.stack([protocol.waveform(a, dt, n_steps) for a in amps], axis=1)  # [T, A]
    constants = {k: v * get_unit(adex.dims[k]) for k, v in adex.parameters.items() if k not in ("I", "a", "b")}
    # I becomes the stimulus; the constants go to the namespace, as scalars
    kept = [eq for eq in adex.equations.ordered if eq.varname not in ("I", *constants)]
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
                           codeobj_class=codeobj, namespace={"stim": stim, **constants})
        swept = {"a": np.repeat(points["a"].to_numpy(), A),  # neuron k = point k // A, amplitude k % A
                 "b": np.repeat(points["b"].to_numpy(), A)}
        g.set_states(swept, units=False)
        g.set_states({"v": np.full(n, adex.parameters["EL"]), "amp_index": np.tile(np.arange(A), P)}, units=False)
        mon = b2.SpikeMonitor(g, codeobj_class=codeobj)
        return b2.Network(g, mon), mon

    net, _ = build()
    net.run(protocol.duration * b2.second, namespace={})  # compiles (or loads the cache): a warm run follows

    def run():
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
        return time.perf_counter() - t0, t2 - t1, (counts, values)

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", type=int, default=100, help="grid side: side^2 points")
    parser.add_argument("--duration", type=float, default=0.5)
    parser.add_argument("--dt", type=float, default=1e-4)
    parser.add_argument("--chunk", type=int, default=2500, help="points per chunk (both tidesim runs)")
    parser.add_argument("--repeats", type=int, default=5)
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
    one = tidesim_runner(adex, points, protocol, args.dt, chunk)
    brian = brian2_sweep(adex, points, protocol, args.dt, target)
    times: dict[str, list[float]] = {"ts": [], "b2": [], "b2run": []}
    for _ in range(args.repeats):  # interleaved: A, B, A, B, ...
        t, df_single = one()
        times["ts"].append(t)
        t_total, t_run, (counts_b2, values_b2) = brian()
        times["b2"].append(t_total)
        times["b2run"].append(t_run)
    rows = [("tidesim ts.sweep, 1 process", times["ts"]),
            (f"Brian2 {target}, one NeuronGroup + SpikeMonitor + same measures", times["b2"]),
            (f"Brian2 {target}, net.run alone", times["b2run"])]

    import distributed

    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    t_start = time.perf_counter() - t0
    try:
        dask_run = tidesim_runner(adex, points, protocol, args.dt, chunk, client=client)
        dask_times, df_dask = [], None
        for _ in range(2):
            t, df_dask = dask_run()
            dask_times.append(t)
    finally:
        client.close()
        cluster.close()
    rows.insert(1, ("tidesim ts.sweep, 2-worker LocalCluster (processes), 2 runs", dask_times))
    same = df_dask.equals(df_single)
    t_single, t_dask, t_b2 = min(times["ts"]), min(dask_times), min(times["b2"])

    counts_ts = df_single["spike_count"].to_numpy().reshape(P, A).T
    agree = float(np.mean(counts_ts == counts_b2))
    print("\n| what | min | median | throughput at the min (point-amplitude runs x simulated s / wall s) |")
    print("| --- | --- | --- | --- |")
    for name, ts_ in rows:
        print(f"| {name} | {min(ts_):.3f} s | {np.median(ts_):.3f} s | {work / min(ts_):,.0f} |")
    print(f"\nLocalCluster start-up (2 worker processes): {t_start:.1f} s (not in the times above)")
    print(f"2-worker result identical to 1 process: {same}")
    print(f"spike counts identical to Brian2's: {agree * 100:.2f}% of {P * A} point-amplitude runs "
          f"(total {int(counts_ts.sum())} tidesim, {int(counts_b2.sum())} Brian2)")
    print(f"ratio Brian2 {target} (with measures) / tidesim 1 process: {t_b2 / t_single:.2f}x (floor: >= 1)")
    print(f"ratio 1 process / 2 workers: {t_single / t_dask:.2f}x")


if __name__ == "__main__":
    main()
