"""The description of a network: named populations and the projections between them.

A :class:`NetworkDescription` holds what a lab would draw (populations of neuron models, spike
sources, synapses with their connectivity, values and delays) and checks every value when it is
given, in the user's names and units. It runs nothing: the engines (``tidesim.engines``) run it,
and :class:`tidesim.Network` adds the ``run`` method that hands it to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from brian2 import Hz, second

from tidesim.core.errors import (
    ModelError,
    NetworkError,
    ShapeError,
    UnknownIdentifierError,
)
from tidesim.core.inputs import check_parameters, checked_tensor
from tidesim.core.synapses import BoundSynapse, SynapseModel
from tidesim.core.units import si_float, to_si

__all__ = ["NetworkDescription", "Population", "SpikeSource", "Projection", "NetworkError"]


@dataclass
class Population:
    """``n`` neurons of one model, with per-neuron parameters and initial values."""

    name: str
    model: Any
    n: int
    params: dict[str, Any] = field(default_factory=dict)
    initial: dict[str, Any] = field(default_factory=dict)


@dataclass
class SpikeSource:
    """``n`` spike-emitting units: given spike times (``indices``, ``times`` s) or Poisson ``rates`` (Hz)."""

    name: str
    n: int
    indices: np.ndarray | None = None
    times: np.ndarray | None = None
    rates: Any = None

    model = None

    def raster(self, n_steps: int, dt: float, dtype, generator: torch.Generator) -> torch.Tensor:
        out = torch.zeros(n_steps, self.n, dtype=dtype)
        if self.times is not None:
            steps = np.round(self.times / dt).astype(int)  # Brian2's SpikeGeneratorGroup time bins
            pairs = steps.astype(np.int64) * self.n + self.indices
            uniq, counts = np.unique(pairs, return_counts=True)
            if np.any(counts > 1):
                step, unit = divmod(int(uniq[np.argmax(counts > 1)]), self.n)
                raise NetworkError(f"spike source {self.name!r}: unit {unit} has more than one spike in the step "
                                   f"at t = {step * dt * 1e3:g} ms (dt = {dt * 1e3:g} ms); as in Brian2, at most "
                                   "one spike per unit and step")
            keep = steps < n_steps
            out[torch.from_numpy(steps[keep]), torch.from_numpy(self.indices[keep])] = 1.0
        if self.rates is not None:
            rates = torch.as_tensor(self.rates, dtype=dtype).expand(self.n)
            out = torch.maximum(out, (torch.rand(n_steps, self.n, generator=generator, dtype=dtype)
                                      < rates * dt).to(dtype))
        return out


@dataclass
class Projection:
    """Synapses from ``pre`` to ``post``: source ``i`` and target ``j`` per synapse, the synaptic
    variables per synapse, and each synapse's delay in whole steps."""

    name: str
    pre: str
    post: str
    synapse: SynapseModel
    i: torch.Tensor
    j: torch.Tensor
    values: dict[str, torch.Tensor]
    delay: Any  # seconds: a float or one per synapse
    bound: BoundSynapse | None = None
    constants: dict[str, Any] = field(default_factory=dict)  # the synapse's constants (SI; tensors may need grad)

    @property
    def n_synapses(self) -> int:
        return int(self.i.numel())


