"""Spike encoders: turn intensities or signals into 0/1 spike trains, time first ``[T, batch, ...]``.

The functions follow snnTorch's ``spikegen`` (``rate``, ``latency``, ``delta``) so that code moves over
easily, but every random draw comes from an explicit ``seed`` or ``generator`` (never the global RNG),
out-of-domain input raises :class:`EncodingError` instead of being silently clipped, and the places
where tidesim's semantics differ from snnTorch's are stated in each docstring. ``population`` and
``population_decode`` add Gaussian receptive-field (population) coding.

Encoders produce data, not a computation graph: the outputs carry no gradient.
"""

from __future__ import annotations

import math

import torch

from tidesim.core.errors import ShapeError, TidesimError
from tidesim.core.inputs import seeded_generator

__all__ = ["EncodingError", "rate", "latency", "latency_times", "delta", "population", "population_decode"]


class EncodingError(TidesimError, ValueError):
    """Input to an encoder is outside its domain (negative intensity, NaN, probability above 1, ...)."""


# ---------------------------------------------------------------------------------------------- helpers

def _float_tensor(data, name: str, fn: str) -> torch.Tensor:
    x = torch.as_tensor(data)
    if x.is_complex():
        raise EncodingError(f"{fn}: {name} must be real, got dtype {x.dtype}")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if torch.isnan(x).any():
        idx = tuple(torch.nonzero(torch.isnan(x))[0].tolist())
        raise EncodingError(f"{fn}: {name} contains NaN (first at index {idx})")
    return x.detach()


def _check_unit_interval(x: torch.Tensor, name: str, fn: str) -> None:
    lo, hi = float(x.min()) if x.numel() else 0.0, float(x.max()) if x.numel() else 0.0
    if lo < 0 or hi > 1:
        raise EncodingError(f"{fn}: {name} must lie in [0, 1] (intensities), got values in [{lo:g}, {hi:g}]; "
                            f"rescale first, e.g. (x - x.min()) / (x.max() - x.min())")


def _check_steps(num_steps, fn: str) -> int:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps <= 0:
        raise EncodingError(f"{fn}: num_steps must be a positive int, got {num_steps!r}")
    return num_steps


def _out_dtype(dtype: torch.dtype | None, x: torch.Tensor) -> torch.dtype:
    return dtype if dtype is not None else x.dtype


def _generator(seed: int | None, generator: torch.Generator | None, device: torch.device,
               fn: str) -> torch.Generator:
    if seed is not None and generator is not None:
        raise EncodingError(f"{fn}: give seed or generator, not both")
    if generator is not None:
        return generator
    return seeded_generator(seed, device)  # this generator only; the global RNG is untouched


# ---------------------------------------------------------------------------------------------- rate

