"""Losses, regularisers and accuracies for spiking outputs, time first: ``[T, batch, n]``.

Counterparts of snnTorch's ``snntorch.functional`` (``ce_count_loss``, ``mse_count_loss``,
``ce_max_membrane_loss``, ``mse_membrane_loss``, the temporal losses, ``l1_rate_sparsity``,
``accuracy_rate``) as plain functions. They give the same values and gradients where the semantics
coincide (the tests check this), with these fixes:

* every input is checked: shape ``[T, batch, n]``, 0/1 spikes where a loss counts spikes (a
  surrogate's output, 0/1 floats carrying a gradient, passes), class labels in range, matching
  time axes; each failure names the function and the shapes;
* ``population=k`` groups ``k`` neighbouring outputs per class and works for every count loss
  (snnTorch's ``ce_rate_loss`` population code did not, snnTorch PR #378);
* ``mse_count`` targets ``T * rate`` exactly (snnTorch truncates ``int(T * rate)``);
* ``mse_membrane`` with class labels defaults to on 1 / off 0 (snnTorch issue #253);
* the first-spike time is differentiable with respect to every step up to the first spike, and a
  silent neuron's time is ``T`` (not ``T - 1``, which snnTorch also gives a spike at the last step).

Reductions follow torch: ``"mean"`` (default), ``"sum"`` or ``"none"``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tidesim.core.errors import ShapeError, TidesimError

__all__ = ["LossInputError", "ce_count", "ce_rate", "mse_count", "ce_max_membrane", "mse_membrane",
           "first_spike_time", "ce_first_spike", "mse_first_spike", "l1_rate", "l2_rate", "rate_bounds",
           "accuracy_count", "accuracy_max_membrane", "accuracy_first_spike"]

_REDUCTIONS = ("mean", "sum", "none")


class LossInputError(TidesimError, ValueError):
    """A loss got values outside its domain (non-binary spikes, labels out of range, bad option)."""


# ---------------------------------------------------------------------------------------------- checks

def _series(x, name: str, fn: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor [T, batch, n], got {type(x).__name__}")
    if x.dim() != 3:
        raise ShapeError(f"{fn}: {name} must be [T, batch, n] (time first), got shape {tuple(x.shape)}")
    if x.shape[0] < 1:
        raise ShapeError(f"{fn}: {name} has no time steps (shape {tuple(x.shape)})")
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def _spikes(x, fn: str) -> torch.Tensor:
    x = _series(x, "spikes", fn)
    with torch.no_grad():
        bad = (x != 0) & (x != 1)  # a surrogate's spikes are exact 0/1 values, so they pass
        if bad.any():
            idx = tuple(torch.nonzero(bad)[0].tolist())
            raise LossInputError(f"non-binary spikes given to {fn}: spikes[{idx}] = {float(x[idx]):g}; pass 0/1 "
                                 f"spikes (a surrogate's output is fine), or use a membrane loss for analog "
                                 f"outputs")
    return x


def _labels(targets, batch: int, n_classes: int, fn: str) -> torch.Tensor:
    t = torch.as_tensor(targets)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise LossInputError(f"{fn}: targets must be integer class labels [batch], got dtype {t.dtype}")
    if t.shape != (batch,):
        raise ShapeError(f"{fn}: targets must be class labels of shape [batch] = [{batch}], got shape "
                         f"{tuple(t.shape)}")
    if batch and (int(t.min()) < 0 or int(t.max()) >= n_classes):
        raise LossInputError(f"{fn}: class labels must lie in [0, {n_classes - 1}], got "
                             f"[{int(t.min())}, {int(t.max())}]")
    return t.long()


def _reduction(reduction: str, fn: str) -> str:
    if reduction not in _REDUCTIONS:
        raise LossInputError(f"{fn}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _reduce(x: torch.Tensor, reduction: str) -> torch.Tensor:
    return x.mean() if reduction == "mean" else x.sum() if reduction == "sum" else x


def _group(x: torch.Tensor, population: int, fn: str) -> torch.Tensor:
    """Sum each block of ``population`` neighbouring outputs on the last axis: ``[..., n] -> [..., n/k]``."""
    if isinstance(population, bool) or not isinstance(population, int) or population < 1:
        raise LossInputError(f"{fn}: population must be a positive int (outputs per class), got {population!r}")
    n = x.shape[-1]
    if n % population:
        raise ShapeError(f"{fn}: {n} outputs cannot be split into classes of population={population} "
                         f"(n must be a multiple of it)")
    return x if population == 1 else x.reshape(*x.shape[:-1], n // population, population).sum(-1)


# ---------------------------------------------------------------------------------------------- count losses

def ce_count(spikes: torch.Tensor, targets: torch.Tensor, population: int = 1,
             weight: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the spike counts, used as logits (snnTorch ``ce_count_loss``).

    ``logits[b, c] = sum_t sum_{i in class c} spikes[t, b, i]``; with ``population=k`` class ``c`` owns
    outputs ``c*k ... c*k + k - 1`` (as snnTorch's population code).

    Args:
        spikes: 0/1 ``[T, batch, n]``.
        targets: class labels ``[batch]``, in ``[0, n / population)``.
        population: outputs per class ``k`` (``n`` must be a multiple).
        weight: optional class weights ``[n / population]``, with torch's semantics (the weighted
            ``"mean"`` divides by the summed weights of the batch's labels; snnTorch divides by the batch size).
        reduction: ``"mean"`` over the batch, ``"sum"`` or ``"none"`` (``[batch]``).
    """
    fn = "ce_count"
    s = _spikes(spikes, fn)
    logits = _group(s.sum(0), population, fn)
    y = _labels(targets, s.shape[1], logits.shape[-1], fn)
    return F.cross_entropy(logits, y, weight=weight, reduction=_reduction(reduction, fn))


