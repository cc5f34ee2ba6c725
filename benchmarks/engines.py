"""Engines (issue 17): AdEx per neuron-step against Brian2 in its best honest setup, and scaling.

Brian2 gets every AdEx constant as a namespace constant (scalars: its loop-invariant optimisation lifts
``exp(-VT/DeltaT)`` and the decay factors out of the loop), the step current ``I`` as a per-neuron
variable, as tidesim; its default compiler flags (``-O3 -ffast-math -march=native``). The same precision
on both sides: float64 against float64 (Brian2 cython and cpp_standalone), float32 against float32 (Brian2
cython with ``core.default_float_dtype = float32``). The contestants run interleaved (A, B, C, ..., repeated
``--repeats`` times, at least 5); min and median are reported. cpp_standalone's time is its binary's own timer
of the network run (``last_run_info.txt``: no process start, no file output). tidesim runs without gradients
(spike events, ``record=[]``), one thread.

The scaling table runs N = 100 ... 10^6 at about 10^8 neuron-steps per run, with the peak memory of a 1 s
run (RSS above the level before it, sampled every millisecond, in a child process).

    python benchmarks/engines.py            # about 10 minutes on 2 cores; writes its RESULTS.md section
    python benchmarks/engines.py --quick    # smaller sizes, 2 repeats, nothing written
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from memory import peak_above_start  # benchmarks/memory.py (run from this folder)
from results_md import write_section

import tidesim as ts

torch.set_num_threads(1)
DT = 1e-4


def currents(n: int) -> np.ndarray:
    return np.linspace(0.5e-9, 1.5e-9, n)


def brian2_equations():
    """AdEx with its constants in a namespace and only ``I`` per neuron."""
    import brian2 as b2
    from brian2.units.fundamentalunits import get_unit

    model = ts.models.get("adex")
    namespace = {k: v * get_unit(model.dims[k]) for k, v in model.parameters.items() if k != "I"}
    kept = [eq for eq in model.equations.ordered if eq.varname not in namespace]
    return model, b2.Equations(kept), namespace


def brian2_cython(n: int, duration: float, float_dtype) -> callable:
    """A built, compiled and warmed-up Brian2 network; the returned function runs it once from the same
    initial state (restored outside the timer) and returns the wall time of ``net.run``, the time of its
    code objects (Brian2's profiler: the loop without the set-up of each run) and the spike count."""
    import brian2 as b2
    from brian2.codegen.runtime.cython_rt import CythonCodeObject

    model, eqs, namespace = brian2_equations()
    saved = b2.prefs.core.default_float_dtype
    b2.prefs.core.default_float_dtype = float_dtype
    try:
        clock = b2.Clock(dt=DT * b2.second)
        g = b2.NeuronGroup(n, eqs, threshold=model.threshold, reset=model.reset, method=model.method,
                           namespace=namespace, clock=clock, codeobj_class=CythonCodeObject)
        g.I = currents(n) * b2.amp
        g.v = model.parameters["EL"] * b2.volt
        mon = b2.SpikeMonitor(g, codeobj_class=CythonCodeObject)
        net = b2.Network(g, mon)
        net.store()
        net.run(10 * DT * b2.second)  # compiles, or loads Brian2's cache
    finally:
        b2.prefs.core.default_float_dtype = saved

    def run() -> dict:
        net.restore()
        b2.prefs.core.default_float_dtype = float_dtype
        try:
            t0 = time.perf_counter()
            net.run(duration * b2.second, profile=True)
            seconds = time.perf_counter() - t0
        finally:
            b2.prefs.core.default_float_dtype = saved
        loop = sum(float(t) for _, t in net.profiling_info)  # its code objects' time: the loop without set-up
        return {"wall": seconds, "loop": loop, "spikes": int(mon.num_spikes)}

    return run


def _child_standalone_build(n: int, duration: float, folder: str) -> None:
    """In a child process (the device is a global setting): build Brian2's cpp_standalone project."""
    import brian2 as b2

    b2.set_device("cpp_standalone", directory=folder, build_on_run=False)
    model, eqs, namespace = brian2_equations()
    g = b2.NeuronGroup(n, eqs, threshold=model.threshold, reset=model.reset, method=model.method,
                       namespace=namespace, dt=DT * b2.second)
    g.I = currents(n) * b2.amp
    g.v = model.parameters["EL"] * b2.volt
    mon = b2.SpikeMonitor(g)
    net = b2.Network(g, mon)
    net.run(duration * b2.second)
    b2.device.build(directory=folder, compile=True, run=True)
    print(json.dumps({"results_dir": b2.device.results_dir, "spikes": int(mon.num_spikes)}))


def brian2_standalone(n: int, duration: float, folder: str) -> callable:
    """Runs of the built binary, timed by the binary itself."""
    info = _child(f"_child_standalone_build({n}, {duration}, {folder!r})")
    results = info["results_dir"]

    def run() -> dict:
        subprocess.run(["./main", "--results_dir", results], cwd=folder, check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(results, "last_run_info.txt")) as f:
            seconds = float(f.read().split()[0])
        return {"wall": seconds, "loop": seconds, "spikes": info["spikes"]}

    return run


def tidesim_run(n: int, duration: float, dtype: torch.dtype) -> callable:
    adex = ts.models.get("adex")
    kw = dict(dt=DT, params={"I": torch.from_numpy(currents(n)).to(dtype)}, dtype=dtype, record=[],
              engine="compiled", threads=1)
    ts.simulate(adex, 10 * DT, **kw)  # builds the kernel

    def run() -> dict:
        t0 = time.perf_counter()
        res = ts.simulate(adex, duration, **kw)
        seconds = time.perf_counter() - t0
        return {"wall": seconds, "loop": seconds, "spikes": int(res.spike_counts.sum())}

    return run


def interleaved(contestants: dict[str, callable], repeats: int) -> dict[str, dict]:
    """Every contestant once per round, ``repeats`` rounds: min and median of the wall and loop times."""
    runs = {name: [] for name in contestants}
    for _ in range(repeats):
        for name, run in contestants.items():
            runs[name].append(run())
    out = {}
    for name, rs in runs.items():
        wall, loop = [r["wall"] for r in rs], [r["loop"] for r in rs]
        out[name] = {"min": min(wall), "median": statistics.median(wall), "loop_min": min(loop),
                     "loop_median": statistics.median(loop), "spikes": rs[-1]["spikes"]}
    return out


def _child(call: str) -> dict:
    here = os.path.dirname(os.path.abspath(__file__))
    code = f"import sys; sys.path.insert(0, {here!r}); import engines as e; e.{call}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child_memory(n: int, duration: float, dtype: str) -> None:
    """In a child process: peak RSS (MiB) of one run without gradients above the level before it."""
    run = tidesim_run(n, duration, getattr(torch, dtype))
    _, peak, _ = peak_above_start(run)
    print(json.dumps({"peak_mib": peak}))


def fair_table(sizes, repeats, folder_root) -> list[dict]:
    rows = []
    for n, duration in sizes:
        steps = int(round(duration / DT))
        contestants = {
            "brian2 cython float64": brian2_cython(n, duration, np.float64),
            "brian2 cpp_standalone float64": brian2_standalone(n, duration, os.path.join(folder_root, f"sa{n}")),
            "tidesim compiled float64": tidesim_run(n, duration, torch.float64),
            "brian2 cython float32": brian2_cython(n, duration, np.float32),
            "tidesim compiled float32": tidesim_run(n, duration, torch.float32),
        }
        result = interleaved(contestants, repeats)
        for name, r in result.items():
            rows.append({"n": n, "steps": steps, "who": name, **r, "ns": r["min"] / (n * steps) * 1e9,
                         "ns_loop": r["loop_min"] / (n * steps) * 1e9})
            print(f"N={n:>7} {name:<31} min {r['min']:7.3f} s  median {r['median']:7.3f} s  "
                  f"loop {r['loop_min']:7.3f} s  {rows[-1]['ns']:6.2f} ns/neuron-step  spikes {r['spikes']}",
                  flush=True)
    return rows


def scaling_table(sizes, repeats) -> list[dict]:
    rows = []
    for n in sizes:
        duration = min(10.0, max(0.1, round(1e8 / n * DT, 4)))
        steps = int(round(duration / DT))
        contestants = {"tidesim float32": tidesim_run(n, duration, torch.float32),
                       "tidesim float64": tidesim_run(n, duration, torch.float64),
                       "brian2 cython float64": brian2_cython(n, duration, np.float64)}
        result = interleaved(contestants, repeats)
        mem = {d: _child(f"_child_memory({n}, 1.0, {d!r})")["peak_mib"] for d in ("float32", "float64")}
        rows.append({"n": n, "steps": steps, "result": result, "memory": mem})
        line = "  ".join(f"{k} {v['min'] / (n * steps) * 1e9:6.2f} ns" for k, v in result.items())
        print(f"N={n:>8} steps {steps:>7}: {line}; peak memory 1 s run {mem['float32']:.0f} / "
              f"{mem['float64']:.0f} MiB (float32/float64)", flush=True)
    return rows


def markdown(fair, scaling, args, machine) -> str:
    out = [f"`python benchmarks/engines.py` ({datetime.date.today()}, {machine}, 1 thread; {args.repeats} "
           "interleaved repetitions of every contestant, min and median). AdEx (Brette & Gerstner 2005 "
           "defaults), step currents 0.5-1.5 nA across neurons, dt = 0.1 ms, spikes only recorded. Brian2 gets "
           "its constants as namespace scalars and its default compiler flags (with -ffast-math); tidesim "
           "computes with IEEE arithmetic. Wall: the whole call (`net.run`, `ts.simulate`); loop: Brian2 "
           "cython's code objects as its profiler times them (without the set-up of each run), cpp_standalone's "
           "own timer. ns / neuron-step from the min.", "",
           "| N | steps | contestant | wall min | wall median | loop min | ns / neuron-step (wall) | "
           "ns / neuron-step (loop) | spikes |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in fair:
        out.append(f"| {r['n']:,} | {r['steps']:,} | {r['who']} | {r['min']:.3f} s | {r['median']:.3f} s | "
                   f"{r['loop_min']:.3f} s | {r['ns']:.2f} | {r['ns_loop']:.2f} | {r['spikes']:,} |")
    out += ["", "Ratios of tidesim's wall time to Brian2's loop time per neuron-step (below 1: tidesim faster; "
            "Brian2's set-up not counted, tidesim's counted):", ""]
    for n in sorted({r["n"] for r in fair}):
        by = {r["who"]: r for r in fair if r["n"] == n}
        t64, t32 = by["tidesim compiled float64"]["ns"], by["tidesim compiled float32"]["ns"]
        out.append(f"- N = {n:,}: float64 {t64 / by['brian2 cython float64']['ns_loop']:.2f}x Brian2 cython, "
                   f"{t64 / by['brian2 cpp_standalone float64']['ns_loop']:.2f}x cpp_standalone; float32 "
                   f"{t32 / by['brian2 cython float32']['ns_loop']:.2f}x Brian2 cython")
    out += ["", "Scaling: runs of 0.1-10 s of simulated time (about 10^8 neuron-steps; fewer for N = 100, more "
            "for 10^6), wall time per neuron-step (min of the interleaved runs; Brian2's loop time in "
            "parentheses), and the peak memory of a 1 s run without gradients above the level before it "
            "(child process):", "",
            "| N | steps | tidesim float32 | tidesim float64 | Brian2 cython float64 | peak, 1 s, float32 | "
            "peak, 1 s, float64 |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in scaling:
        res, n, steps = r["result"], r["n"], r["steps"]
        cells = [f"{res[k]['min'] / (n * steps) * 1e9:.2f} ns" for k in ("tidesim float32", "tidesim float64")]
        b2 = res["brian2 cython float64"]
        cells.append(f"{b2['min'] / (n * steps) * 1e9:.2f} ns ({b2['loop_min'] / (n * steps) * 1e9:.2f} ns)")
        out.append(f"| {n:,} | {steps:,} | {' | '.join(cells)} | {r['memory']['float32']:.0f} MiB | "
                   f"{r['memory']['float64']:.0f} MiB |")
    out += ["", "GPU numbers are missing: no GPU was available to this benchmark."]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.quick:
        args.repeats = 2
        fair_sizes, scale_sizes = [(1000, 0.2), (10_000, 0.05)], [100, 10_000]
    else:
        fair_sizes = [(1000, 10.0), (10_000, 1.0), (100_000, 0.1)]  # 10^8 neuron-steps each
        scale_sizes = [100, 1000, 10_000, 100_000, 1_000_000]
    machine = f"dev-2core ({platform.machine()}, torch {torch.__version__})"
    print(f"engines benchmark, {machine}, 1 thread, {args.repeats} interleaved repeats", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        fair = fair_table(fair_sizes, args.repeats, folder)
    scaling = scaling_table(scale_sizes, max(3, args.repeats - 2))
    text = markdown(fair, scaling, args, machine)
    print(text)
    if not args.quick:
        write_section("engines", text, "## Engines (issue 17): AdEx per neuron-step, fair, and scaling")


if __name__ == "__main__":
    main()