def rate(data, num_steps: int | None, gain: float = 1.0, max_rate: float | None = None,
         dt: float | None = None, seed: int | None = None, generator: torch.Generator | None = None,
         dtype: torch.dtype | None = None) -> torch.Tensor:
    """Rate (Bernoulli) code: at each step each input spikes with probability ``p``, independently.

    Intensity form (``max_rate`` and ``dt`` both ``None``): ``p = gain * data``, as snnTorch's
    ``spikegen.rate``. Poisson form (both given): input ``i`` fires at ``data[i] * gain * max_rate``
    Hz, and a step of ``dt`` seconds spikes with ``p = rate * dt`` (the usual discretisation of a
    Poisson process, at most one spike per step). Unlike snnTorch, nothing is clipped: ``p`` above 1
    raises :class:`EncodingError`.

    Args:
        data: intensities in [0, 1], shape ``[batch, ...]``; or, with ``num_steps=None``,
            time-varying intensities ``[T, batch, ...]`` (one probability per step).
        num_steps: number of steps ``T`` (positive), or ``None`` for time-varying ``data``.
        gain: factor on ``data`` (dimensionless, >= 0).
        max_rate: rate in Hz of an input of intensity 1 (Poisson form).
        dt: step in seconds (Poisson form).
        seed, generator: the random source (at most one); neither = a fresh, randomly seeded generator.
            Streams are reproducible per device (a CPU and a CUDA generator give different trains).
        dtype: of the spikes; default that of ``data`` (float).

    Returns:
        0/1 spikes ``[T, batch, ...]``.
    """
    fn = "encode.rate"
    x = _float_tensor(data, "data", fn)
    _check_unit_interval(x, "data", fn)
    if not math.isfinite(gain) or gain < 0:
        raise EncodingError(f"{fn}: gain must be finite and >= 0, got {gain}")
    if (max_rate is None) != (dt is None):
        raise EncodingError(f"{fn}: the Poisson form needs both max_rate (Hz) and dt (s); got "
                            f"max_rate={max_rate}, dt={dt}")
    p = x * gain
    if max_rate is not None:
        if not (math.isfinite(max_rate) and max_rate >= 0) or not (math.isfinite(dt) and dt > 0):
            raise EncodingError(f"{fn}: need max_rate >= 0 Hz and dt > 0 s, got max_rate={max_rate}, dt={dt}")
        p = p * (max_rate * dt)
    pmax = float(p.max()) if p.numel() else 0.0
    if pmax > 1:
        what = (f"rate*dt = {pmax:g} (max_rate*gain*dt = {gain * max_rate * dt:g})" if max_rate is not None
                else f"gain*data = {pmax:g}")
        raise EncodingError(f"{fn}: spike probability per step above 1: {what}; lower gain/max_rate or use a "
                            f"smaller dt (a step holds at most one spike)")
    if num_steps is None:
        if p.dim() < 1:
            raise ShapeError(f"{fn}: with num_steps=None data must be [T, batch, ...], got a scalar")
        shape = p.shape
    else:
        shape = (_check_steps(num_steps, fn), *p.shape)
    gen = _generator(seed, generator, p.device, fn)
    u = torch.rand(shape, generator=gen, device=p.device, dtype=p.dtype)
    return (u < p).to(_out_dtype(dtype, x))  # P(u < p) = p for u ~ U[0, 1): p=0 never, p=1 always fires


# ---------------------------------------------------------------------------------------------- latency

_LATENCY_METHODS = ("linear", "log")


def latency_times(data, num_steps: int, tau: float = 1.0, threshold: float = 0.01, method: str = "linear",
                  normalize: bool = True, clip: bool = False, first_spike_time: int = 0) -> torch.Tensor:
    """The step of each input's single spike under :func:`latency` (same arguments), before rounding.

    Returns a float tensor of ``data``'s shape: spike time in steps (``inf`` where the input does not
    spike, i.e. below threshold with ``clip=True``). :func:`latency` rounds these to the nearest
    step (``torch.round``, half to even, as snnTorch).
    """
    fn = "encode.latency"
    x = _float_tensor(data, "data", fn)
    _check_unit_interval(x, "data", fn)
    T = _check_steps(num_steps, fn)
    if method not in _LATENCY_METHODS:
        raise EncodingError(f"{fn}: method must be one of {_LATENCY_METHODS}, got {method!r}")
    if not 0 < threshold < 1:
        raise EncodingError(f"{fn}: threshold must lie in (0, 1), got {threshold}")
    if not normalize and not (math.isfinite(tau) and tau > 0):
        raise EncodingError(f"{fn}: tau must be a positive number of steps, got {tau}")
    if isinstance(first_spike_time, bool) or not isinstance(first_spike_time, int) \
            or not 0 <= first_spike_time <= T - 1:
        raise EncodingError(f"{fn}: first_spike_time must be an int in [0, num_steps-1] = [0, {T - 1}], "
                            f"got {first_spike_time!r}")
    span = T - 1 - first_spike_time  # steps available after first_spike_time

    if method == "linear":
        fires = x >= threshold  # snnTorch: idx = data < threshold is "below threshold"
        t = (span if normalize else tau) * (1 - x)
    else:
        fires = x > threshold  # the RC neuron below never reaches threshold for x <= threshold
        safe = torch.where(fires, x, torch.ones_like(x))
        t = torch.log(safe / (safe - threshold))  # in units of tau
        if normalize:
            tmax = t[fires].max() if fires.any() else torch.ones((), dtype=x.dtype, device=x.device)
            t = t * (span / tmax) if span > 0 else torch.zeros_like(t)
        else:
            t = tau * t
    t = t + first_spike_time
    late = fires & (torch.round(t) > T - 1)
    if late.any():
        idx = tuple(torch.nonzero(late)[0].tolist())
        raise EncodingError(f"{fn}: input {float(x[idx]):g} at index {idx} would spike at step "
                            f"{float(t[idx]):.4g}, after the last step {T - 1}; use normalize=True, a smaller tau "
                            f"or more steps")
    below = torch.full_like(t, math.inf) if clip else torch.full_like(t, float(T - 1))
    return torch.where(fires, t, below)