def ce_rate(spikes: torch.Tensor, targets: torch.Tensor, population: int = 1,
            weight: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy at every step, averaged over time (snnTorch ``ce_rate_loss``).

    ``loss = (1/T) sum_t CE(spikes[t] grouped by class, targets)``; ``population=k`` sums the ``k``
    outputs of each class at each step (the population code snnTorch's ``ce_rate_loss`` lacked).
    Arguments as :func:`ce_count`; ``"none"`` gives ``[batch]``.
    """
    fn = "ce_rate"
    s = _spikes(spikes, fn)
    logits = _group(s, population, fn)  # [T, B, C]
    T, B, C = logits.shape
    y = _labels(targets, B, C, fn)
    red = _reduction(reduction, fn)
    per = F.cross_entropy(logits.reshape(T * B, C), y.repeat(T), weight=weight, reduction="none").view(T, B)
    if red == "mean" and weight is not None:  # torch's weighted mean divides by the summed weights, per step
        return (per.sum(1) / weight[y].sum()).mean()
    per = per.mean(0)
    return _reduce(per, red)


def mse_count(spikes: torch.Tensor, targets: torch.Tensor, correct_rate: float = 0.8,
              incorrect_rate: float = 0.2, population: int = 1, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error of spike counts against target counts, divided by ``T`` (snnTorch scale).

    The target count of class ``c`` is ``T * k * correct_rate`` if ``c`` is the label and
    ``T * k * incorrect_rate`` otherwise (``k = population``; rates are spikes per step, in [0, 1]).
    ``loss = mean_{b,c} (count[b, c] - target[b, c])^2 / T``, which equals snnTorch's
    ``mse_count_loss`` whenever ``T * k * rate`` is a whole number; snnTorch truncates the target to
    an int otherwise (e.g. ``T = 7, rate = 0.8`` gives 5 instead of 5.6), this function does not.

    Args:
        spikes: 0/1 ``[T, batch, n]``.
        targets: class labels ``[batch]``.
        correct_rate, incorrect_rate: target spikes per step for the labelled / other classes.
        population: outputs per class.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch, n / population]``).
    """
    fn = "mse_count"
    s = _spikes(spikes, fn)
    for name, r in (("correct_rate", correct_rate), ("incorrect_rate", incorrect_rate)):
        if not 0 <= r <= 1:
            raise LossInputError(f"{fn}: {name} is spikes per step and must lie in [0, 1], got {r}")
    T = s.shape[0]
    counts = _group(s.sum(0), population, fn)
    y = _labels(targets, s.shape[1], counts.shape[-1], fn)
    onehot = F.one_hot(y, counts.shape[-1]).to(counts.dtype)
    target = T * population * (incorrect_rate + (correct_rate - incorrect_rate) * onehot)
    return _reduce((counts - target) ** 2, _reduction(reduction, fn)) / T


# ---------------------------------------------------------------------------------------------- membrane losses

def ce_max_membrane(mem: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None,
                    reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of each output's maximum membrane potential over time (snnTorch
    ``ce_max_membrane_loss``; Zenke's SpyTorch). The gradient flows to the step of the maximum.

    Args:
        mem: membrane potentials ``[T, batch, n]`` (any units; they are the logits).
        targets: class labels ``[batch]``.
    """
    fn = "ce_max_membrane"
    m = _series(mem, "mem", fn)
    logits = m.max(0).values
    y = _labels(targets, m.shape[1], m.shape[2], fn)
    return F.cross_entropy(logits, y, weight=weight, reduction=_reduction(reduction, fn))


def mse_membrane(mem: torch.Tensor, targets_mem: torch.Tensor, on_target: float = 1.0,
                 off_target: float = 0.0, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error between membrane potentials and a target (snnTorch ``mse_membrane_loss``).

    Args:
        mem: ``[T, batch, n]``.
        targets_mem: a target potential, ``[T, batch, n]`` (time-varying; its ``T`` must match) or
            ``[batch, n]`` (the same at every step), in the units of ``mem``; or integer class labels
            ``[batch]``, turned into ``on_target`` for the labelled output and ``off_target`` elsewhere
            at every step (snnTorch's form, with the working defaults 1 / 0, cf. snnTorch #253).
        reduction: ``"mean"`` over all ``T * batch * n`` elements, ``"sum"`` or ``"none"``
            (``[T, batch, n]``).
    """
    fn = "mse_membrane"
    m = _series(mem, "mem", fn)
    tgt = torch.as_tensor(targets_mem, device=m.device)
    if not (tgt.is_floating_point() or tgt.is_complex() or tgt.dtype == torch.bool):
        y = _labels(tgt, m.shape[1], m.shape[2], fn)
        onehot = F.one_hot(y, m.shape[2]).to(m.dtype)
        tgt = off_target + (on_target - off_target) * onehot
    tgt = tgt.to(m.dtype)
    if tgt.dim() == 3 and tgt.shape[0] != m.shape[0]:
        raise ShapeError(f"{fn}: time axes differ: mem has shape {tuple(m.shape)} (T={m.shape[0]}), "
                         f"targets_mem {tuple(tgt.shape)} (T={tgt.shape[0]})")
    if tgt.shape not in (m.shape, m.shape[1:]):
        raise ShapeError(f"{fn}: targets_mem must be [T, batch, n] = {list(m.shape)} or [batch, n] = "
                         f"{list(m.shape[1:])} or labels [batch], got shape {tuple(tgt.shape)}")
    return F.mse_loss(m, tgt.expand_as(m), reduction=_reduction(reduction, fn))


# ---------------------------------------------------------------------------------------------- first spike

def first_spike_time(spikes: torch.Tensor, dt: float | None = None) -> torch.Tensor:
    """Each output's first spike time, differentiable with respect to the spikes.

    ``t = sum_t t * s_t * prod_{u<t}(1 - s_u) + T * prod_u (1 - s_u)``: for 0/1 spikes that is the
    step of the first spike, and ``T`` (one step past the window) for a silent output. The gradient
    is this expression's, i.e. the change of ``t`` if one step's spike flipped, linearised: for a
    first spike at ``f``, ``dt/ds_k = k - f`` for ``k < f`` (a spike at ``k`` would come ``f - k``
    steps earlier), ``f - f2`` at ``k = f`` (``f2`` the second spike, or ``T``), and 0 after ``f``. A
    silent output gets ``k - T`` at every step, so it is pushed to fire (snnTorch's temporal
    losses pass a gradient only at the first spike, or at the last step for a silent output).
    Through a surrogate the gradient reaches the membrane potential.

    Args:
        spikes: 0/1 ``[T, batch, n]``.
        dt: step in seconds; if given, times are in seconds (``step * dt``), else in steps.

    Returns:
        ``[batch, n]`` first-spike times.
    """
    s = _spikes(spikes, "first_spike_time")
    T = s.shape[0]
    alive = torch.cumprod(1 - s, 0)  # 1 until (and excluding) the first spike, then 0
    before = torch.cat((torch.ones_like(alive[:1]), alive[:-1]))  # prod_{u<t}(1 - s_u)
    steps = torch.arange(T, device=s.device, dtype=s.dtype).view(T, 1, 1)
    t = (steps * s * before).sum(0) + T * alive[-1]
    return t if dt is None else t * dt


def ce_first_spike(spikes: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
                   weight: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy on negated first-spike times: the labelled output should fire first.

    ``logits = -first_spike_time(spikes) / temperature`` (steps; silent outputs count as ``T``), as
    snnTorch's ``ce_temporal_loss(inverse="negate")`` with ``temperature = 1``. Gradients as in
    :func:`first_spike_time`.

    Args:
        spikes: 0/1 ``[T, batch, n]``.
        targets: class labels ``[batch]``.
        temperature: in steps, > 0; larger values soften the softmax over times.
    """
    fn = "ce_first_spike"
    if not temperature > 0:
        raise LossInputError(f"{fn}: temperature must be positive, got {temperature}")
    s = _spikes(spikes, fn)
    y = _labels(targets, s.shape[1], s.shape[2], fn)
    logits = -first_spike_time(s) / temperature
    return F.cross_entropy(logits, y, weight=weight, reduction=_reduction(reduction, fn))


def mse_first_spike(spikes: torch.Tensor, target_times: torch.Tensor, dt: float | None = None,
                    reduction: str = "mean") -> torch.Tensor:
    """Mean squared error between first-spike times and target times.

    Unlike snnTorch's ``mse_temporal_loss`` the times are not divided by ``T``: the loss is in steps²
    (or s² with ``dt``), i.e. ``T**2`` times snnTorch's value. A silent output counts as firing at
    ``T`` (``T * dt``). Gradients as in :func:`first_spike_time`.

    Args:
        spikes: 0/1 ``[T, batch, n]``.
        target_times: ``[batch, n]`` (or broadcastable to it), in steps, or in seconds if ``dt`` is given.
        dt: step in seconds.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch, n]``).
    """
    fn = "mse_first_spike"
    s = _spikes(spikes, fn)
    t = first_spike_time(s, dt)
    tgt = torch.as_tensor(target_times, dtype=t.dtype, device=t.device)
    if tgt.dim() == 3:
        raise ShapeError(f"{fn}: target_times are times [batch, n], not a spike train; got shape "
                         f"{tuple(tgt.shape)} for spikes {tuple(s.shape)}")
    try:
        if torch.broadcast_shapes(tgt.shape, t.shape) != t.shape:
            raise RuntimeError
    except RuntimeError:
        raise ShapeError(f"{fn}: target_times must be [batch, n] = {list(t.shape)} (or broadcast to it), "
                         f"got shape {tuple(tgt.shape)}") from None
    return F.mse_loss(t, tgt.expand_as(t), reduction=_reduction(reduction, fn))


# ---------------------------------------------------------------------------------------------- regularisers

def _rates(s: torch.Tensor, dt: float | None, fn: str) -> torch.Tensor:
    if dt is not None and not dt > 0:
        raise LossInputError(f"{fn}: dt must be positive (seconds), got {dt}")
    r = s.mean(0)  # spikes per step, [batch, n]
    return r if dt is None else r / dt


def l1_rate(spikes: torch.Tensor, dt: float | None = None, reduction: str = "mean") -> torch.Tensor:
    """L1 activity penalty: the firing rate ``r[b, i] = (1/T) sum_t spikes[t, b, i]`` of each output.

    Rates are spikes per step, or Hz with ``dt`` (s). Spikes are non-negative, so ``|r| = r``.
    snnTorch's ``l1_rate_sparsity(Lambda)(spikes) == Lambda * T * l1_rate(spikes, reduction="sum")``.
    ``reduction``: ``"mean"`` over batch and neurons, ``"sum"``, or ``"none"`` (``[batch, n]``).
    """
    fn = "l1_rate"
    return _reduce(_rates(_spikes(spikes, fn), dt, fn), _reduction(reduction, fn))


def l2_rate(spikes: torch.Tensor, dt: float | None = None, reduction: str = "mean") -> torch.Tensor:
    """L2 activity penalty ``r[b, i]**2`` on the rates of :func:`l1_rate` (per step², or Hz² with ``dt``)."""
    fn = "l2_rate"
    return _reduce(_rates(_spikes(spikes, fn), dt, fn) ** 2, _reduction(reduction, fn))


def rate_bounds(spikes: torch.Tensor, low: float, high: float, dt: float,
                reduction: str = "mean") -> torch.Tensor:
    """Squared penalty on each neuron's rate outside ``[low, high]`` Hz (Zenke & Vogels 2021 style).

    ``r_i`` is neuron ``i``'s rate in Hz averaged over time and batch; the penalty is
    ``relu(low - r_i)**2 + relu(r_i - high)**2`` in Hz², zero inside the band. Below-band neurons get a
    gradient that raises their rate, so silent neurons are revived.

    Args:
        spikes: 0/1 ``[T, batch, n]``.
        low, high: band in Hz, ``0 <= low <= high``.
        dt: step in seconds.
        reduction: ``"mean"`` / ``"sum"`` over neurons, or ``"none"`` (``[n]``).
    """
    fn = "rate_bounds"
    if not 0 <= low <= high:
        raise LossInputError(f"{fn}: need 0 <= low <= high (Hz), got low={low}, high={high}")
    r = _rates(_spikes(spikes, fn), dt, fn).mean(0)  # Hz, [n]
    return _reduce(F.relu(low - r) ** 2 + F.relu(r - high) ** 2, _reduction(reduction, fn))


# ---------------------------------------------------------------------------------------------- accuracy

def _accuracy(scores: torch.Tensor, y: torch.Tensor, higher_wins: bool) -> float:
    """Fraction of samples whose labelled class strictly beats every other class (ties count as wrong,
    so a silent network does not score the share of class 0)."""
    s = scores if higher_wins else -scores
    mine = s.gather(1, y[:, None])
    others = s.scatter(1, y[:, None], float("-inf"))
    return float((mine[:, 0] > others.max(1).values).float().mean()) if len(y) else float("nan")


@torch.no_grad()
def accuracy_count(spikes: torch.Tensor, targets: torch.Tensor, population: int = 1) -> float:
    """Share of samples whose labelled class has the most spikes (strictly; ties are wrong).

    snnTorch's ``accuracy_rate`` takes the first maximum, so it scores ties (even a silent network)
    as class 0; the two agree when there are no ties.
    """
    fn = "accuracy_count"
    s = _spikes(spikes, fn)
    counts = _group(s.sum(0), population, fn)
    return _accuracy(counts, _labels(targets, s.shape[1], counts.shape[-1], fn), True)


@torch.no_grad()
def accuracy_max_membrane(mem: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of samples whose labelled output reaches the highest maximum membrane potential."""
    fn = "accuracy_max_membrane"
    m = _series(mem, "mem", fn)
    return _accuracy(m.max(0).values, _labels(targets, m.shape[1], m.shape[2], fn), True)


@torch.no_grad()
def accuracy_first_spike(spikes: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of samples whose labelled output fires first (strictly; silent outputs fire at ``T``)."""
    fn = "accuracy_first_spike"
    s = _spikes(spikes, fn)
    return _accuracy(first_spike_time(s), _labels(targets, s.shape[1], s.shape[2], fn), False)
