"""Plasticity studies: pairing protocols and an exact, differentiable event engine for a synapse
between two spike trains.

A plasticity experiment drives one synapse with given pre- and post-synaptic spike times. Between
events nothing but exponential decay happens, so instead of stepping through time the engine
jumps from event to event, exactly as Brian2 does for ``(event-driven)`` variables: spike times are
binned to ``dt`` (Brian2's ``SpikeGeneratorGroup``), a pre-synaptic spike acts ``delay`` later,
and in one step the ``on_pre`` pathway runs before ``on_post``. Many protocols run at once (one per
synapse, batched), and the weight change is a torch function of the rule's parameters, so
:func:`pairing` can sit inside a loss that fits them (A±, τ±, triplet terms).

>>> rule = ts.models.plasticity.stdp_pair()
>>> dw = ts.plasticity.pairing(rule, delta_t=[-0.02, 0.01], frequency=1.0, n_pairs=60)
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from brian2.units.fundamentalunits import Quantity

from tidesim.core.equations import parse_statements
from tidesim.core.errors import ModelError
from tidesim.core.synapses import SynapseModel

__all__ = ["pairing_times", "run_pairs", "pairing"]


def pairing_times(delta_t: float, frequency: float, n_pairs: int,
                  start: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Spike times (s) of a pairing protocol: ``n_pairs`` pre spikes at ``frequency`` Hz from
    ``start`` s, each followed by a post spike ``delta_t`` s later (``delta_t < 0``: post first)."""
    if frequency <= 0 or n_pairs < 1:
        raise ValueError(f"a pairing protocol needs frequency > 0 Hz and n_pairs >= 1; got {frequency} Hz, "
                         f"{n_pairs} pairs")
    pre = start + max(0.0, -delta_t) + np.arange(n_pairs) / frequency
    return pre, pre + delta_t


def _plastic_part(synapse: SynapseModel) -> SynapseModel:
    """The synapse without its effects on neurons (transmission): only synaptic variables change."""
    def keep(code: str) -> str:
        lines = [ln.strip() for ln in code.replace(";", "\n").splitlines() if ln.strip()]
        kept = []
        for line, st in zip(lines, parse_statements("\n".join(lines), f"synapse {synapse.name!r}")):
            if st.target in synapse.variable_dims:
                kept.append(line)
        return "\n".join(kept)

    params = {k: v for k, v in synapse.parameters.items()}

    params = {k: (Quantity(v, dim=synapse.constant_dims.get(k, synapse.variable_dims.get(k)))
                  if isinstance(v, float) else v) for k, v in params.items()}
    return SynapseModel(synapse.model, on_pre=keep(synapse.on_pre), on_post=keep(synapse.on_post),
                        parameters=params, name=synapse.name)


