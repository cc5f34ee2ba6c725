"""Export ``ts.nn`` networks to NIR (see :mod:`tidesim.nn.nir` for the mapping and its conventions)."""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import nir
import numpy as np
import torch
from torch import nn

from tidesim.core.errors import ShapeError
from tidesim.nn.lif import Readout
from tidesim.nn.neurons import Neurons
from tidesim.nn.nir_common import (
    _DEFAULT_DT,
    _LEAKY,
    SNNTORCH_DT,
    NIRConversionError,
    NIRSemanticsWarning,
    Scale,
    _np,
    _pair,
)
from tidesim.nn.sequence import Recurrent, Sequential
from tidesim.version import __version__

__all__ = ["export_nir"]


def export_nir(model: Sequential, input_shape: int | Sequence[int], dt: float | None = None,
               target: str | None = None) -> nir.NIRGraph:
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
        :data:`SNNTORCH_DT` for a graph that snnTorch's ``import_from_nir`` reads with the right dynamics
        (or use ``target="snntorch"``).
    target
        The library that will read the graph, when it reads NIR with conventions of its own:
        ``"snntorch"`` (``snntorch.import_nir.import_from_nir``, which steps at its fixed 1e-4 s and resets
        to zero) exports at :data:`SNNTORCH_DT` and refuses, naming the layer, what snnTorch would read
        differently: another ``dt``, a reset other than ``"zero"``, a recurrent layer (snnTorch's RLeaky
        reads it, with other spikes). ``None``: NIR as documented in the graph's metadata, read back
        exactly by :func:`tidesim.nn.nir.import_nir`.

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
    dt = _for_target(model, dt, target)
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


#: What each reading library is known to read as meant (checked by tests/nn/test_nir.py's matrix).
TARGETS = ("snntorch",)


def _for_target(model: Sequential, dt: float | None, target: str | None) -> float:
    """The export's dt, after refusing what ``target`` cannot read as tidesim means it."""
    if target is None:
        return _export_dt(model, dt)
    if target not in TARGETS:
        raise ValueError(f"target must be None or one of {', '.join(TARGETS)}; got {target!r}")
    if dt is not None and float(dt) != SNNTORCH_DT:
        raise NIRConversionError(f"target='snntorch': snnTorch's import_from_nir steps at {SNNTORCH_DT} s, so "
                                 f"dt={dt!r} would change the dynamics it reads; leave dt out")
    for i, layer in enumerate(model.layers):
        where = f"layer {i} ({type(layer).__name__})"
        if isinstance(layer, Recurrent):
            raise NIRConversionError(f"target='snntorch': {where}: snnTorch reads the recurrent subgraph as an "
                                     "RLeaky whose spikes differ from tidesim's; export without target for "
                                     "tidesim's own import_nir")
        reset = _LEAKY.get(getattr(getattr(layer, "model", None), "name", None))
        if isinstance(layer, Neurons) and not isinstance(layer, Readout) and reset not in (None, "zero"):
            raise NIRConversionError(f"target='snntorch': {where} resets by {reset!r}; snnTorch's "
                                     "import_from_nir always resets to zero (use reset='zero')")
    return SNNTORCH_DT


def _version() -> str:
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