class NetworkDescription:
    """Populations of neuron models and projections between them.

    >>> net = ts.Network()
    >>> net.add_spike_source("inp", 10, indices=[0, 3], times=[5e-3, 8e-3])
    >>> net.add_population("exc", lif, 100)
    >>> net.connect("inp", "exc", ts.SynapseModel("w : volt", on_pre="v_post += w"),
    ...             connectivity=0.1, params={"w": 0.5e-3}, delay=1e-3, seed=0)
    >>> results = net.run(0.1)            # {"exc": SimulationResult, "inp": SimulationResult}
    """

    def __init__(self, name: str = "network"):
        self.name = name
        self.populations: dict[str, Population | SpikeSource] = {}
        self.projections: list[Projection] = []

    # ------------------------------------------------------------------ building
    def add_population(self, name: str, model, n: int, params: Mapping[str, Any] | None = None,
                       initial: Mapping[str, Any] | None = None) -> Population:
        """Add ``n`` neurons of ``model`` named ``name`` (per-neuron ``params``/``initial`` allowed)."""
        self._new_name(name)
        _check_model(model)
        n = _count(n, f"population {name!r}")
        where = f"population {name!r}"
        params = check_parameters(model, params, n, where)
        initial = dict(initial or {})
        model.check_initial(initial)
        pop = Population(name, model, n, params, initial)
        self.populations[name] = pop
        return pop

    def add_spike_source(self, name: str, n: int, indices: Sequence[int] | None = None,
                         times: Sequence[float] | None = None, rates: Any = None) -> SpikeSource:
        """Add ``n`` spike sources: spike ``times`` (s) of units ``indices`` (a spike generator), and/or
        Poisson ``rates`` (Hz, scalar or per unit)."""
        self._new_name(name)
        n = _count(n, f"spike source {name!r}")
        idx = tms = None
        if times is not None:
            tms = to_si(times, f"times' of spike source '{name}", second.dim)
            tms = np.asarray(tms.detach().cpu() if isinstance(tms, torch.Tensor) else tms, dtype=float).ravel()
            idx = np.asarray(indices if indices is not None else np.zeros(len(tms)), dtype=int)
            if idx.shape != tms.shape:
                raise ShapeError(f"spike source {name!r}: {len(idx)} indices but {len(tms)} times")
            if len(idx) and (idx.min() < 0 or idx.max() >= n):
                raise NetworkError(f"spike source {name!r} has {n} units; index {int(idx.max())} does not exist")
            if len(tms) and (tms.min() < 0 or not np.all(np.isfinite(tms))):
                raise NetworkError(f"spike source {name!r}: spike times must be finite and >= 0 s, got "
                                   f"{tms.min()}")
        if rates is not None:
            rates = to_si(rates, f"rates' of spike source '{name}", Hz.dim)
            r = rates.detach().cpu().numpy() if isinstance(rates, torch.Tensor) else np.asarray(rates, dtype=float)
            if r.ndim > 1 or (r.ndim == 1 and r.shape[0] not in (1, n)):
                raise ShapeError(f"rates of spike source {name!r} have shape {r.shape}; expected a scalar "
                                 f"or [{n}]")
            if np.any(r < 0) or not np.all(np.isfinite(r)):
                raise NetworkError(f"rates of spike source {name!r} must be finite and >= 0 Hz")
        src = SpikeSource(name, n, idx, tms, rates)
        self.populations[name] = src
        return src

    def connect(self, pre: str, post: str, synapse: SynapseModel, connectivity: Any = "all",
                params: Mapping[str, Any] | None = None, delay: Any = 0.0, seed: int | None = None,
                name: str | None = None) -> Projection:
        """Connect population ``pre`` to ``post`` through ``synapse``.

        ``connectivity``: ``"all"``, ``"one_to_one"``, a probability ``p`` (each pair independently,
        reproducible by ``seed``), ``(i, j)`` index arrays, or an ``[n_pre, n_post]`` weight matrix
        (its non-zero entries are the synapses, their values the first synaptic variable).
        ``params``: synaptic variables, scalars or one value per synapse (tensors may require grad).
        ``delay``: seconds, a scalar or one per synapse, a whole number of steps at run time.
        ``synapse`` may also be a kind from :mod:`tidesim.models.synapses` (its ``.synapse`` is used).
        """
        for role, pop in (("pre", pre), ("post", post)):
            if pop not in self.populations:
                raise NetworkError(f"{self.name} has no population {pop!r} to connect as {role}; it has "
                                   f"{', '.join(self.populations) or 'none'}")
        p_pre, p_post = self.populations[pre], self.populations[post]
        taken = set(self.populations) | {p.name for p in self.projections}
        if name is None:  # a second projection between the same populations gets a numbered name
            name, k = f"{pre}->{post}", 2
            while name in taken:
                name, k = f"{pre}->{post}#{k}", k + 1
        if name in taken:
            raise NetworkError(f"{self.name} already has a population or projection named {name!r}; give the "
                               "projection another name=")
        if isinstance(getattr(synapse, "synapse", None), SynapseModel):  # a zoo synapse kind: its synapse side
            synapse = synapse.synapse
        if not isinstance(synapse, SynapseModel):
            raise NetworkError(f"connect({pre!r}, {post!r}, ...) needs a ts.SynapseModel as synapse, got "
                               f"{type(synapse).__name__}")
        source_msg = (f"{post!r} is a spike source; synapses onto it cannot change or read post-synaptic "
                      "variables (they may only be plastic)")
        try:
            bound = synapse.bind(p_pre.model, p_post.model)
        except UnknownIdentifierError as exc:
            if isinstance(p_post, SpikeSource):
                raise NetworkError(f"{source_msg}: {exc}") from exc
            raise
        if isinstance(p_post, SpikeSource) and any(st.kind == "post" for st in bound.on_pre + bound.on_post):
            raise NetworkError(source_msg)
        i, j, matrix = self._pairs(connectivity, p_pre.n, p_post.n, pre, post, seed)
        given = dict(params or {})
        if matrix is not None:
            if not synapse.variables:
                raise NetworkError("a weight matrix needs a synaptic variable to hold it (e.g. model='w : volt')")
            first = synapse.variables[0]
            if first in given:
                raise NetworkError(f"{first!r} is given both by the weight matrix and in params")
            given[first] = matrix if matrix.ndim == 1 else matrix[i, j]  # 1-D: per-synapse (a Convolution)
        values, constants = _synaptic_values(synapse, given, int(i.numel()), name)
        delay = _delays(delay, int(i.numel()), name)
        proj = Projection(name, pre, post, synapse, i, j, values, delay, bound, constants)
        self.projections.append(proj)
        return proj

    def _new_name(self, name: str) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise NetworkError(f"population names must be identifiers, got {name!r}")
        if name in self.populations:
            raise NetworkError(f"{self.name} already has a population named {name!r}")

    @staticmethod
    def _pairs(conn, n_pre: int, n_post: int, pre: str, post: str, seed):
        if hasattr(conn, "synapses"):  # ts.connectivity.Convolution: (i, j, one weight per synapse)
            return conn.synapses(n_pre, n_post, pre, post)
        matrix = None
        if isinstance(conn, str):
            if conn == "all":
                ii, jj = np.meshgrid(np.arange(n_pre), np.arange(n_post), indexing="ij")
                i, j = ii.ravel(), jj.ravel()
            elif conn == "one_to_one":
                if n_pre != n_post:
                    raise NetworkError(f"one_to_one needs equal sizes; {pre} has {n_pre}, {post} has {n_post}")
                i = j = np.arange(n_pre)
            else:
                raise NetworkError(f"connectivity {conn!r} unknown; use 'all', 'one_to_one', a probability, "
                                   "(i, j) arrays or a weight matrix")
        elif isinstance(conn, (float, int)) and not isinstance(conn, bool):
            p = float(conn)
            if not 0 <= p <= 1:
                raise NetworkError(f"connection probability must be in [0, 1], got {p}")
            mask = np.random.default_rng(seed).random((n_pre, n_post)) < p
            i, j = np.nonzero(mask)
        elif isinstance(conn, tuple) and len(conn) == 2:
            i, j = (np.asarray(x, dtype=int).ravel() for x in conn)
            if i.shape != j.shape:
                raise ShapeError(f"connectivity (i, j) of {pre}->{post}: {len(i)} sources but {len(j)} targets")
            for arr, n, who in ((i, n_pre, pre), (j, n_post, post)):
                if len(arr) and (arr.min() < 0 or arr.max() >= n):
                    raise NetworkError(f"connectivity of {pre}->{post} names neuron {int(arr.max())} of {who}, "
                                       f"which has {n}")
        else:
            m = conn if isinstance(conn, torch.Tensor) else torch.as_tensor(
                np.asarray(to_si(conn, f"weight matrix of {pre}->{post}"), dtype=float))
            if m.ndim != 2 or tuple(m.shape) != (n_pre, n_post):
                raise ShapeError(f"the weight matrix of {pre}->{post} has shape {tuple(m.shape)}; expected "
                                 f"[n_pre, n_post] = [{n_pre}, {n_post}] ({pre} x {post})")
            i, j = np.nonzero(m.detach().cpu().numpy())
            matrix = m
        return torch.as_tensor(i, dtype=torch.long), torch.as_tensor(j, dtype=torch.long), matrix

    # ------------------------------------------------------------------ what engines ask
    def run_arguments(self, inputs, record) -> tuple[dict, dict, dict[str, list[str]]]:
        """``inputs`` and ``record`` of a run checked against the network's names (both engines use
        this): returns them as dicts, and the recorded synaptic variables per projection."""
        inputs, record = dict(inputs or {}), dict(record or {})
        projections = {p.name: p for p in self.projections}
        unknown = [k for k in inputs if k not in self.populations]
        if unknown:
            raise KeyError(f"inputs names population {', '.join(map(repr, unknown))}; {self.name} has "
                           f"{', '.join(self.populations)}")
        unknown = [k for k in record if k not in self.populations and k not in projections]
        if unknown:
            raise KeyError(f"record names {', '.join(map(repr, unknown))}; {self.name} has populations "
                           f"{', '.join(self.populations)} and projections {', '.join(projections) or 'none'}")
        syn_record = {}
        for name, names in record.items():
            if name not in projections:
                continue
            variables = projections[name].synapse.variables
            names = list(variables) if names is None else list(names)
            missing = [v for v in names if v not in variables]
            if missing:
                raise KeyError(f"projection {name} has no synaptic variable {', '.join(map(repr, missing))}; its "
                               f"variables are {', '.join(variables) or 'none'}")
            syn_record[name] = names
        return inputs, record, syn_record

    def delay_steps(self, proj: Projection, dt: float) -> torch.Tensor:
        """Each synapse's delay in whole steps (an error if a delay is not a multiple of ``dt``)."""
        d = np.asarray(proj.delay, dtype=float) / dt
        steps = np.round(d)
        if np.any(np.abs(d - steps) > 1e-6):
            bad = float(np.atleast_1d(proj.delay)[np.argmax(np.abs(np.atleast_1d(d - steps)))])
            raise NetworkError(f"delay {bad * 1e3:g} ms of {proj.name} is not a whole number of steps of "
                               f"dt = {dt * 1e3:g} ms")
        return torch.as_tensor(np.broadcast_to(steps, (proj.n_synapses,)).astype(np.int64))


