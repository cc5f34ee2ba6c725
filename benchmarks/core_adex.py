"""Core benchmark: 1000 AdEx neurons with different step currents, 1 s at dt = 0.1 ms, float32, CPU.

Runs both sides in one process and prints the ratios:
- Brian2 cython, warm cache: a fresh Network's ``net.run`` after a first (compiling) run;
- tidesim forward (compiled engine), forward + backward (adjoint kernel), and the eager engine;
- peak memory of the forward + backward pass, with and without checkpointing, each measured in
  its own child process (peak RSS above the process's state just before the run).

    python benchmarks/core_adex.py            # ~1 minute on 2 cores
    python benchmarks/core_adex.py --quick    # smaller, for a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch
from memory import peak_above_start  # benchmarks/memory.py (run from this folder)

import tidesim as ts

torch.set_num_threads(1)
REPEATS = 5  # each tidesim time is the min of this many runs (the first pays for fresh memory pages)


def currents(n: int) -> torch.Tensor:
    return torch.linspace(0.5e-9, 1.5e-9, n)


def brian2_warm(n: int, duration: float, dt: float) -> tuple[float, float]:
    import brian2 as b2
    from brian2.codegen.runtime.cython_rt import CythonCodeObject

    model = ts.models.get("adex")

    def build():
        clock = b2.Clock(dt=dt * b2.second)
        g = b2.NeuronGroup(n, model.equations, threshold=model.threshold, reset=model.reset,
                           method=model.method, clock=clock, codeobj_class=CythonCodeObject, namespace={})
        g.set_states({k: np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy()
                      for k, v in model.parameters.items() if k != "I"}, units=False)
        g.set_states({"I": currents(n).double().numpy(), "v": np.full(n, model.parameters["EL"])}, units=False)
        mon = b2.SpikeMonitor(g, codeobj_class=CythonCodeObject)
        return b2.Network(g, mon)

    build().run(duration * b2.second)  # compiles (or loads the cache)
    net = build()
    t0 = time.perf_counter()
    net.run(duration * b2.second)
    t1 = time.perf_counter()
    net.run(duration * b2.second)  # the same network again: no set-up, Brian2's loop alone
    return t1 - t0, time.perf_counter() - t1


def tidesim_forward(n, duration, dt, engine) -> tuple[float, int]:
    adex = ts.models.get("adex")
    kw = dict(duration=duration, dt=dt, params={"I": currents(n)}, dtype=torch.float32, record=[], engine=engine)
    ts.simulate(adex, **{**kw, "duration": 10 * dt})  # builds the kernel
    runs = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        with torch.no_grad():
            res = ts.simulate(adex, **kw)
        runs.append(time.perf_counter() - t0)
        count = int(res.spike_counts.sum())
        del res
    return min(runs), count


def tidesim_forward_backward(n, duration, dt, engine, checkpoint=None) -> float:
    adex = ts.models.get("adex")
    b = torch.full((n,), 80e-12, requires_grad=True)
    kw = dict(duration=duration, dt=dt, params={"I": currents(n), "b": b}, dtype=torch.float32, record=[],
              engine=engine, checkpoint=checkpoint)
    ts.simulate(adex, **{**kw, "duration": 10 * dt}).spikes.sum().backward()  # builds the kernels
    runs = []
    for _ in range(REPEATS):
        b.grad = None
        t0 = time.perf_counter()
        res = ts.simulate(adex, **kw)
        res.spikes.sum().backward()
        runs.append(time.perf_counter() - t0)
        del res
        assert torch.isfinite(b.grad).all()
    return min(runs)



def _child_memory(n, duration, dt, engine, checkpoint):
    """Runs in a child process: peak RSS (MiB) of one forward + backward pass above the RSS before it.

    RSS is sampled every millisecond by a thread (the process's lifetime peak, ru_maxrss, can
    predate the run: imports and code generation allocate and free memory too).
    """

    adex = ts.models.get("adex")
    b = torch.full((n,), 80e-12, requires_grad=True)
    kw = dict(dt=dt, params={"I": currents(n), "b": b}, dtype=torch.float32, record=[], engine=engine,
              checkpoint=checkpoint)
    ts.simulate(adex, duration=10 * dt, **kw).spikes.sum().backward()  # kernels built, torch warmed up
    _, peak, _ = peak_above_start(lambda: ts.simulate(adex, duration=duration, **kw).spikes.sum().backward())
    print(json.dumps({"peak_mib": peak}))


def peak_memory(n, duration, dt, engine, checkpoint) -> float:
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"import core_adex as c; c._child_memory({n}, {duration}, {dt}, {engine!r}, {checkpoint!r})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--dt", type=float, default=1e-4)
    parser.add_argument("--quick", action="store_true", help="100 neurons, 0.2 s, no eager backward")
    args = parser.parse_args()
    n, duration, dt = (100, 0.2, args.dt) if args.quick else (args.n, args.duration, args.dt)
    steps = int(round(duration / dt))
    print(f"AdEx, {n} neurons, {duration} s at dt = {dt * 1e3} ms ({steps} steps), float32, CPU, "
          f"1 thread ({platform.processor() or platform.machine()}, torch {torch.__version__})")
    rows = {}
    rows["brian2 cython net.run (warm)"], rows["brian2 cython second run of the same network"] = \
        brian2_warm(n, duration, dt)
    fwd, spikes = tidesim_forward(n, duration, dt, "compiled")
    rows["tidesim forward (compiled)"] = fwd
    rows["tidesim forward+backward (compiled)"] = tidesim_forward_backward(n, duration, dt, "compiled")
    rows["tidesim forward+backward (compiled, checkpoint=100)"] = tidesim_forward_backward(
        n, duration, dt, "compiled", 100)
    eager_fwd, _ = tidesim_forward(n, duration, dt, "eager")
    rows["tidesim forward (eager)"] = eager_fwd
    if not args.quick:
        rows["tidesim forward+backward (eager)"] = tidesim_forward_backward(n, duration, dt, "eager")
    for name, seconds in rows.items():
        print(f"  {name:<55} {seconds:8.3f} s")
    print(f"  spikes: {spikes}")
    print(f"ratio Brian2 warm run / tidesim forward: {rows['brian2 cython net.run (warm)'] / fwd:.2f}x "
          "(floor: >= 1)")
    print(f"ratio tidesim forward+backward / forward: {rows['tidesim forward+backward (compiled)'] / fwd:.2f}x "
          "(floor: <= 4)")
    print("peak memory of forward+backward (child processes):")
    mem = {}
    for engine in ("compiled", "eager"):
        for ck in (None, 100):
            if engine == "eager" and args.quick:
                continue
            mem[(engine, ck)] = peak_memory(n, duration, dt, engine, ck)
            print(f"  {engine:<9} checkpoint={ck!s:<5} {mem[(engine, ck)]:8.1f} MiB")
    for engine in ("compiled", "eager"):
        if (engine, None) in mem:
            ratio = mem[(engine, None)] / max(mem[(engine, 100)], 1e-9)
            print(f"checkpointing cuts peak memory ({engine}): {ratio:.1f}x (floor: >= 3)")


if __name__ == "__main__":
    main()