def latency(data, num_steps: int, tau: float = 1.0, threshold: float = 0.01, method: str = "linear",
            normalize: bool = True, clip: bool = False, first_spike_time: int = 0,
            dtype: torch.dtype | None = None) -> torch.Tensor:
    """Latency (time-to-first-spike) code: each input spikes at most once, brighter inputs earlier.

    Spike time in steps, before rounding to the nearest step (``torch.round``), for an input ``x``
    in [0, 1] and ``t0 = first_spike_time``:

    * ``method="linear"``: ``t = t0 + tau * (1 - x)`` for ``x >= threshold``. With ``normalize=True``
      (the default) ``tau = num_steps - 1 - t0``, so ``x = 1`` fires at ``t0`` and ``x = 0`` would fire
      at the last step; ``tau`` is then ignored. Identical to snnTorch's
      ``spikegen.latency(..., linear=True, normalize=...)`` for inputs at or above threshold.
    * ``method="log"``: ``t = t0 + tau * ln(x / (x - threshold))`` for ``x > threshold``: the time an RC
      circuit (a leaky integrator with time constant ``tau`` steps, driven by ``x``) takes to charge
      from 0 to ``threshold``. With ``normalize=True`` the times are scaled so that the latest *spiking*
      input in the whole tensor fires at the last step (``tau`` ignored). That scale depends on the
      other inputs in the tensor, as in snnTorch; use ``normalize=False`` and an explicit ``tau`` for
      a code that does not. Differs from snnTorch, which clamps sub-threshold inputs to
      ``threshold + 1e-7`` and includes them in the maximum, squashing all other spikes towards step
      ``t0``; the two agree when every input is above threshold.

    Inputs below threshold (``x < threshold`` for linear, ``x <= threshold`` for log) never spike with
    ``clip=True``; with ``clip=False`` (the default) they spike at the last step ``num_steps - 1``
    (snnTorch puts them at the clamped time instead, which need not be the last step). A spike that
    would fall after the last step raises :class:`EncodingError` (snnTorch raises too, unless
    ``bypass=True``).

    Args:
        data: intensities in [0, 1], shape ``[batch, ...]``.
        num_steps: ``T``, positive.
        tau: time constant in steps (used only with ``normalize=False``).
        threshold: in (0, 1).
        method: ``"linear"`` or ``"log"``.
        normalize: fit the code into ``[t0, T-1]`` (see above).
        clip: drop sub-threshold inputs instead of firing them at the last step.
        first_spike_time: ``t0``, the earliest spike step (int in ``[0, T-1]``).
        dtype: of the spikes; default that of ``data``.

    Returns:
        0/1 spikes ``[T, batch, ...]`` with at most one spike per input.
    """
    t = latency_times(data, num_steps, tau=tau, threshold=threshold, method=method, normalize=normalize,
                      clip=clip, first_spike_time=first_spike_time)
    fires = torch.isfinite(t)
    step = torch.round(torch.where(fires, t, torch.zeros_like(t))).long()
    steps = torch.arange(num_steps, device=t.device).view(-1, *([1] * t.dim()))
    x = torch.as_tensor(data)
    return ((steps == step) & fires).to(dtype or (x.dtype if x.is_floating_point() else
                                                  torch.get_default_dtype()))


