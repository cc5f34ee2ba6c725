"""Network benchmark: COBA (Brette et al. 2007, benchmark 1), 4000 LIF neurons, 1 s at dt = 0.1 ms, CPU.

One process, one torch thread, the same connectivity and initial values on every side
(``tidesim.network.examples.coba``); spikes recorded everywhere, no state variables:
- Brian2 cython, float64 and float32 (``core.default_float_dtype``): one ``brian2.Network`` built once and
  run again each round (the first run compiles or loads the cache); wall time and its profiler's loop time;
- Brian2 cpp_standalone (float64), built in a child process (``set_device`` is global), its binary run
  again each round: its own timer of the run;
- tidesim's compiled network engine, float64 and float32 forward (kernel already built);
- these run interleaved, one round after another (``--repeats``, at least 5): min and median;
- connectivity memory: tidesim's per-synapse arrays against the per-synapse arrays of Brian2's Synapses;
- gradient of the total spike count (surrogate) with respect to every synaptic weight through 1 s of
  COBA with the eager engine, with and without checkpointing: time and peak memory (RSS above the
  level before the run, sampled every ms) in a child process each.

    python benchmarks/coba.py            # a few minutes on 2 cores (Brian2's first cython compile included)
    python benchmarks/coba.py --quick    # 0.1 s of simulated time, no standalone build
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from memory import peak_above_start  # benchmarks/memory.py (run from this folder)

from tidesim.engines.network_compiled import connectivity_bytes
from tidesim.network.examples import COBA_EQUATIONS, COBA_PARAMETERS, coba

torch.set_num_threads(1)
RECORD = {"exc": [], "inh": []}
HERE = os.path.dirname(os.path.abspath(__file__))


def brian2_network(net, dt: float, codeobj_class=None):
    """The tidesim COBA network as Brian2's example builds it: one NeuronGroup with constants in the
    namespace, two Synapses (from the excitatory and the inhibitory subgroup), a SpikeMonitor."""
    import brian2 as b2

    n_exc, n_inh = net.populations["exc"].n, net.populations["inh"].n
    kw = {} if codeobj_class is None else {"codeobj_class": codeobj_class}
    clock = b2.Clock(dt=dt * b2.second)
    namespace = {**COBA_PARAMETERS, "we": 0.6, "wi": 6.7}
    P = b2.NeuronGroup(n_exc + n_inh, COBA_EQUATIONS, threshold="v > Vt", reset="v = Vr",
                       refractory=5 * b2.ms, method="euler", namespace=namespace, clock=clock, **kw)
    for var in ("v", "ge", "gi"):
        values = [np.asarray(net.populations[p].initial[var], dtype=float) for p in ("exc", "inh")]
        P.set_states({var: np.concatenate(values)}, units=False)
    synapses = []
    for pre, source, code in (("exc", P[:n_exc], "ge += we"), ("inh", P[n_exc:], "gi += wi")):
        S = b2.Synapses(source, P, on_pre=code, namespace=namespace, clock=clock, **kw)
        projs = [p for p in net.projections if p.pre == pre]
        offset = {"exc": 0, "inh": n_exc}
        S.connect(i=np.concatenate([p.i.numpy() for p in projs]),
                  j=np.concatenate([p.j.numpy() + offset[p.post] for p in projs]))
        synapses.append(S)
    mon = b2.SpikeMonitor(P, **kw)
    return b2.Network(P, *synapses, mon), synapses, mon


def brian2_synapse_bytes(synapses) -> tuple[int, list[str]]:
    """Bytes of the per-synapse arrays of Brian2's Synapses and their pre-synaptic pathways (each array
    once: ``i`` and ``_presynaptic_idx`` are references to ``_synaptic_pre``). Not counted: the spike
    queue's own copy of the synapse lists (another 4 bytes per synapse in Brian2's C++ SpikeQueue)."""
    total, seen, names = 0, set(), []
    for S in synapses:
        n = len(S)
        for owner in (S, S.pre):
            for name, var in owner.variables.items():
                if getattr(var, "scalar", True) or not hasattr(var, "get_value"):
                    continue
                try:
                    values = np.asarray(var.get_value())
                except (TypeError, NotImplementedError):  # subexpressions
                    continue
                address = values.__array_interface__["data"][0]
                if len(values) == n and address not in seen:
                    seen.add(address)
                    total += values.nbytes
                    names.append(f"{name} ({values.dtype})")
    return total, sorted(set(names))


def brian2_cython(net, duration: float, dt: float, float_dtype=np.float64) -> dict:
    """A built Brian2 network after its first (compiling) run, and a function that runs it once more
    (the same network goes on: no set-up, Brian2's loop) returning wall time, loop time (its profiler's
    code-object time) and spikes."""
    import brian2 as b2
    from brian2.codegen.runtime.cython_rt import CythonCodeObject

    saved = b2.prefs.core.default_float_dtype
    b2.prefs.core.default_float_dtype = float_dtype
    try:
        network, synapses, mon = brian2_network(net, dt, CythonCodeObject)
        t0 = time.perf_counter()
        network.run(duration * b2.second)  # compiles the code objects (or loads Brian2's cache)
        first = time.perf_counter() - t0
    finally:
        b2.prefs.core.default_float_dtype = saved
    spikes = [int(mon.num_spikes)]

    def run() -> dict:
        b2.prefs.core.default_float_dtype = float_dtype
        try:
            before = int(mon.num_spikes)
            t0 = time.perf_counter()
            network.run(duration * b2.second, profile=True)
            wall = time.perf_counter() - t0
        finally:
            b2.prefs.core.default_float_dtype = saved
        loop = sum(float(t) for _, t in network.profiling_info)
        return {"wall": wall, "loop": loop, "spikes": int(mon.num_spikes) - before}

    return {"first": first, "first_spikes": spikes[0], "run": run,
            "synapse_bytes": brian2_synapse_bytes(synapses), "n_synapses": sum(len(S) for S in synapses)}


def _child_standalone(seed: int, duration: float, dt: float, folder: str) -> None:
    """In a child process: build and run the network on Brian2's cpp_standalone device (a global setting)
    in ``folder``; the parent runs the binary again for its timings."""
    import brian2 as b2

    t0 = time.perf_counter()
    b2.set_device("cpp_standalone", directory=folder, build_on_run=False)
    network, _, mon = brian2_network(coba(seed=seed), dt)
    network.run(duration * b2.second)
    b2.device.build(directory=folder, compile=True, run=True)
    print(json.dumps({"total": time.perf_counter() - t0, "spikes": int(mon.num_spikes),
                      "results_dir": b2.device.results_dir}))


def standalone_runner(folder: str, results_dir: str, spikes: int):
    def run() -> dict:
        subprocess.run(["./main", "--results_dir", results_dir], cwd=folder, check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(results_dir, "last_run_info.txt")) as f:
            seconds = float(f.read().split()[0])
        return {"wall": seconds, "loop": seconds, "spikes": spikes}

    return run


def _child_gradient(seed: int, duration: float, dt: float, checkpoint: int | None) -> None:
    """In a child process: d(total spike count)/d(every weight) through the eager engine; time and
    peak RSS above the level just before the run."""
    net = coba(seed=seed, weights="variable", requires_grad=True, dtype=torch.float32)
    weights = [p.values["w"] for p in net.projections]

    def forward_backward(T: float):
        res = net.run(T, dt, record=RECORD, dtype=torch.float32, checkpoint=checkpoint, engine="eager")
        loss = res["exc"].spikes.sum() + res["inh"].spikes.sum()
        return loss.detach(), torch.autograd.grad(loss, weights)

    forward_backward(20 * dt)  # torch warmed up
    (loss, grads), peak, seconds = peak_above_start(lambda: forward_backward(duration))
    finite = all(bool(torch.isfinite(g).all()) for g in grads)
    print(json.dumps({"time": seconds, "peak_mib": peak, "spikes": float(loss), "finite": finite}))



def _child(call: str) -> dict:
    code = f"import sys; sys.path.insert(0, {HERE!r}); import coba as c; c.{call}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def tidesim_runner(net, duration: float, dt: float, dtype: torch.dtype):
    net.run(10 * dt, dt, record=RECORD, engine="compiled", dtype=dtype)  # builds the kernel (cached)

    def run() -> dict:
        t0 = time.perf_counter()
        res = net.run(duration, dt, record=RECORD, engine="compiled", dtype=dtype)
        wall = time.perf_counter() - t0
        return {"wall": wall, "loop": wall, "spikes": int(res["exc"].spikes.sum() + res["inh"].spikes.sum())}

    return run


def interleaved(contestants: dict, repeats: int) -> dict:
    """Each contestant once per round, ``repeats`` rounds: min and median of wall and loop times."""
    runs = {name: [] for name in contestants}
    for _ in range(repeats):
        for name, run in contestants.items():
            runs[name].append(run())
    return {name: {"min": min(r["wall"] for r in rs), "median": float(np.median([r["wall"] for r in rs])),
                   "loop_min": min(r["loop"] for r in rs), "spikes": rs[0]["spikes"]} for name, rs in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--dt", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--checkpoint", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="0.1 s, no cpp_standalone, no gradient")
    args = parser.parse_args()
    duration, dt = (0.1 if args.quick else args.duration), args.dt
    net = coba(seed=args.seed)
    n_syn = sum(p.n_synapses for p in net.projections)
    print(f"COBA: 4000 LIF neurons, {n_syn} synapses, {duration} s at dt = {dt * 1e3} ms "
          f"({int(round(duration / dt))} steps), CPU, 1 thread ({platform.processor() or platform.machine()}, "
          f"torch {torch.__version__})")
    b2c = brian2_cython(net, duration, dt)
    contestants = {"brian2 cython float64": b2c["run"]}
    with tempfile.TemporaryDirectory() as folder:
        if not args.quick:
            sa = _child(f"_child_standalone({args.seed}, {duration}, {dt}, {folder!r})")
            contestants["brian2 cpp_standalone float64"] = standalone_runner(folder, sa["results_dir"],
                                                                              sa["spikes"])
        contestants["tidesim compiled float64"] = tidesim_runner(net, duration, dt, torch.float64)
        contestants["brian2 cython float32"] = brian2_cython(net, duration, dt, np.float32)["run"]
        contestants["tidesim compiled float32"] = tidesim_runner(net, duration, dt, torch.float32)
        result = interleaved(contestants, args.repeats)
    print(f"  brian2 cython, first run (compile or cache): {b2c['first']:.3f} s, {b2c['first_spikes']} spikes")
    if not args.quick:
        print(f"  brian2 cpp_standalone, total (generate+compile+run): {sa['total']:.1f} s")
    print(f"  interleaved, {args.repeats} rounds (loop: Brian2 cython's code objects by its profiler; "
          "cpp_standalone's own timer):")
    for name, r in result.items():
        print(f"  {name:<31} min {r['min']:7.3f} s  median {r['median']:7.3f} s  loop min {r['loop_min']:7.3f} s"
              f"  spikes {r['spikes']}")
    t64, t32 = result["tidesim compiled float64"]["min"], result["tidesim compiled float32"]["min"]
    b64, b32 = result["brian2 cython float64"]["loop_min"], result["brian2 cython float32"]["loop_min"]
    print(f"ratio tidesim / brian2 cython loop: float64 {t64 / b64:.2f}x, float32 {t32 / b32:.2f}x (floor: <= 2)")
    if not args.quick:
        sa_loop = result["brian2 cpp_standalone float64"]["loop_min"]
        print(f"ratio tidesim / brian2 cpp_standalone run: float64 {t64 / sa_loop:.2f}x, float32 "
              f"{t32 / sa_loop:.2f}x (issue 17's floor: <= 1.0x)")
    mem = connectivity_bytes(net, dt)
    ours_bytes = mem["network"] + mem["compiled"]
    b2_bytes, b2_arrays = b2c["synapse_bytes"]
    print(f"connectivity: tidesim {ours_bytes / n_syn:.1f} B/synapse (network {mem['network'] / n_syn:.1f} + "
          f"compiled engine {mem['compiled'] / n_syn:.1f}), brian2 {b2_bytes / b2c['n_synapses']:.1f} B/synapse "
          f"({', '.join(b2_arrays)}); ratio {ours_bytes / b2_bytes:.2f}x (floor: <= 2)")
    if args.quick:
        return
    print("gradient of the total spike count w.r.t. all weights, eager engine, float32 (child processes):")
    for ck in (None, args.checkpoint):
        g = _child(f"_child_gradient({args.seed}, {duration}, {dt}, {ck!r})")
        print(f"  checkpoint={ck!s:<5} forward+backward {g['time']:8.2f} s, peak {g['peak_mib']:8.1f} MiB "
              f"(spikes {g['spikes']:.0f}, gradients finite: {g['finite']})")


if __name__ == "__main__":
    main()
