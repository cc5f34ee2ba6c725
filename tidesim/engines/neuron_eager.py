"""The eager neuron engine: torch steps one at a time, with autograd (any device, noise, any surrogate).

Each step is :mod:`tidesim.engines.schedule`'s. Memory control for long runs: ``tbptt=K`` detaches
the state every K steps (truncated BPTT); ``checkpoint=K`` recomputes K-step segments in the
backward pass instead of storing them.
"""

from __future__ import annotations

import torch
from brian2 import second

from tidesim.core.errors import NumericalInstabilityError
from tidesim.core.inputs import check_memory
from tidesim.core.result import SimulationResult
from tidesim.core.units import fmt
from tidesim.engines.requests import NeuronRun, neuron_result
from tidesim.engines.schedule import NeuronStepper, initial_state

__all__ = ["run_eager"]


class _SegmentCheckpoint(torch.autograd.Function):
    """Runs a segment without a graph; in backward, runs it again with one and differentiates.

    Like torch's reentrant checkpoint (nothing of the segment is kept), but it works with
    ``torch.autograd.grad`` as well as ``backward``. Everything to differentiate must be an input.
    """

    @staticmethod
    def forward(ctx, run, *inputs):
        ctx.run = run
        ctx.save_for_backward(*inputs)
        with torch.no_grad():
            outs = run(*inputs)
        ctx.mark_non_differentiable(*[o for o in outs if not o.is_floating_point()])
        return outs

    @staticmethod
    def backward(ctx, *grads):
        inputs = [x.detach().requires_grad_(x.requires_grad) for x in ctx.saved_tensors]
        with torch.enable_grad():
            outs = ctx.run(*inputs)
        pairs = [(o, g) for o, g in zip(outs, grads) if g is not None and o.requires_grad]
        wanted = [x for x in inputs if x.requires_grad]
        found = torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs], allow_unused=True) \
            if pairs and wanted else [None] * len(wanted)
        it = iter(found)
        return (None, *[next(it) if x.requires_grad else None for x in inputs])


def _locate_nonfinite(stepper: NeuronStepper, i0: int, i1: int, state: dict, gen_state) -> None:
    """Re-run a chunk without gradients, step by step, and raise at the first NaN/inf."""
    if gen_state is not None:
        stepper.generator.set_state(gen_state)
    model, dt = stepper.model, stepper.dt
    with torch.no_grad():
        state = {k: v.detach() for k, v in state.items()}
        for i in range(i0, i1):
            prev = state
            state, _, _ = stepper.step(i, state)
            for name in model.state_names:
                bad = ~torch.isfinite(state[name])
                if bool(bad.any()):
                    k = int(torch.nonzero(bad)[0, 0])
                    raise NumericalInstabilityError(
                        f"{model.name}: state variable '{name}' of neuron {k} became "
                        f"{float(state[name][k])} in the step from t = {fmt(i * dt, second.dim)} to "
                        f"{fmt((i + 1) * dt, second.dim)} (step {i}); it was "
                        f"{fmt(float(prev[name][k]), model.dims[name])} before. Try a smaller dt, "
                        "another integration method, or check that neuron's parameters.",
                        variable=name, neuron=k, step=i)
    raise NumericalInstabilityError(  # pragma: no cover - the re-run finds it
        f"{model.name}: a state became NaN or infinite between steps {i0} and {i1}")


def run_eager(run: NeuronRun) -> SimulationResult:
    """Run ``run.config.n_steps`` steps in torch; records ``[T, n]``, spikes ``[T, n]``, final state."""
    model, res, cfg, generator = run.model, run.inputs, run.config, run.generator
    check_memory(cfg.n, cfg.n_steps, len(cfg.record), cfg.dtype, cfg.device, model.name)
    state = initial_state(model, res, cfg.n, cfg.dt, cfg.dtype, cfg.device, run.initial)
    needs_grad = run.needs_grad or (torch.is_grad_enabled() and any(v.requires_grad for v in state.values()))
    stepper = NeuronStepper(model, res, cfg.n, cfg.dt, cfg.n_steps, cfg.dtype, cfg.device, cfg.surrogate,
                            cfg.record, cfg.detach_reset, generator, needs_grad)
    checkpointed = bool(cfg.checkpoint and needs_grad)
    seg = cfg.checkpoint if checkpointed else cfg.chunk
    spikes_parts: list[torch.Tensor] = []
    rec_parts: list[list[torch.Tensor]] = []
    keys = list(state)
    # Reentrant checkpointing keeps no graph at all inside a segment, so everything a segment
    # differentiates must be an explicit input: the states, the parameters and the inputs.
    pnames = [k for k, v in res.params.items() if isinstance(v, torch.Tensor) and v.requires_grad]
    snames = [k for k, v in res.stacked.items() if v.requires_grad]
    for i0 in range(0, cfg.n_steps, seg):
        i1 = min(i0 + seg, cfg.n_steps)
        start = state
        gen_state = generator.get_state() if model.stochastic else None
        if checkpointed:
            inputs = [state[k] for k in keys] + [res.params[k] for k in pnames] + \
                [res.stacked[k][i0:i1] for k in snames]
            out = _SegmentCheckpoint.apply(_segment(stepper, keys, pnames, snames, i0, i1, gen_state, cfg.tbptt),
                                           *inputs)
            state = dict(zip(keys, out[: len(keys)]))
            spikes, recs = out[len(keys)], list(out[len(keys) + 1:])
        else:
            state, spikes, recs = stepper.run(i0, i1, state, cfg.tbptt)
        if not all(bool(torch.isfinite(state[k]).all()) for k in model.state_names):
            _locate_nonfinite(stepper, i0, i1, start, gen_state)
        spikes_parts.append(spikes)
        rec_parts.append(recs)
        if run.progress is not None:
            run.progress(i1 - i0)
    spikes = torch.cat(spikes_parts) if spikes_parts else torch.zeros(0, cfg.n, dtype=cfg.dtype)
    records = {name: torch.cat([part[k] for part in rec_parts]) for k, name in enumerate(cfg.record)}
    return neuron_result(run, records, spikes, state)


def _segment(stepper: NeuronStepper, keys, pnames, snames, i0: int, i1: int, gen_state, tbptt):
    """Steps ``i0..i1`` as a function of explicit tensors (states, parameters, input slices)."""

    def segment(*flat):
        if gen_state is not None:  # same noise when the segment is recomputed in backward
            stepper.generator.set_state(gen_state)
        nk, npar = len(keys), len(pnames)
        stepper.base_env.update(zip(pnames, flat[nk:nk + npar]))
        for name, values in zip(snames, flat[nk + npar:]):
            stepper.series[name] = [None] * i0 + list(values.unbind(0))
        st, sp, rc = stepper.run(i0, i1, dict(zip(keys, flat[:nk])), tbptt)
        return (*[st[k] for k in keys], sp, *rc)

    return segment