# ---------------------------------------------------------------------------------------------- delta

def delta(data, threshold: float = 0.1, off_spike: bool = False, padding: bool = False,
          dtype: torch.dtype | None = None) -> torch.Tensor:
    """Delta (change) code: spike where a signal rose by at least ``threshold`` since the last step.

    ``change[t] = data[t] - data[t-1]``; for ``t = 0`` the previous value is 0 (``padding=False``,
    so a signal starting at or above ``threshold`` spikes at step 0) or ``data[0]`` itself
    (``padding=True``, no spike at step 0). An ON spike needs ``change >= threshold`` (as snnTorch).

    With ``off_spike=True`` falls (``change <= -threshold``) are reported too, in a separate OFF
    channel rather than as ``-1`` (snnTorch's choice): every output stays a 0/1 spike train that the
    losses and neuron layers accept. The channel axis is inserted at dim 2, right after batch, as in
    event-camera frames: ``[T, batch, ...] -> [T, batch, 2, ...]`` with channel 0 = ON, 1 = OFF
    (1-D input ``[T]`` gives ``[T, 2]``). ``on - off`` recovers snnTorch's signed output.

    Args:
        data: signal ``[T, batch, ...]`` (time first), real and without NaN.
        threshold: smallest change that spikes, > 0, in the units of ``data``.
        off_spike: add the OFF channel.
        padding: compare step 0 with itself instead of with 0.
        dtype: of the spikes; default that of ``data``.
    """
    fn = "encode.delta"
    x = _float_tensor(data, "data", fn)
    if x.dim() < 1 or x.shape[0] < 1:
        raise ShapeError(f"{fn}: data must be [T, batch, ...] with T >= 1, got shape {tuple(x.shape)}")
    if not (math.isfinite(threshold) and threshold > 0):
        raise EncodingError(f"{fn}: threshold must be a positive number, got {threshold}")
    prev = torch.cat((x[:1] if padding else torch.zeros_like(x[:1]), x[:-1]))
    change = x - prev
    out = _out_dtype(dtype, x)
    on = (change >= threshold).to(out)
    if not off_spike:
        return on
    off = (change <= -threshold).to(out)
    return torch.stack((on, off), dim=min(2, x.dim()))


# ---------------------------------------------------------------------------------------------- population

def _centres(n_neurons: int, low: float, high: float, fn: str, dtype, device) -> torch.Tensor:
    if isinstance(n_neurons, bool) or not isinstance(n_neurons, int) or n_neurons < 2:
        raise EncodingError(f"{fn}: n_neurons must be an int >= 2, got {n_neurons!r}")
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise EncodingError(f"{fn}: need finite low < high, got low={low}, high={high}")
    return torch.linspace(low, high, n_neurons, dtype=dtype, device=device)


