"""Fitting benchmark: time to quality, tidesim vs a Brian2 differential-evolution reference.

The problem (issue 4): synthetic AdEx data with known parameters, 4 fitted parameters (a, b, tau_w,
V_T), 3 sweeps of 1 s (steps of 0.7, 0.9, 1.1 nA from 0.1 to 0.9 s), 0.5 mV recording noise,
dt = 0.1 ms, tidesim's default loss (sub-threshold trace with spike windows masked + van Rossum
+ spike count) on both sides.

- Reference, as brian2modelfitting does it: scipy's ``differential_evolution`` (vectorised,
  population P), each generation one Brian2 run of a NeuronGroup holding P x 3 neurons (one per
  candidate and sweep, the sweeps' currents as a TimedArray), cython target with a warm cache,
  the network built once and reset with ``store``/``restore``; the model's constants are namespace
  scalars, the fitted parameters per-neuron variables. Its outputs (voltage traces, spike events) go
  through the same loss functions as tidesim's.
- tidesim: ``ts.fit(method="auto")``: the same scipy DE on the batched compiled torch simulator,
  then gradient polishing of the trace term.

Both run in this process, one thread each; the script prints each side's best loss against wall
time and the ratio of times to reach the reference's final loss.

    python benchmarks/fit_adex.py             # ~3 minutes on 2 cores
    python benchmarks/fit_adex.py --quick     # a smoke test
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from brian2.units.fundamentalunits import get_unit

import tidesim as ts
from tidesim.fitting.data import prepare
from tidesim.fitting.losses import ModelOutput, default_loss
from tidesim.fitting.parameters import ParameterSpace

torch.set_num_threads(1)

TRUE = {"a": 4e-9, "b": 80e-12, "tau_w": 150e-3, "VT": -50.4e-3}
BOUNDS = {"a": (0.0, 10e-9), "b": (0.0, 200e-12), "tau_w": (20e-3, 300e-3), "VT": (-60e-3, -40e-3)}
AMPLITUDES = [0.7e-9, 0.9e-9, 1.1e-9]


def problem(dt: float):
    model = ts.models.get("adex")
    rec = ts.datasets.synthetic(model, TRUE, protocol=AMPLITUDES, duration=1.0, dt=dt, noise=0.5e-3, seed=1)
    return model, rec


class Brian2Evaluator:
    """One Brian2 network of P x S neurons, built once; each call sets the candidates' parameters,
    restores the initial state and runs the sweeps' duration."""

    def __init__(self, model, data, space: ParameterSpace, popsize: int):
        import brian2 as b2
        from brian2.codegen.runtime.cython_rt import CythonCodeObject

        self.b2, self.model, self.data, self.space = b2, model, data, space
        S, T = data.n_sweeps, data.n_steps
        self.P, self.S = popsize, S
        n = popsize * S
        clock = b2.Clock(dt=data.dt * b2.second)
        # the constants as namespace scalars (Brian2 lifts what depends only on them out of its loop); the
        # fitted parameters and the current per neuron
        constants = {k: v * get_unit(model.dims[k]) for k, v in model.parameters.items()
                     if k != "I" and k not in space.names}
        eqs = b2.Equations([eq for eq in model.equations.ordered if eq.varname not in constants])
        g = b2.NeuronGroup(n, eqs, threshold=model.threshold, reset=model.reset, method=model.method,
                           clock=clock, codeobj_class=CythonCodeObject, namespace=constants, name="candidates*")
        current = data.current.numpy()  # [T, S]: neuron p*S + s gets sweep s
        ta = b2.TimedArray(np.tile(current, (1, popsize)) * b2.amp, dt=data.dt * b2.second)
        g.run_regularly("I = sweep_current(t, i)", when="start", order=-1, codeobj_class=CythonCodeObject)
        g.v = np.tile(data.voltage[0].numpy(), popsize) * b2.volt
        self.vmon = b2.StateMonitor(g, "v", record=True, clock=clock, codeobj_class=CythonCodeObject)
        self.smon = b2.SpikeMonitor(g, codeobj_class=CythonCodeObject)
        self.group = g
        self.net = b2.Network(g, self.vmon, self.smon)
        self.namespace = {"sweep_current": ta, **constants}
        self.net.store("initial")
        self.duration = T * data.dt

    def __call__(self, x: torch.Tensor) -> ModelOutput:
        b2 = self.b2
        P = x.shape[0]
        if P > self.P:
            raise ValueError(f"{P} candidates but the network holds {self.P}")
        self.net.restore("initial")
        vals = x.numpy()
        pad = np.concatenate([vals, np.repeat(vals[-1:], self.P - P, 0)]) if P < self.P else vals
        self.group.set_states({name: np.repeat(pad[:, j], self.S) for j, name in enumerate(self.space.names)},
                              units=False)
        self.net.run(self.duration * b2.second, namespace=self.namespace)
        T, S = self.data.n_steps, self.S
        v = torch.from_numpy(np.ascontiguousarray(self.vmon.v_[:].T))[:T]  # [T, P*S]
        steps = np.round(np.asarray(self.smon.t_[:]) / self.data.dt).astype(np.int64)
        idx = np.asarray(self.smon.i[:], dtype=np.int64)
        keep = (steps < T) & (idx < P * S)  # the padding candidates' spikes dropped
        order = np.lexsort((idx[keep], steps[keep]))
        events = (steps[keep][order], idx[keep][order])  # spike events, as tidesim's gradient-free path
        return ModelOutput(v.reshape(T, self.P, S)[:, :P], None, self.data.dt, events=events)


