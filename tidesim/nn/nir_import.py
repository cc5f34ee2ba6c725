"""Import NIR graphs as ``ts.nn`` networks (see :mod:`tidesim.nn.nir` for the mapping and its conventions)."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from typing import Any, Mapping

import nir
import numpy as np
import torch
from torch import nn

from tidesim.nn.lif import LIF, Readout
from tidesim.nn.neurons import Neurons
from tidesim.nn.nir_common import (
    _DEFAULT_DT,
    _GAIN_TOL,
    _NEURON_NODES,
    SNNTORCH_DT,
    NIRConversionError,
    NIRSemanticsWarning,
    Scale,
    _pair,
    _t,
    _value,
)
from tidesim.nn.sequence import Recurrent, Sequential

__all__ = ["import_nir"]


def import_nir(graph: nir.NIRGraph, dt: float | str | None = None, reset: str = "zero",
               lif_options: Mapping[str, Any] | None = None) -> Sequential:
    """The :class:`ts.nn.Sequential` of a sequential NIR graph (inverse of :func:`export_nir`).

    Parameters
    ----------
    graph
        One input, one output, nodes in a chain; recurrent cells (``lif <-> w_rec``, flat or as a
        ``NIRGraph`` node) are allowed, and sequential ``NIRGraph`` nodes are inlined.
    dt
        The step (s) at which to discretise NIR's continuous dynamics (forward Euler: ``beta = 1 - dt/tau``,
        input gain ``r dt/tau``). ``None``: the ``dt`` a tidesim export recorded in ``graph.metadata``; for a
        graph without one, 1e-3 s with a :class:`NIRSemanticsWarning`. ``"infer"``: the step at which every
        neuron node has unit input gain (``tau/r``, or ``1/r`` for ``IF``/``I``; 1e-4 s for snnTorch's
        exports), an error if they disagree.
    reset
        ``"zero"`` (NIR's reset to ``v_reset = 0``) or ``"subtract"``: the reset of ``LIF``/``IF`` nodes that
        do not record one in ``metadata["reset"]``. snnTorch's exporter writes every ``Leaky`` as a reset to 0
        whatever its ``reset_mechanism``; pass ``"subtract"`` for its default ``Leaky``.
    lif_options
        Extra keyword arguments for every :class:`~tidesim.nn.LIF` built (``surrogate``, ``learn_beta``,
        ``engine``, ...).

    Returns
    -------
    ts.nn.Sequential
        Stateless layers (``nn.Linear``, ``nn.Conv1d``/``nn.Conv2d``, ``nn.Flatten``, ``nn.AvgPool2d``,
        :class:`Scale`) and neuron layers (:class:`~tidesim.nn.LIF`, :class:`~tidesim.nn.Readout`,
        :class:`~tidesim.nn.Recurrent`), all with ``dt`` set to the step used.

    Raises
    ------
    NIRConversionError
        For a branching graph or a node without a ``ts.nn`` counterpart (named in the message).
    """
    if reset not in ("zero", "subtract"):
        raise ValueError(f"reset must be 'zero' or 'subtract'; got {reset!r}")
    nodes, edges = _flatten_graph(graph)
    step = _import_dt(graph, nodes, dt)
    feedback, edges = _take_feedback(nodes, edges)
    weights = {w for _, w in feedback}
    chain = _chain({k: v for k, v in nodes.items() if k not in weights}, edges)
    opts = dict(lif_options or {})
    layers: list[nn.Module] = []
    used: set[str] = set()
    k = 0
    while k < len(chain):
        name = chain[k]
        node = nodes[name]
        if isinstance(node, _NEURON_NODES):
            group = [name]
            if isinstance(node, (nir.LI, nir.I)) and k + 1 < len(chain) and isinstance(nodes[chain[k + 1]],
                                                                                     nir.Threshold):
                group.append(chain[k + 1])
            elif isinstance(node, (nir.LI, nir.I)) and k + 1 < len(chain):
                nxt = chain[k + 1]
                raise NIRConversionError(
                    f"node {name!r} ({type(node).__name__}) feeds node {nxt!r} ({type(nodes[nxt]).__name__}): "
                    "a leaky integrator passes its membrane on, which ts.nn.Readout does not (it must end the "
                    "graph)")
            rec = next(((w, target) for (source, w), target in feedback.items() if source == group[-1]), None)
            if rec is not None:
                if rec[1] != group[0]:
                    raise NIRConversionError(f"node {rec[0]!r}: a recurrent edge from {group[-1]!r} into "
                                             f"{rec[1]!r}, not into the start of the same neuron layer")
                used.add(rec[0])
            gain, layer = _neuron_layer([nodes[g] for g in group], group, step, reset, opts)
            if rec is not None:
                w = _import_stateless(nodes[rec[0]], rec[0])
                if not isinstance(w, nn.Linear) or w.in_features != w.out_features:
                    raise NIRConversionError(f"node {rec[0]!r}: a recurrent weight must be a square Affine/Linear")
                if isinstance(layer, Readout):
                    raise NIRConversionError(f"node {rec[0]!r}: recurrence around a leaky integrator (it feeds "
                                             "back its membrane, which ts.nn.Recurrent does not)")
                n = w.in_features
                cell = Recurrent(layer, n, bias=w.bias is not None)
                with torch.no_grad():
                    g = torch.as_tensor(np.broadcast_to(gain if gain is not None else 1.0, (n,)).copy(),
                                        dtype=w.weight.dtype)
                    cell.recurrent.weight.copy_(w.weight * g[:, None])
                    if w.bias is not None:
                        cell.recurrent.bias.copy_(w.bias * g)
                layer = cell
            if gain is not None:
                layers.append(Scale(gain))
            layers.append(layer)
            k += len(group)
            continue
        layers.append(_import_stateless(node, name))
        k += 1
    unused = [w for _, w in feedback if w not in used]
    if unused:
        raise NIRConversionError(f"node(s) {', '.join(map(repr, unused))}: recurrent weights that do not close a "
                                 "loop around one neuron layer (from its output back to its input)")
    if not any(isinstance(layer, (Neurons, Recurrent)) for layer in layers):
        raise NIRConversionError("import_nir: the graph has no neuron node (LIF, IF, LI, I or Threshold)")
    return Sequential(*layers)


def _import_dt(graph: nir.NIRGraph, nodes: Mapping[str, nir.NIRNode], dt: float | str | None) -> float:
    if isinstance(dt, str):
        if dt != "infer":
            raise ValueError(f"dt must be a step in seconds, None or 'infer'; got {dt!r}")
        steps = []
        for node in nodes.values():
            if isinstance(node, (nir.LIF, nir.LI)):
                steps.append(np.asarray(node.tau, float) / np.asarray(node.r, float))
            elif isinstance(node, (nir.IF, nir.I)):
                steps.append(1.0 / np.asarray(node.r, float))
        values = np.concatenate([np.ravel(s) for s in steps]) if steps else np.array([])
        values = values[np.isfinite(values)]
        if values.size == 0 or not np.allclose(values, values[0], rtol=1e-4, atol=0) or values[0] <= 0:
            raise ValueError("dt='infer': the neuron nodes do not share one unit-gain step (tau/r or 1/r); "
                             "pass dt=")
        return float(f"{values[0]:.6g}")
    if dt is not None:
        if not (float(dt) > 0 and math.isfinite(float(dt))):
            raise ValueError(f"dt must be a positive time step in seconds; got {dt!r}")
        return float(dt)
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    if "dt" in meta:
        return float(np.asarray(meta["dt"]))
    warnings.warn(f"the NIR graph records no time step; discretising at dt={_DEFAULT_DT} s. Pass dt= (snnTorch's "
                  f"exports assume {SNNTORCH_DT} s; dt='infer' reads it from the neuron nodes)",
                  NIRSemanticsWarning, stacklevel=3)
    return _DEFAULT_DT


def _flatten_graph(graph: nir.NIRGraph, prefix: str = "") -> tuple[dict[str, nir.NIRNode], list[tuple[str, str]]]:
    """Nodes and edges with every ``NIRGraph`` node inlined (its nodes renamed ``"outer.inner"``)."""
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, list[str]] = {}
    exit_: dict[str, list[str]] = {}
    for name, node in graph.nodes.items():
        full = prefix + name
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = _flatten_graph(node, full + ".")
            ins = [k for k, v in sub_nodes.items() if isinstance(v, nir.Input)]
            outs = [k for k, v in sub_nodes.items() if isinstance(v, nir.Output)]
            if len(ins) != 1 or len(outs) != 1:
                raise NIRConversionError(f"subgraph {full!r}: {len(ins)} inputs and {len(outs)} outputs; "
                                         "import_nir reads subgraphs with one of each")
            entry[full] = [b for a, b in sub_edges if a == ins[0]]
            exit_[full] = [a for a, b in sub_edges if b == outs[0]]
            nodes.update({k: v for k, v in sub_nodes.items() if k not in (ins[0], outs[0])})
            edges += [(a, b) for a, b in sub_edges if a != ins[0] and b != outs[0]]
        else:
            nodes[full] = node
    for a, b in graph.edges:
        a, b = prefix + a, prefix + b
        for src in exit_.get(a, [a]):
            for dst in entry.get(b, [b]):
                edges.append((src, dst))
    return nodes, edges


def _take_feedback(nodes: Mapping[str, nir.NIRNode], edges: list[tuple[str, str]]):
    """Recurrent weights (an Affine/Linear whose one input comes from a neuron node and whose one output
    goes back to a neuron node upstream of it) as ``{(source, weight): target}``, and the other edges."""
    succ, pred = _adjacency(edges)
    feedback: dict[tuple[str, str], str] = {}
    for name, node in nodes.items():
        if not isinstance(node, (nir.Affine, nir.Linear)) or len(succ[name]) != 1 or len(pred[name]) != 1:
            continue
        src, dst = pred[name][0], succ[name][0]
        if not isinstance(nodes.get(src), _NEURON_NODES) or not isinstance(nodes.get(dst), _NEURON_NODES):
            continue
        if _reaches(dst, src, succ, skip=name):  # a cycle back to where the loop started
            feedback[(src, name)] = dst
    drop = {w for _, w in feedback}
    return feedback, [(a, b) for a, b in edges if a not in drop and b not in drop]


def _reaches(a: str, b: str, succ: Mapping[str, list[str]], skip: str) -> bool:
    seen, todo = set(), [a]
    while todo:
        k = todo.pop()
        if k == b:
            return True
        if k in seen or k == skip:
            continue
        seen.add(k)
        todo += succ.get(k, [])
    return False


def _adjacency(edges: list[tuple[str, str]]):


    succ: dict[str, list[str]] = defaultdict(list)
    pred: dict[str, list[str]] = defaultdict(list)
    for a, b in dict.fromkeys(edges):  # duplicates once
        succ[a].append(b)
        pred[b].append(a)
    return succ, pred


def _chain(nodes: Mapping[str, nir.NIRNode], edges: list[tuple[str, str]]) -> list[str]:
    """The node names from input to output, without the Input and Output nodes."""
    succ, pred = _adjacency(edges)
    inputs = [k for k, v in nodes.items() if isinstance(v, nir.Input)] or [k for k in nodes if not pred[k]]
    if len(inputs) != 1:
        raise NIRConversionError(f"the graph has {len(inputs)} inputs ({', '.join(map(repr, inputs))}); "
                                 "import_nir reads sequential graphs with one input")
    order, k = [], inputs[0]
    while True:
        order.append(k)
        nxt = succ[k]
        if len(nxt) > 1:
            raise NIRConversionError(f"node {k!r} ({type(nodes[k]).__name__}) branches to "
                                     f"{', '.join(map(repr, nxt))}; import_nir reads sequential graphs only")
        if not nxt:
            break
        k = nxt[0]
        if len(pred[k]) > 1:
            raise NIRConversionError(f"node {k!r} ({type(nodes[k]).__name__}) merges the inputs "
                                     f"{', '.join(map(repr, pred[k]))}; import_nir reads sequential graphs only")
        if k in order:
            raise NIRConversionError(f"node {k!r} closes a cycle that is not a recurrent LIF cell")
    left = [k for k in nodes if k not in order]
    if left:
        raise NIRConversionError(f"nodes {', '.join(map(repr, left))} are not on the input-output path")
    return [k for k in order if not isinstance(nodes[k], (nir.Input, nir.Output))]


def _import_stateless(node: nir.NIRNode, name: str) -> nn.Module:
    where = f"node {name!r} ({type(node).__name__})"
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight)
        if w.ndim != 2:
            raise NIRConversionError(f"{where}: weight of shape {w.shape}; only 2-d weights import")
        layer = nn.Linear(w.shape[1], w.shape[0], bias=isinstance(node, nir.Affine))
        with torch.no_grad():
            layer.weight.copy_(_t(w))
            if isinstance(node, nir.Affine):
                layer.bias.copy_(_t(np.broadcast_to(node.bias, (w.shape[0],))))
        return layer
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        w = np.asarray(node.weight)
        two = isinstance(node, nir.Conv2d)
        conv = nn.Conv2d if two else nn.Conv1d
        def size(v: Any) -> Any:
            return _pair(v) if two else int(np.ravel(v)[0])

        pad = node.padding if isinstance(node.padding, str) else size(node.padding)
        layer = conv(w.shape[1] * int(node.groups), w.shape[0], kernel_size=tuple(w.shape[2:]),
                     stride=size(node.stride), padding=pad, dilation=size(node.dilation), groups=int(node.groups))
        with torch.no_grad():
            layer.weight.copy_(_t(w))
            layer.bias.copy_(_t(np.broadcast_to(node.bias, (w.shape[0],))))
        return layer
    if isinstance(node, nir.Flatten):
        start, end = int(node.start_dim), int(node.end_dim)
        return nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)
    if isinstance(node, nir.AvgPool2d):
        if any(_pair(node.padding)):
            raise NIRConversionError(f"{where}: padded average pooling (whether pads count) is not defined by NIR")
        return nn.AvgPool2d(kernel_size=_pair(node.kernel_size), stride=_pair(node.stride))
    if isinstance(node, nir.Scale):
        return Scale(node.scale)
    raise NIRConversionError(f"{where} has no ts.nn counterpart (importable: Affine, Linear, Conv1d, Conv2d, "
                             "Flatten, AvgPool2d, Scale, LIF, IF, LI, I, Threshold, recurrent LIF/IF cells)")


def _neuron_layer(group: list[nir.NIRNode], names: list[str], dt: float, default_reset: str,
                  opts: dict) -> tuple[np.ndarray | None, Neurons]:
    """The layer of one neuron node (or LI/I + Threshold) and its input gain (``None`` if 1)."""
    node, where = group[0], f"node {names[0]!r} ({type(group[0]).__name__})"
    if isinstance(node, nir.Threshold):  # a bare threshold: a LIF without memory or reset
        theta = np.asarray(node.threshold, float)
        return None, LIF(beta=0.0, threshold=_value(theta), reset="none", dt=dt, **opts)
    if isinstance(node, (nir.LIF, nir.LI)):
        tau, r = np.asarray(node.tau, float), np.asarray(node.r, float)
        if not np.allclose(node.v_leak, 0.0):
            raise NIRConversionError(f"{where}: v_leak != 0 has no ts.nn form (LIF layers leak to 0)")
        with np.errstate(divide="ignore", invalid="ignore"):
            beta = 1.0 - dt / tau
            gain = np.where(np.isinf(tau) & np.isinf(r), 1.0, r * dt / tau)
    else:  # IF, I: dv/dt = r I
        r = np.asarray(node.r, float)
        beta, gain = np.ones_like(r), r * dt
    beta, gain = np.broadcast_arrays(beta, gain)
    if np.any(beta < -1e-12) or not np.all(np.isfinite(gain)):
        raise NIRConversionError(
            f"{where}: at dt={dt} s forward Euler gives beta = 1 - dt/tau = {beta.min():.4g} (< 0) or an infinite "
            "gain; the step is too long for tau: pass the exporter's dt (snnTorch: 1e-4 s) or dt='infer'")
    beta = np.clip(beta, 0.0, 1.0)
    gain_or_none = None if np.allclose(gain, 1.0, rtol=0, atol=_GAIN_TOL) else gain
    if isinstance(node, (nir.LI, nir.I)):
        if len(group) == 1:
            return gain_or_none, Readout(beta=_value(beta), dt=dt)
        theta = np.broadcast_to(np.asarray(group[1].threshold, float), beta.shape)
        return gain_or_none, LIF(beta=_value(beta), threshold=_value(theta), reset="none", dt=dt, **opts)
    theta = np.broadcast_to(np.asarray(node.v_threshold, float), beta.shape)
    recorded = node.metadata.get("reset") if isinstance(node.metadata, dict) else None
    reset = str(recorded) if recorded is not None else default_reset
    if reset not in ("zero", "subtract"):
        raise NIRConversionError(f"{where}: metadata reset={reset!r} (expected 'zero' or 'subtract')")
    if reset == "zero" and not np.allclose(node.v_reset, 0.0):
        raise NIRConversionError(f"{where}: v_reset != 0 has no ts.nn form (LIF layers reset to 0 or subtract)")
    return gain_or_none, LIF(beta=_value(beta), threshold=_value(theta), reset=reset, dt=dt, **opts)
