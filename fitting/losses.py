"""Fitting losses: each maps the model's output for B starts to a ``[B]`` loss, summed over sweeps.

Losses compose: ``TraceMSE() + 0.5 * VanRossum(tau=10e-3)``. Each is scaled so that a poor but
sane fit is of order 1, which makes default weights of 1 meaningful. ``differentiable`` says
whether gradient-based optimisers can use it (feature losses computed by elephant are not).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from tidesim.analysis import adaptation_index, cv_isi
from tidesim.analysis import differentiable as tsa
from tidesim.core.result import spike_raster
from tidesim.fitting import loss_events as le
from tidesim.fitting.data import FitData
from tidesim.fitting.errors import FitError

__all__ = ["ModelOutput", "Loss", "TraceMSE", "VanRossum", "SpikeCount", "FirstSpikeLatency", "GammaFactor",
           "Feature", "UserLoss", "default_loss", "as_loss"]


class ModelOutput:
    """What the batched simulation produced: ``[T, B, S]`` voltage (V) and spikes, as a raster (which
    carries gradients) or, where nothing is differentiated, as ``events``: (steps, columns ``b * S + s``).
    The raster of an events-only output is built when first read; the losses use the events directly."""

    def __init__(self, voltage: torch.Tensor, spikes: torch.Tensor | None, dt: float,
                 events: tuple[np.ndarray, np.ndarray] | None = None):
        if spikes is None and events is None:
            raise ValueError("ModelOutput needs spikes or events")
        self.voltage, self._spikes, self.dt, self.events = voltage, spikes, dt, events

    @property
    def spikes(self) -> torch.Tensor:
        """``[T, B, S]`` 0/1 spikes."""
        if self._spikes is None:
            T, B, S = self.voltage.shape
            self._spikes = spike_raster(*self.events, T, B * S, self.voltage.dtype).reshape(T, B, S)
        return self._spikes

    def counts(self) -> torch.Tensor:
        """``[B, S]`` spike counts."""
        if self._spikes is None:
            T, B, S = self.voltage.shape
            n = np.bincount(self.events[1], minlength=B * S)
            return torch.from_numpy(n).to(self.voltage.dtype).reshape(B, S)
        return self._spikes.sum(0)

    @property
    def n_starts(self) -> int:
        """Number of parameter points ``B`` simulated together."""
        return int(self.voltage.shape[1])


class Loss:
    """Base class: ``loss(out, data) -> [B]``; add and scale them to combine."""

    differentiable = True
    needs_spikes = False  # the data must hold spikes (spike-train losses)

    def __call__(self, out: ModelOutput, data: FitData) -> torch.Tensor:
        raise NotImplementedError

    def __add__(self, other: "Loss") -> "Loss":
        return Sum([(1.0, self), (1.0, as_loss(other))])

    def __mul__(self, w: float) -> "Loss":
        return Sum([(float(w), self)])

    __rmul__ = __mul__

    def terms(self) -> list[tuple[float, "Loss"]]:
        """``(weight, loss)`` pairs this loss is the weighted sum of (one loss: itself, weight 1)."""
        return [(1.0, self)]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Sum(Loss):
    def __init__(self, terms: list[tuple[float, Loss]]):
        self._terms = [(w * w2, t2) for w, t in terms for w2, t2 in t.terms()]

    @property
    def differentiable(self) -> bool:  # type: ignore[override]
        return all(t.differentiable for _, t in self._terms)

    @property
    def needs_spikes(self) -> bool:  # type: ignore[override]
        return any(t.needs_spikes for _, t in self._terms)

    def terms(self) -> list[tuple[float, Loss]]:
        return list(self._terms)

    def __call__(self, out: ModelOutput, data: FitData) -> torch.Tensor:
        return sum(w * t(out, data) for w, t in self._terms)

    def parts(self, out: ModelOutput, data: FitData) -> dict[str, torch.Tensor]:
        return {f"{w:g}*{type(t).__name__}": w * t(out, data) for w, t in self._terms}

    def __repr__(self) -> str:
        return " + ".join(f"{w:g}*{t!r}" for w, t in self._terms)


class TraceMSE(Loss):
    """Mean squared voltage error in units of ``scale`` (default 5 mV, so 5 mV RMS error → 1).

    With ``mask_spikes`` the samples from ``before`` to ``after`` (s) around every recorded and
    every simulated spike are left out, so the model is not penalised for its spike shape.
    """

    def __init__(self, mask_spikes: bool = True, before: float = 2e-3, after: float = 5e-3, scale: float = 5e-3):
        self.mask_spikes, self.before, self.after, self.scale = mask_spikes, before, after, scale

    def __call__(self, out, data):
        if self.mask_spikes and out.events is not None:  # the same mean, without a [T, B, S] mask
            err = (out.voltage - data.voltage[:, None, :]).div_(self.scale).square_()  # nothing to differentiate
            T, B, S = err.shape
            steps, sweeps = np.nonzero(data.spikes.numpy())
            rec_steps, rec_cols = le.columns_of(steps, sweeps, B, S)
            nb, na = int(round(self.before / data.dt)), int(round(self.after / data.dt))
            return le.masked_mean(err, np.concatenate([out.events[0], rec_steps]),
                                  np.concatenate([out.events[1], rec_cols]), nb, na)
        err = ((out.voltage - data.voltage[:, None, :]) / self.scale) ** 2
        if self.mask_spikes:
            mask = data.spike_mask(self.before, self.after, extra=out.spikes.detach())
            return (err * mask).sum((0, 2)) / mask.sum((0, 2)).clamp_min(1)
        return err.mean((0, 2))


class VanRossum(Loss):
    """Squared van Rossum distance (elephant's normalisation) per sweep, divided by the recorded
    count + 1 and averaged over sweeps: 1 when every spike is missing or far off."""

    needs_spikes = True

    def __init__(self, tau: float = 10e-3):
        self.tau = tau

    def __call__(self, out, data):
        if out.events is not None:  # closed form on the events, the same value
            T, B, S = out.voltage.shape
            steps, sweeps = np.nonzero(data.spikes.numpy())
            d2 = le.van_rossum_squared(out.events, le.columns_of(steps, sweeps, B, S), B * S, out.dt, self.tau)
            d = torch.from_numpy(d2).to(out.voltage.dtype) + 1e-30
            return (d.reshape(B, S) / (data.counts + 1)).mean(1)
        T, B, S = out.spikes.shape
        model = out.spikes.reshape(T, B * S)
        target = data.spikes.repeat(1, B)
        d = tsa.van_rossum_distance(model, target, out.dt, self.tau) ** 2
        return (d.reshape(B, S) / (data.counts + 1)).mean(1)


class SpikeCount(Loss):
    """Squared count error relative to the recorded count + 1, averaged over sweeps."""

    def __call__(self, out, data):
        n = out.counts()  # [B, S]
        return (((n - data.counts) ** 2) / (data.counts + 1)).mean(1)


def _soft_first_spike(spikes: torch.Tensor, dt: float) -> torch.Tensor:
    """Time to the first spike (s), differentiable through surrogate spikes: dt * sum(relu(1 - cumsum))."""
    return dt * torch.relu(1 - torch.cumsum(spikes, 0)).sum(0)


class FirstSpikeLatency(Loss):
    """Squared error of the first-spike time (in units of ``scale``, default 10 ms), over sweeps
    where the recording spikes; a sweep without a model spike counts as a spike at the end."""

    needs_spikes = True

    def __init__(self, scale: float = 10e-3):
        self.scale = scale

    def __call__(self, out, data):
        model = _soft_first_spike(out.spikes, out.dt)  # [B, S]
        target = _soft_first_spike(data.spikes, data.dt)  # [S]
        has = (data.counts > 0).to(model.dtype)
        return (((model - target) / self.scale) ** 2 * has).sum(1) / has.sum().clamp_min(1)


class GammaFactor(Loss):
    """1 - a smooth coincidence factor: model spikes count as coincident where a recorded spike
    lies within ``delta`` (s); Gamma = (N_c - 2 nu delta N_m) / ((N_d + N_m) / 2) / (1 - 2 nu delta)."""

    needs_spikes = True

    def __init__(self, delta: float = 4e-3):
        self.delta = delta

    def __call__(self, out, data):
        k = int(round(self.delta / data.dt))
        x = data.spikes.T[:, None, :]
        near = torch.nn.functional.max_pool1d(x, 2 * k + 1, stride=1, padding=k)[:, 0, :].T  # [T, S]
        coinc = (out.spikes * near[:, None, :]).sum(0)  # [B, S]
        nm, nd = out.spikes.sum(0), data.counts
        nu = nd / data.duration
        gamma = (coinc - 2 * nu * self.delta * nm) / (0.5 * (nd + nm)).clamp_min(0.5) / (1 - 2 * nu * self.delta)
        return (1 - gamma).mean(1)


class Feature(Loss):
    """A feature of each sweep's spike train from :mod:`tidesim.analysis` (``"rate"``, ``"cv_isi"``,
    ``"adaptation_index"``, ``"latency"``) compared to the recording's, squared, in units of
    ``scale``. Computed by elephant on the spike times, so not differentiable: for gradient-free
    methods (``method="de"``), or as a reported score."""

    differentiable = False
    needs_spikes = True

    def __init__(self, name: str, scale: float | None = None):
        if name not in _FEATURES:
            raise FitError(f"unknown feature {name!r}; features: {', '.join(_FEATURES)}")
        self.name, self.scale = name, scale if scale is not None else _FEATURES[name][1]

    def __call__(self, out, data):
        fn = _FEATURES[self.name][0]
        T, B, S = out.spikes.shape
        times = [np.nonzero(data.spikes[:, s].numpy())[0] * data.dt for s in range(S)]
        target = np.array([fn(t, data.duration) for t in times])
        spikes = out.spikes.detach().cpu().numpy()
        loss = np.zeros(B)
        for b in range(B):
            model = np.array([fn(np.nonzero(spikes[:, b, s])[0] * out.dt, data.duration) for s in range(S)])
            loss[b] = np.nanmean(((model - target) / self.scale) ** 2)
        return torch.as_tensor(loss, dtype=out.voltage.dtype)


def _rate(t, duration):
    return len(t) / duration


def _cv(t, duration):
    return cv_isi([t], nan_policy="nan")[0] if len(t) else np.nan


def _adaptation(t, duration):
    return adaptation_index(t) if len(t) >= 3 else 0.0


def _latency(t, duration):
    return t[0] if len(t) else duration


_FEATURES: dict[str, tuple[Callable, float]] = {
    "rate": (_rate, 10.0), "cv_isi": (_cv, 0.2), "adaptation_index": (_adaptation, 0.1),
    "latency": (_latency, 0.01),
}


class UserLoss(Loss):
    """A user function ``fn(out: ModelOutput, data: FitData) -> [B]`` tensor."""

    def __init__(self, fn: Callable, differentiable: bool = True):
        self.fn, self.differentiable = fn, differentiable

    def __call__(self, out, data):
        value = self.fn(out, data)
        if not isinstance(value, torch.Tensor) or value.shape != (out.n_starts,):
            raise FitError(f"a user loss must return a tensor of shape [{out.n_starts}] (one loss per start), "
                           f"got {getattr(value, 'shape', type(value).__name__)}")
        return value


def default_loss() -> Loss:
    """Sub-threshold trace with spike windows masked, plus spike timing and counts: what works on
    real current-clamp data without penalising the model's spike shape."""
    return TraceMSE() + VanRossum(tau=10e-3) + SpikeCount()


_NAMED = {
    "default": default_loss, "trace": lambda: TraceMSE(), "spikes": lambda: VanRossum() + SpikeCount(),
    "van_rossum": lambda: VanRossum(), "count": lambda: SpikeCount(), "gamma": lambda: GammaFactor(),
    "latency": lambda: FirstSpikeLatency(),
}


def as_loss(loss) -> Loss:
    """A Loss from a Loss, a name (``"default"``, ``"trace"``, ``"spikes"``, ...), or a callable."""
    if isinstance(loss, Loss):
        return loss
    if loss is None:
        return default_loss()
    if isinstance(loss, str):
        if loss not in _NAMED:
            raise FitError(f"unknown loss {loss!r}; named losses: {', '.join(_NAMED)}")
        return _NAMED[loss]()
    if callable(loss):
        return UserLoss(loss)
    raise FitError(f"loss must be a name, a tidesim.fitting Loss or a callable, got {type(loss).__name__}")