def run_pairs(synapse: SynapseModel, pre_times: Sequence[Sequence[float]], post_times: Sequence[Sequence[float]],
              dt: float = 1e-4, initial: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None,
              delay: float = 0.0, dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """Run one synapse per protocol ``p`` between spike trains ``pre_times[p]`` and
    ``post_times[p]`` (s); returns the synaptic variables after the last event, each ``[P]``.

    ``initial``: starting values of synaptic variables (scalars or ``[P]``; default the model's
    parameters, else 0). ``params``: the rule's constants (SI floats or torch scalars/``[P]``
    tensors, which may require grad). Exactly Brian2's event-driven semantics (see the module).
    """
    if len(pre_times) != len(post_times):
        raise ValueError(f"{len(pre_times)} pre-synaptic trains but {len(post_times)} post-synaptic ones")
    if synapse.clock_driven:
        raise ModelError(f"synapse {synapse.name!r} has (clock-driven) equations; run_pairs handles rules "
                         "whose variables change only at events (use a ts.Network)")
    syn = _plastic_part(synapse)
    bound = syn.bind(None, None)
    n_p = len(pre_times)
    d_steps = int(round(delay / dt))
    events = []  # per protocol: (step, pathway order: 0 pre, 1 post)
    # a pathway exists (and advances the event-driven variables) only where the rule has statements
    has_pre, has_post = bool(synapse.on_pre.strip()), bool(synapse.on_post.strip())
    for pre, post in zip(pre_times, post_times):
        ev = [(int(round(t / dt)) + d_steps, 0) for t in np.atleast_1d(pre)] if has_pre else []
        ev += [(int(round(t / dt)), 1) for t in np.atleast_1d(post)] if has_post else []
        events.append(sorted(ev))
    n_e = max((len(e) for e in events), default=0)
    steps = np.zeros((n_p, n_e), dtype=np.int64)
    kinds = np.full((n_p, n_e), 2, dtype=np.int64)  # 2: padding, no event
    for p, ev in enumerate(events):
        if ev:
            steps[p, : len(ev)] = [s for s, _ in ev]
            kinds[p, : len(ev)] = [k for _, k in ev]
            steps[p, len(ev):] = ev[-1][0]
    times = torch.as_tensor(steps, dtype=dtype) * dt  # t = step * dt, as the network engine and Brian2
    kinds_t = torch.as_tensor(kinds)
    consts = dict(syn.parameters)
    consts = {k: v for k, v in consts.items() if k in syn.constant_dims}
    for key, value in (params or {}).items():
        if key not in syn.constant_dims:
            raise KeyError(f"synapse {synapse.name!r} has no constant {key!r}; its constants are "
                           f"{', '.join(syn.constant_dims)}")
        consts[key] = value if isinstance(value, torch.Tensor) else float(value)
    state: dict[str, torch.Tensor] = {}
    for var in syn.variables:
        value = (initial or {}).get(var, syn.parameters.get(var, 0.0))
        state[var] = torch.as_tensor(value, dtype=dtype).expand(n_p).clone() if not (
            isinstance(value, torch.Tensor) and value.requires_grad) else value.expand(n_p)
    state["lastupdate"] = torch.zeros(n_p, dtype=dtype)
    for e in range(n_e):
        t, kind = times[:, e], kinds_t[:, e]
        active = kind != 2
        t = torch.where(active, t, state["lastupdate"])  # padding: no time passes, nothing changes
        env = {**state, **consts, "t": t, "dt": torch.tensor(dt, dtype=dtype)}
        if syn.event_update is not None:
            out = syn.event_update.callable()(*(env[a] for a in syn.event_update.args))
            env.update(zip(syn.event_driven, out))
        after = {}
        for order, statements in ((0, bound.on_pre), (1, bound.on_post)):
            local = dict(env)
            for st in statements:
                value = st.callable()(*(local[a] for a in st.function.args))[0]
                old = local[st.target]
                local[st.target] = {"=": value, "+=": old + value, "-=": old - value, "*=": old * value,
                                    "/=": old / value}[st.op]
            after[order] = local
        for var in syn.variables:
            new = torch.where(kind == 0, torch.as_tensor(after[0][var], dtype=dtype),
                              torch.where(kind == 1, torch.as_tensor(after[1][var], dtype=dtype),
                                          torch.as_tensor(env[var], dtype=dtype)))
            state[var] = new.expand(n_p)
        state["lastupdate"] = t
    return state


def pairing(synapse: SynapseModel, delta_t: Any, frequency: Any = 1.0, n_pairs: int = 60, w0: float = 0.5,
            params: Mapping[str, Any] | None = None, dt: float = 1e-4, relative: bool = False,
            weight: str = "w") -> torch.Tensor:
    """Weight change after pairing protocols: one per entry of ``delta_t`` (s, post minus pre) and
    ``frequency`` (Hz), broadcast together; ``n_pairs`` pairings each, starting from ``w0``.

    Returns ``w_end - w0`` (``relative=True``: divided by ``w0``) as a ``[P]`` tensor,
    differentiable with respect to tensors in ``params``.
    """
    dts, freqs = np.broadcast_arrays(np.atleast_1d(np.asarray(delta_t, dtype=float)),
                                     np.atleast_1d(np.asarray(frequency, dtype=float)))
    pre, post = zip(*(pairing_times(float(d), float(f), n_pairs) for d, f in zip(dts, freqs)))
    out = run_pairs(synapse, pre, post, dt=dt, initial={weight: w0}, params=params)[weight]
    change = out - w0
    return change / w0 if relative else change