def _check_model(model) -> None:
    if not hasattr(model, "state_names"):
        raise ModelError(f"a population needs a NeuronModel, got {type(model).__name__}")


def _count(n: Any, where: str) -> int:
    """A number of neurons or units: a positive whole number (2.5 is refused, not truncated)."""
    if isinstance(n, bool) or not float(n).is_integer() or int(n) < 1:
        raise NetworkError(f"{where} needs a positive whole number of neurons, got n={n!r}")
    return int(n)


def _synaptic_values(synapse: SynapseModel, given: dict[str, Any], n_syn: int, proj: str
                     ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Per-synapse variables ``[n_syn]`` and scalar constants of a projection, units checked against
    the synapse's declarations (``where`` names the projection)."""
    unknown = [k for k in given if k not in synapse.variables and k not in synapse.constant_dims]
    if unknown:
        raise UnknownIdentifierError(f"synapse {synapse.name!r} has no variable or constant "
                                     f"{', '.join(map(repr, unknown))}; its variables are "
                                     f"{', '.join(synapse.variables) or 'none'}, its constants "
                                     f"{', '.join(synapse.constant_dims) or 'none'}")
    constants = {c: synapse.parameters[c] for c in synapse.constant_dims}
    for c in [k for k in given if k in synapse.constant_dims]:
        value = to_si(given[c], f"{c}' of '{proj}", synapse.constant_dims[c])
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ShapeError(f"constant {c!r} of {proj} must be a scalar, got shape {tuple(value.shape)}")
            constants[c] = value.reshape(())
        else:
            constants[c] = si_float(value, f"{c}' of '{proj}")
    values = {}
    for var in synapse.variables:
        value = to_si(given.get(var, synapse.parameters.get(var, 0.0)), f"{var}' of '{proj}",
                      synapse.variable_dims[var])
        keep = value if isinstance(value, torch.Tensor) else None
        t = checked_tensor(value, f"synaptic variable {var!r} of {proj}",
                           keep.dtype if keep is not None else torch.float64,
                           keep.device if keep is not None else torch.device("cpu"))
        if t.ndim == 0:
            t = t.expand(n_syn)
        if t.shape != (n_syn,):
            raise ShapeError(f"synaptic variable {var!r} of {proj} has shape {tuple(t.shape)}; "
                             f"expected a scalar or [{n_syn}] (one per synapse)")
        values[var] = t
    return values, constants


def _delays(delay: Any, n_syn: int, proj: str) -> Any:
    """Delays in seconds: a scalar or one per synapse, finite and >= 0."""
    if isinstance(delay, torch.Tensor):
        delay = delay.detach().cpu().numpy()
    delay = to_si(delay, f"delay' of '{proj}", second.dim)
    d = np.asarray(delay, dtype=float)
    if d.ndim not in (0, 1) or (d.ndim == 1 and d.shape[0] != n_syn):
        raise ShapeError(f"delay of {proj} has shape {d.shape}; expected a scalar or [{n_syn}]")
    if np.any(d < 0) or not np.all(np.isfinite(d)):
        raise NetworkError(f"delays of {proj} must be finite and >= 0 s; got min {d.min()} s")
    return float(d) if d.ndim == 0 else d
