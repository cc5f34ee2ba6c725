"""Export ``ts.nn`` networks to the Neuromorphic Intermediate Representation (NIR) and import NIR graphs,
including those written by snnTorch's ``export_to_nir``.

NIR describes neurons as continuous-time dynamical systems and has no time step; tidesim's ``ts.nn``
layers are discrete maps. The two are tied by **forward Euler at a step** ``dt`` **(s)**, the convention
snnTorch's exporter also follows. Every exported graph records that ``dt`` in its metadata, and
:func:`import_nir` reads it back, so a round trip is exact.

Mapping (``beta``: decay per step, ``theta``: threshold, ``x[t]``: the layer input at step ``t``)

=====================================  ==================================================================
``ts.nn`` layer                        NIR
=====================================  ==================================================================
``nn.Linear`` (with / without bias)    ``Affine`` / ``Linear``
``nn.Conv1d``, ``nn.Conv2d``           ``Conv1d``, ``Conv2d`` (zero padding mode; a missing bias is a zero bias)
``nn.Flatten``                         ``Flatten`` (dimensions counted without the batch dimension)
``nn.AvgPool2d`` (no padding)          ``AvgPool2d``
:class:`Scale`                         ``Scale``
``nn.Identity``, ``nn.Dropout``        nothing (identity at inference)
``LIF``, ``beta < 1``                  ``LIF(tau=dt/(1-beta), r=tau/dt, v_leak=0, v_threshold=theta, v_reset=0)``
``LIF``, ``beta = 1``                  ``IF(r=1/dt, v_threshold=theta, v_reset=0)``
``LIF(reset="none")``                  ``LI(tau, r, v_leak=0)`` then ``Threshold(theta)`` (``I`` for ``beta = 1``)
``Readout`` (last layer only)          ``LI(tau=dt/(1-beta), r=tau/dt, v_leak=0)`` (``I(r=1/dt)`` for ``beta = 1``)
``Recurrent(LIF, n)``                  a ``NIRGraph`` node: ``input -> lif -> output``, ``lif -> w_rec -> lif``
=====================================  ==================================================================

Why these numbers: Euler at step ``dt`` of ``tau dv/dt = (v_leak - v) + r I`` is
``v[t] = (1 - dt/tau) v[t-1] + (dt/tau) (v_leak + r I[t])``; with ``tau = dt/(1-beta)``, ``r = tau/dt`` and
``v_leak = 0`` this is ``v[t] = beta v[t-1] + I[t]``, the ``LIF`` map with the input gain ``r dt/tau = 1``.
For ``IF`` (``dv/dt = r I``) the same holds with ``r = 1/dt`` (``r`` in 1/s, not a per-step gain). On import
a node whose gain ``r dt/tau`` (``r dt`` for ``IF``/``I``) is not 1 becomes a :class:`Scale` layer in front
of the neuron layer, so membranes keep NIR's scale.

Resets. NIR's ``LIF``/``IF`` reset **to** ``v_reset`` when ``v > v_threshold``; in continuous time that is
the only reset there is, so NIR has no subtractive reset. tidesim's ``reset="zero"`` is exactly NIR's reset
to ``v_reset = 0`` (the reset takes effect before the next step's update; the membrane a layer reports is
the value the threshold saw, before the reset). tidesim's ``reset="subtract"``
(``v[t] = beta v[t-1] + x[t] - theta z[t-1]``) has no NIR form: it is exported as ``v_reset = 0`` with
``metadata["reset"] = "subtract"`` on the node, which :func:`import_nir` honours and other NIR consumers
ignore (they will reset to 0; :class:`NIRSemanticsWarning` says so at export). ``reset="none"`` is exact as
``LI`` followed by ``Threshold``.

snnTorch (``snntorch.export_to_nir``, checked with snnTorch 1.0) writes every ``Leaky`` as
``LIF(tau=1e-4/(1-beta), r=tau/1e-4, v_leak=0, v_reset=0)``: its ``dt`` is a fixed 1e-4 s that the graph does
not record, and its reset mechanism is dropped (its default, ``"subtract"``, is written as a reset to 0).
Import such graphs with ``dt=1e-4`` (or ``dt="infer"``) and, for ``Leaky`` layers that subtracted,
``reset="subtract"``. Its recurrent ``RLeaky`` appears as a two-node cycle (``lif <-> w_rec``), which imports
as :class:`~tidesim.nn.Recurrent`. The recurrent edge carries the previous step's spikes
(``x[t] + W s[t-1]``, as ``RLeaky``). The other way, snnTorch's ``import_from_nir`` reads our feed-forward
``LIF`` graphs exported at ``dt=SNNTORCH_DT`` with the same spikes for ``reset="zero"`` (it always resets to
zero); it rejects our ``IF`` nodes (it requires ``r == 1``) and does not step our recurrent subgraph as
``RLeaky`` (checked with snnTorch 1.0 and nirtorch 2.6).

Not expressible in NIR (export raises :class:`NIRConversionError` naming the layer): ``Neurons`` layers of
other models (AdEx, Izhikevich, HH, ...), plasticity, refractoriness, noise, and a ``Readout`` that is not the
last layer. Training-only settings (surrogate, ``learn_*``, ``detach_reset``) are not part of NIR: give
them again on import through ``lif_options``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import nir
import numpy as np
import torch
from torch import nn

from .errors import ShapeError, TidesimError
from .nn.lif import LIF, Readout
from .nn.neurons import Neurons
from .nn.sequence import Recurrent, Sequential

__all__ = ["export_nir", "import_nir", "Scale", "NIRConversionError", "NIRSemanticsWarning", "SNNTORCH_DT"]

#: The time step (s) snnTorch's ``export_to_nir`` assumes for every ``Leaky`` (not recorded in its graphs).
SNNTORCH_DT = 1e-4

_DEFAULT_DT = 1e-3
_GAIN_TOL = 1e-5  # exporters write float32: gains within this of 1 are 1
_LEAKY = {"leaky_subtract": "subtract", "leaky_zero": "zero", "leaky_none": "none"}
_NEURON_NODES = (nir.LIF, nir.IF, nir.LI, nir.I, nir.Threshold)


class NIRConversionError(TidesimError, NotImplementedError):
    """A layer or node has no counterpart on the other side (the message names it)."""


class NIRSemanticsWarning(UserWarning):
    """A conversion is exact for tidesim but relies on something other NIR consumers may not read."""


class Scale(nn.Module):
    """Elementwise gain ``y = x * scale`` (NIR's ``Scale``): ``scale`` has the shape of one sample
    (without time and batch dimensions) or broadcasts to it; dimensionless."""

    def __init__(self, scale: Any):
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale), dtype=torch.get_default_dtype()).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x * scale`` (dimensionless gain), in ``x``'s dtype."""
        return x * self.scale.to(x.dtype)

    def extra_repr(self) -> str:
        return f"shape={tuple(self.scale.shape)}"


# ====================================================================== export
def export_nir(model: Sequential, input_shape: int | Sequence[int], dt: float | None = None) -> nir.NIRGraph:
    """The NIR graph of ``model``.

    Parameters
    ----------
    model
        A :class:`ts.nn.Sequential` of the layers in the module docstring's table.
    input_shape
        Shape of one input sample at one step, without time and batch dimensions (e.g. ``784`` or
        ``(1, 28, 28)``).
    dt
        The time step (s) that relates the discrete layers to NIR's continuous-time neurons (``tau =
        dt/(1-beta)``). Default: the neuron layers' own ``dt`` (they must agree). Pass
        :data:`SNNTORCH_DT` for a graph that snnTorch's ``import_from_nir`` reads with the right dynamics.

    Returns
    -------
    nir.NIRGraph
        Nodes named by layer index (``"0"``, ``"1"``, ...; ``"3.threshold"`` for the second node of a
        layer), ``"input"`` and ``"output"``; ``metadata`` records ``dt`` (s), the discretisation and the
        exporter, and each neuron node's ``metadata`` its ``reset`` and ``dt``.

    Raises
    ------
    NIRConversionError
        For a layer NIR cannot express (named by index and type).
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"export_nir takes a ts.nn.Sequential; got {type(model).__name__}")
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (input_shape,)
    shape = tuple(int(s) for s in input_shape)
    dt = _export_dt(model, dt)
    layers = list(model.layers)
    last_neuron = max((i for i, layer in enumerate(layers) if isinstance(layer, (Neurons, Recurrent))), default=-1)
    if last_neuron < 0:
        raise NIRConversionError("export_nir: the Sequential has no neuron layer")
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type=np.array(shape))}
    chain = ["input"]
    subtracting: list[str] = []
    x = torch.zeros((1, *shape))
    for i, layer in enumerate(layers):
        where = f"layer {i} ({type(layer).__name__})"
        if isinstance(layer, (nn.Identity, nn.Dropout)):
            continue
        if isinstance(layer, (Neurons, Recurrent)):
            if isinstance(layer, Readout) or (isinstance(layer, Neurons) and layer.model.name == "leaky_readout"):
                if any(not isinstance(rest, (nn.Identity, nn.Dropout)) for rest in layers[i + 1:]):
                    raise NIRConversionError(
                        f"{where}: a Readout must be the last layer to export: in ts.nn.Sequential it passes no "
                        "signal on (its spikes are zero), while NIR's LI passes its membrane to the next node")
            new = _export_neuron_layer(layer, tuple(x.shape[1:]), dt, str(i), where)
            inner = layer.layer if isinstance(layer, Recurrent) else layer
            if getattr(getattr(inner, "model", None), "name", None) == "leaky_subtract":
                subtracting.append(where)
        else:
            new = [(str(i), _export_stateless(layer, tuple(x.shape[1:]), where))]
            try:
                with torch.no_grad():
                    x = layer(x)
            except RuntimeError as err:
                raise ShapeError(f"{where} does not take samples of shape {tuple(x.shape[1:])} "
                                 f"(input_shape={shape}): {err}") from None
        for name, node in new:
            nodes[name] = node
            chain.append(name)
        if i == last_neuron:
            for later, rest in enumerate(layers[i + 1:], start=i + 1):
                if not isinstance(rest, (nn.Identity, nn.Dropout)):
                    raise NIRConversionError(
                        f"layer {later} ({type(rest).__name__}) follows the last neuron layer; ts.nn.Sequential "
                        "returns the last neuron layer's output, so it would not be part of the network")
            break
    nodes["output"] = nir.Output(output_type=np.array(tuple(x.shape[1:])))
    chain.append("output")
    if subtracting:
        warnings.warn(
            f"{', '.join(subtracting)}: NIR has no subtractive reset; exported as LIF/IF with v_reset=0 and "
            "metadata['reset']='subtract', which ts.nir_io.import_nir honours and other NIR consumers (snnTorch's "
            "import_from_nir too) ignore: they reset to 0", NIRSemanticsWarning, stacklevel=2)
    metadata = {
        "exporter": "tidesim",
        "tidesim_version": _version(),
        "dt": float(dt),
        "time_unit": "s",
        "discretisation": "forward Euler at step dt: tau = dt/(1-beta), r = tau/dt, v_leak = 0 "
                          "(LIF/LI: v[t] = beta*v[t-1] + x[t]); IF/I: r = 1/dt (beta = 1)",
        "reset": "LIF/IF reset to v_reset (tidesim reset='zero') unless the node's metadata['reset'] is "
                 "'subtract' (v[t] = beta*v[t-1] + x[t] - theta*z[t-1]); reset='none' is LI + Threshold",
        "recurrence": "a recurrent edge carries the previous step's spikes (x[t] + W s[t-1])",
    }
    return nir.NIRGraph(nodes=nodes, edges=list(zip(chain[:-1], chain[1:])), metadata=metadata)


def _version() -> str:
    from . import __version__

    return str(__version__)


def _export_dt(model: Sequential, dt: float | None) -> float:
    if dt is not None:
        if not (float(dt) > 0 and math.isfinite(float(dt))):
            raise ValueError(f"dt must be a positive time step in seconds; got {dt!r}")
        return float(dt)
    dts = set()
    for layer in model.layers:
        inner = layer.layer if isinstance(layer, Recurrent) else layer
        if isinstance(inner, Neurons):
            dts.add(float(inner.dt))
    if len(dts) > 1:
        raise ValueError(f"the neuron layers have different dt ({', '.join(map(str, sorted(dts)))} s); pass dt=")
    return dts.pop() if dts else _DEFAULT_DT


def _export_stateless(layer: nn.Module, shape: tuple[int, ...], where: str) -> nir.NIRNode:
    """The NIR node of a stateless layer receiving samples of ``shape``."""
    if isinstance(layer, nn.Linear):
        w = _np(layer.weight)
        return nir.Linear(weight=w) if layer.bias is None else nir.Affine(weight=w, bias=_np(layer.bias))
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        if layer.padding_mode != "zeros":
            raise NIRConversionError(f"{where}: padding_mode={layer.padding_mode!r}; NIR convolutions pad "
                                     "with zeros")
        weight = _np(layer.weight)
        bias = _np(layer.bias) if layer.bias is not None else np.zeros(layer.out_channels, dtype=weight.dtype)
        common = dict(weight=weight, groups=int(layer.groups), bias=bias)
        if isinstance(layer, nn.Conv1d):
            return nir.Conv1d(input_shape=int(shape[-1]), stride=int(layer.stride[0]),
                              dilation=int(layer.dilation[0]),
                              padding=layer.padding if isinstance(layer.padding, str) else int(layer.padding[0]),
                              **common)
        return nir.Conv2d(input_shape=tuple(shape[-2:]), stride=tuple(layer.stride),
                          dilation=tuple(layer.dilation),
                          padding=layer.padding if isinstance(layer.padding, str) else tuple(layer.padding),
                          **common)
    if isinstance(layer, nn.Flatten):
        nd = len(shape) + 1  # with the batch dimension
        start, end = layer.start_dim % nd, layer.end_dim % nd
        if start == 0:
            raise NIRConversionError(f"{where}: Flatten over the batch dimension (start_dim=0) has no NIR form")
        return nir.Flatten(input_type={"input": np.array(shape)}, start_dim=start - 1, end_dim=end - 1)
    if isinstance(layer, nn.AvgPool2d):
        pad = _pair(layer.padding)
        if any(pad) or layer.ceil_mode or layer.divisor_override is not None:
            raise NIRConversionError(f"{where}: only AvgPool2d without padding, ceil_mode or divisor_override "
                                     "exports")
        stride = _pair(layer.stride if layer.stride is not None else layer.kernel_size)
        return nir.AvgPool2d(kernel_size=np.array(_pair(layer.kernel_size)), stride=np.array(stride),
                             padding=np.array(pad))
    if isinstance(layer, Scale):
        return nir.Scale(scale=np.broadcast_to(_np(layer.scale), shape).copy())
    raise NIRConversionError(f"{where} has no NIR primitive (exportable: Linear, Conv1d, Conv2d, Flatten, "
                             "AvgPool2d, Scale, Identity, Dropout, LIF, Readout, Recurrent)")


def _export_neuron_layer(layer: nn.Module, shape: tuple[int, ...], dt: float, name: str,
                         where: str) -> list[tuple[str, nir.NIRNode]]:
    if isinstance(layer, Recurrent):
        return [(name, _export_recurrent(layer, shape, dt, where))]
    assert isinstance(layer, Neurons)
    model_name = layer.model.name
    if model_name == "leaky_readout":
        beta = _layer_param(layer, "beta", shape)
        return [(name, _leaky_node(beta, dt, where, {"tidesim_layer": "Readout", "dt": dt}, spiking=False))]
    if model_name not in _LEAKY or layer.input != "x":
        raise NIRConversionError(
            f"{where}: {model_name} cannot be expressed in NIR: its neuron primitives are LIF, IF, LI, I and "
            "CubaLIF (leaky/integrate-and-fire with linear subthreshold dynamics); use ts.nn.LIF or ts.nn.Readout")
    reset = _LEAKY[model_name]
    beta, theta = _layer_param(layer, "beta", shape), _layer_param(layer, "theta", shape)
    meta = {"tidesim_layer": "LIF", "reset": reset, "dt": dt}
    if reset == "none":
        return [(name, _leaky_node(beta, dt, where, meta, spiking=False)),
                (f"{name}.threshold", nir.Threshold(threshold=theta, metadata={"tidesim_layer": "LIF"}))]
    return [(name, _leaky_node(beta, dt, where, meta, spiking=True, theta=theta))]


def _leaky_node(beta: np.ndarray, dt: float, where: str, meta: dict, spiking: bool,
                theta: np.ndarray | None = None) -> nir.NIRNode:
    """LIF/IF (spiking) or LI/I for decays ``beta`` at step ``dt`` (s)."""
    if np.any(beta < 0) or np.any(beta > 1):
        raise NIRConversionError(f"{where}: beta must lie in [0, 1]; got {beta.min()}..{beta.max()}")
    ones = beta == 1
    if ones.any() and not ones.all():
        raise NIRConversionError(f"{where}: some neurons have beta = 1 (IF) and others beta < 1 (LIF); one NIR "
                                 "node holds one of the two")
    if ones.all():
        r = np.full_like(beta, 1.0 / dt)
        if spiking:
            return nir.IF(r=r, v_threshold=theta, v_reset=np.zeros_like(theta), metadata=meta)
        return nir.I(r=r, metadata=meta)
    tau = dt / (1.0 - beta)
    r = tau / dt
    if spiking:
        return nir.LIF(tau=tau, r=r, v_leak=np.zeros_like(beta), v_threshold=theta, v_reset=np.zeros_like(theta),
                       metadata=meta)
    return nir.LI(tau=tau, r=r, v_leak=np.zeros_like(beta), metadata=meta)


def _export_recurrent(layer: Recurrent, shape: tuple[int, ...], dt: float, where: str) -> nir.NIRGraph:
    if shape != (layer.n,):
        raise NIRConversionError(f"{where}: input shape {shape} is not the recurrent layer's ({layer.n},)")
    inner = layer.layer
    if not isinstance(inner, Neurons) or inner.model.name not in _LEAKY:
        raise NIRConversionError(f"{where}: only a recurrent LIF exports (got {type(inner).__name__})")
    cell = _export_neuron_layer(inner, shape, dt, "lif", where)
    w = _export_stateless(layer.recurrent, shape, where)
    nodes = {"input": nir.Input(input_type=np.array(shape)), **dict(cell), "w_rec": w,
             "output": nir.Output(output_type=np.array(shape))}
    first, last = cell[0][0], cell[-1][0]
    edges = [("input", first), *[(a, b) for (a, _), (b, _) in zip(cell[:-1], cell[1:])], (last, "w_rec"),
             ("w_rec", first), (last, "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"tidesim_layer": "Recurrent"})


def _layer_param(layer: Neurons, name: str, shape: tuple[int, ...]) -> np.ndarray:
    value = layer._param(name, torch.float64).detach().cpu().numpy()
    try:
        return np.broadcast_to(value, shape).astype(np.float64).copy()
    except ValueError:
        raise NIRConversionError(f"{name} of shape {value.shape} does not broadcast to the layer's "
                                 f"{shape}") from None


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    v = tuple(int(a) for a in np.ravel(v))
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


# ====================================================================== import
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
    from collections import defaultdict

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


def _value(a: np.ndarray) -> float | torch.Tensor:
    """A scalar if all entries are equal, else a tensor of the neuron shape."""
    a = np.asarray(a, dtype=np.float64)
    if a.size and np.all(a == a.flat[0]):
        return float(a.flat[0])
    return _t(a)


def _t(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.array(a, dtype=np.float64), dtype=torch.get_default_dtype())
