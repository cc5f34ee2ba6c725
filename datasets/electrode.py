"""Active electrode compensation (AEC) for single-electrode recordings.

A single electrode both injects the current and records the voltage, so the recorded voltage carries the
electrode's own response: ``V_recorded = V_membrane + K_e * I``. Brette et al. (2008, Neuron 59:379, "High-
resolution intracellular recordings using a real-time computational model of the electrode") estimate the
whole kernel ``K`` of ``V_recorded = K * I + V_0`` from a fluctuating current (a calibration trace, or the
frozen noise itself), model its slow part as the membrane's exponential kernel ``(R/tau) dt exp(-t/tau)``
fitted to ``K``'s tail, and take the rest, which vanishes within a few samples, as the electrode's ``K_e``;
the membrane voltage is then ``V_recorded - K_e * I``. Badel et al. (2008, J Neurophysiol 99:656) use the
same idea for the dynamic I-V curve.

``ts.fit``'s staged fits regress a short electrode kernel together with the membrane (a few current taps),
so they do not need this step; it is here for analyses of the voltage itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import curve_fit

from tidesim.core.errors import TidesimError
from tidesim.datasets.recording import Recording

__all__ = ["ElectrodeKernel", "electrode_kernel", "compensate", "AECError"]


class AECError(TidesimError, ValueError):
    """The electrode kernel cannot be estimated from this recording (the message says why)."""


@dataclass
class ElectrodeKernel:
    """The estimated kernels, sampled at ``dt``: ``lags`` (samples; negative lags absorb a current channel
    recorded late), the whole kernel ``total`` and the electrode's part ``electrode`` (ohm per sample), the
    membrane's fitted ``R`` (ohm) and ``tau`` (s), and the fit's share of the voltage variance."""

    dt: float
    lags: np.ndarray
    total: np.ndarray
    electrode: np.ndarray
    R: float
    tau: float
    variance_explained: float

    @property
    def electrode_resistance(self) -> float:
        """The electrode kernel's integral (ohm): the resistance a bridge balance would remove."""
        return float(self.electrode.sum())


def electrode_kernel(rec: Recording, sweeps=None, length: float = 20e-3, lead: int = 3,
                     tail_start: float | None = None, exclude: tuple[float, float] = (2e-3, 20e-3)
                     ) -> ElectrodeKernel:
    """Estimate the electrode kernel from ``rec`` (a calibration recording with a fluctuating current, or
    frozen noise): ``V = sum_j K_j I[t - j] + V_0`` by least squares over lags ``-lead`` to ``length`` s,
    on samples at least ``exclude`` s (before, after) away from spikes; the membrane kernel is the
    exponential fitted to lags from ``tail_start`` (default ``max(3 dt, 0.5 ms)``) on."""
    sweeps = list(range(len(rec))) if sweeps is None else list(sweeps)
    dt = rec.dt
    m = int(round(length / dt))
    lags = np.arange(-lead, m + 1)
    rows, ys = [], []
    for k in sweeps:
        v, i = rec.voltage[k].numpy(), rec.current[k].numpy()
        keep = np.ones(len(v), bool)
        for t in rec.spike_times[k]:
            j = int(t / dt)
            keep[max(0, j - int(exclude[0] / dt)):j + int(exclude[1] / dt)] = False
        keep[:m] = False
        keep[len(v) - lead:] = False
        idx = np.nonzero(keep & np.isfinite(v))[0]
        rows.append(np.column_stack([i[idx - j] for j in lags] + [np.ones(len(idx))]))
        ys.append(v[idx])
    if not rows or sum(len(y) for y in ys) < 10 * len(lags):
        raise AECError(f"{rec.name}: too few samples away from spikes to estimate a {length * 1e3:g} ms kernel")
    X, y = np.concatenate(rows), np.concatenate(ys)
    if float(np.std(X[:, lead])) == 0.0:
        raise AECError(f"{rec.name}: the injected current does not fluctuate; the electrode kernel needs a "
                       "noisy calibration current")
    scale = np.abs(X).max(0)
    scale[scale == 0] = 1.0
    coef, *_ = np.linalg.lstsq(X / scale, y, rcond=None)
    coef = coef / scale
    total = coef[:-1]
    ve = 1.0 - float(np.var(y - X @ coef)) / float(np.var(y))
    start = max(3, int(round((tail_start if tail_start is not None else 0.5e-3) / dt)))
    tail = lags >= start
    (amp, tau), _ = curve_fit(lambda j, a, t: a * np.exp(-j * dt / t), lags[tail], total[tail],
                              p0=(max(float(total[tail][0]), 1e3), 10e-3), maxfev=10000)
    membrane = amp * np.exp(-lags * dt / tau)
    electrode = np.where(lags < start, total - np.where(lags >= 0, membrane, 0.0), 0.0)
    return ElectrodeKernel(dt, lags, total, electrode, float(amp * tau / dt), float(tau), ve)


def compensate(rec: Recording, kernel: ElectrodeKernel) -> Recording:
    """``rec`` with the electrode's response removed: ``V - K_e * I`` (a new Recording; ``rec`` is kept)."""
    if abs(kernel.dt - rec.dt) > 1e-12:
        raise AECError(f"the kernel was estimated at dt = {kernel.dt * 1e3:g} ms, {rec.name} is sampled at "
                       f"{rec.dt * 1e3:g} ms")
    v = rec.voltage.numpy().copy()
    i = rec.current.numpy()
    for lag, k in zip(kernel.lags, kernel.electrode):
        if k != 0.0:
            shifted = np.roll(i, lag, axis=1)
            if lag > 0:
                shifted[:, :lag] = i[:, :1]
            elif lag < 0:
                shifted[:, lag:] = i[:, -1:]
            v -= k * shifted
    out = Recording(torch.tensor(v), rec.dt, rec.current, rec.spike_times, name=f"{rec.name} (AEC)",
                    annotations={**rec.annotations, "aec_electrode_resistance_ohm": kernel.electrode_resistance},
                    sweep_annotations=rec.sweep_annotations)
    return out