def population(values, n_neurons: int, low: float, high: float, sigma: float | None = None,
               dtype: torch.dtype | None = None) -> torch.Tensor:
    """Population code: each value drives ``n_neurons`` Gaussian receptive fields tiling [low, high].

    Neuron ``i`` has its centre at ``c_i = low + i * (high - low) / (n_neurons - 1)`` and returns the
    intensity ``exp(-(v - c_i)^2 / (2 sigma^2))`` in (0, 1] (1 when ``v = c_i``). Feed the result to
    :func:`rate` or :func:`latency` for spikes; :func:`population_decode` inverts it.

    Args:
        values: ``[...]`` in [low, high] (no NaN; values outside raise :class:`EncodingError`, clamp
            them first if that is what you want).
        n_neurons: neurons per value, >= 2.
        low, high: the encoded range, in the units of ``values``.
        sigma: receptive-field width in the units of ``values``; default the centre spacing
            ``(high - low) / (n_neurons - 1)``.
        dtype: default that of ``values`` (float).

    Returns:
        intensities ``[..., n_neurons]`` (a new last axis).
    """
    fn = "encode.population"
    v = _float_tensor(values, "values", fn)
    if dtype is not None:
        v = v.to(dtype)
    c = _centres(n_neurons, low, high, fn, v.dtype, v.device)
    if v.numel() and (float(v.min()) < low or float(v.max()) > high):
        raise EncodingError(f"{fn}: values must lie in [low, high] = [{low:g}, {high:g}], got "
                            f"[{float(v.min()):g}, {float(v.max()):g}]; clamp them first")
    spacing = (high - low) / (n_neurons - 1)
    s = spacing if sigma is None else sigma
    if not (math.isfinite(s) and s > 0):
        raise EncodingError(f"{fn}: sigma must be positive, got {sigma}")
    return torch.exp(-((v.unsqueeze(-1) - c) ** 2) / (2 * s * s))


def population_decode(rates_or_counts, low: float, high: float, window: int | None = 2,
                      empty: float = math.nan) -> torch.Tensor:
    """Decode a population code (:func:`population`) by its centre of mass.

    ``v = sum_i c_i r_i / sum_i r_i`` with the same centres ``c_i`` as :func:`population`. A plain
    centre of mass over the whole population (``window=None``) is pulled towards the middle of the
    range for values within about two receptive-field widths of ``low`` or ``high``, because the
    population's tails are cut there. The default sums only over the peak neuron and ``window``
    neurons on each side, shrinking the window symmetrically at the edges: ``low``, ``high`` and the
    centres decode exactly, values two spacings or more inside the range within 0.05 spacing (for
    the default ``sigma``, noise-free), but values within half a spacing of an edge are pulled onto
    it (error < 0.5 spacing; the plain centre of mass errs as much, at the edge itself). The windowed
    sum also ignores noise far from the peak. Differentiable in ``rates_or_counts`` (the peak choice
    is not).

    Args:
        rates_or_counts: non-negative ``[..., n_neurons]`` (intensities, rates or spike counts summed
            over time).
        low, high: the range given to :func:`population`.
        window: neurons on each side of the peak, or ``None`` for the whole population.
        empty: the value returned where the whole (windowed) population is silent; default NaN.

    Returns:
        decoded values ``[...]`` in the units of ``low``/``high``.
    """
    fn = "encode.population_decode"
    r = torch.as_tensor(rates_or_counts)
    if not r.is_floating_point():
        r = r.to(torch.get_default_dtype())
    if r.dim() < 1:
        raise ShapeError(f"{fn}: need [..., n_neurons], got a scalar")
    with torch.no_grad():
        if torch.isnan(r).any():
            raise EncodingError(f"{fn}: rates_or_counts contains NaN")
        if r.numel() and float(r.min()) < 0:
            raise EncodingError(f"{fn}: rates_or_counts must be >= 0, got min {float(r.min()):g}")
    n = r.shape[-1]
    c = _centres(n, low, high, fn, r.dtype, r.device)
    if window is None:
        w = torch.ones_like(r)
    else:
        if isinstance(window, bool) or not isinstance(window, int) or window < 0:
            raise EncodingError(f"{fn}: window must be an int >= 0 or None, got {window!r}")
        with torch.no_grad():
            peak = r.argmax(-1, keepdim=True)
            half = torch.minimum(torch.minimum(peak, n - 1 - peak), torch.full_like(peak, window))
            idx = torch.arange(n, device=r.device)
            w = ((idx - peak).abs() <= half).to(r.dtype)
    mass = (r * w).sum(-1)
    v = (r * w * c).sum(-1) / torch.where(mass > 0, mass, torch.ones_like(mass))
    return torch.where(mass > 0, v, torch.full_like(v, empty))