def brian2_de(model, rec, popsize: int, max_iter: int, seed: int):
    from scipy.optimize import differential_evolution

    data = prepare(rec)
    space = ParameterSpace(model, BOUNDS)
    d = len(space)
    P = max(1, popsize // d) * d
    loss = default_loss()
    t_build = time.perf_counter()
    ev = Brian2Evaluator(model, data, space, P)
    ev(space.from_unit(np.full((P, d), 0.5)))  # compile (or load the cache) before the clock starts
    build = time.perf_counter() - t_build
    trace = []
    best = [np.inf]
    t0 = time.perf_counter()

    def objective(u):
        u = np.atleast_2d(u.T)
        x = space.from_unit(u)
        values = torch.nan_to_num(loss(ev(x), data), nan=np.inf).numpy()
        best[0] = min(best[0], float(values.min()))
        return values

    def on_generation(*args, **kwargs):
        trace.append((time.perf_counter() - t0, best[0]))

    differential_evolution(objective, [(0.0, 1.0)] * d, popsize=max(1, popsize // d), maxiter=max_iter, rng=seed,
                           tol=1e-6, vectorized=True, updating="deferred", polish=False, callback=on_generation,
                           init="sobol")
    return trace, build


def tidesim_fit(model, rec, popsize: int, max_iter: int, seed: int):
    trace = []
    t0 = time.perf_counter()

    def callback(state):
        trace.append((time.perf_counter() - t0, float(state.best_loss.min())))

    fit = ts.fit(model, rec, params=BOUNDS, method="auto", n_starts=popsize, max_iter=max_iter, seed=seed,
                 callback=callback)
    trace.append((time.perf_counter() - t0, fit.loss))  # after the gradient polish
    return trace, fit


def time_to(trace, level):
    for t, v in trace:
        if v <= level * (1 + 1e-9):
            return t
    return float("nan")


def generation_split(model, rec, popsize: int, repeats: int = 5) -> tuple[float, float]:
    """Median time of one generation's batched simulation and of its loss (64 random candidates)."""
    from tidesim.fitting.problem import Problem

    data = prepare(rec)
    space = ParameterSpace(model, BOUNDS)
    problem_ = Problem(model, data, space)
    loss = default_loss()
    x = space.from_unit(np.random.default_rng(0).random((popsize, len(space))))
    sims, losses = [], []
    with torch.no_grad():
        loss(problem_.simulate(x), data)  # kernels built
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = problem_.simulate(x)
            t1 = time.perf_counter()
            loss(out, data)
            sims.append(t1 - t0)
            losses.append(time.perf_counter() - t1)
    return float(np.median(sims)), float(np.median(losses))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--popsize", type=int, default=64)
    ap.add_argument("--max-iter", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5, help="interleaved runs of each side")
    args = ap.parse_args()
    if args.quick:
        args.popsize, args.max_iter, args.repeats = 16, 5, 1
    dt = 1e-4
    model, rec = problem(dt)
    print(f"synthetic AdEx, true {TRUE}; 3 sweeps x 1 s at dt {dt * 1e3:g} ms, spikes {rec.spike_counts.tolist()}")
    print(f"{platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}, 1 thread")
    t_refs, t_ours = [], []
    for _ in range(args.repeats):  # interleaved: reference, tidesim, reference, tidesim, ...
        ref, build = brian2_de(model, rec, args.popsize, args.max_iter, args.seed)
        ours, fit = tidesim_fit(model, rec, args.popsize, args.max_iter, args.seed)
        ref_final = ref[-1][1]
        t_refs.append(ref[-1][0])
        t_ours.append(time_to(ours, ref_final))
    print(f"\nBrian2 DE reference (cython, warm; network build {build:.1f} s not counted): "
          f"{len(ref)} generations, final loss {ref_final:.4g}; time min {min(t_refs):.1f} s, "
          f"median {np.median(t_refs):.1f} s over {args.repeats} runs")
    print(f"tidesim ts.fit(method='auto'): {fit.settings['iterations']} generations + polish, final loss "
          f"{ours[-1][1]:.4g} (whole fit {ours[-1][0]:.1f} s in the last run)")
    print("fitted:", {k: f"{v:.4g}" for k, v in fit.best_params.items()})
    print("errors vs truth:", {k: f"{100 * (fit.best_params[k] / TRUE[k] - 1):+.1f}%" for k in TRUE})
    print(f"\ntime to reach the reference's final loss {ref_final:.4g}: Brian2 DE min {min(t_refs):.1f} s / "
          f"median {np.median(t_refs):.1f} s, tidesim min {min(t_ours):.1f} s / median {np.median(t_ours):.1f} s "
          f"-> tidesim takes {np.median(t_ours) / np.median(t_refs):.2f}x the reference's time (medians; "
          "floor: <= 0.5x)")
    for frac in (0.25, 0.5, 0.75):
        t_r = ref[min(len(ref) - 1, int(frac * len(ref)))]
        print(f"  reference at {t_r[0]:6.1f} s: loss {t_r[1]:.4g}; "
              f"tidesim reaches it at {time_to(ours, t_r[1]):6.1f} s")
    sim, loss_t = generation_split(model, rec, args.popsize)
    print(f"\none tidesim generation ({args.popsize} candidates x 3 sweeps), medians of 5: simulation "
          f"{sim * 1e3:.1f} ms, loss {loss_t * 1e3:.1f} ms = {100 * loss_t / (sim + loss_t):.0f}% of the two "
          "(floor: loss <= 30% of a generation)")


if __name__ == "__main__":
    main()
