"""Stage b of a staged fit: the threshold and its escape noise, by maximum likelihood of the recorded spikes.

With the sub-threshold model of stage a driven by the recorded current and reset at the recorded spikes,
the model's voltage ``V`` is known at every step. The escape rate ``lambda0 exp((V - VT_star - gamma)/DV)``
with the moving threshold ``gamma = sum_k a_k sum_spikes exp(-(t - t_spike)/tau_k)`` (fixed ``tau_k``) has
a log that is linear in ``(1/DV, log lambda0 - VT_star/DV, -a_k/DV)``; the probability of the recorded
spike train (a spike in a step with probability ``1 - exp(-rate dt)``, no spike otherwise, no test while
refractory) is then log-concave in those coefficients, so Newton's method finds the one maximum
(Pozzorini et al. 2015, PLoS Comput. Biol. 11:e1004275; Paninski 2004, Network 15:243). Extra feature
columns (a voltage-dependent threshold) enter the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from tidesim.fitting.data import FitData
from tidesim.fitting.errors import FitError
from tidesim.fitting.subthreshold import exp_basis, spike_steps

__all__ = ["ThresholdFit", "fit_threshold"]


@dataclass
class ThresholdFit:
    """What stage b estimated (SI) and the likelihood it reached."""

    VT_star: float  # threshold at rest (V)
    DV: float  # escape-noise sharpness (V)
    lambda0: float  # escape rate at threshold (Hz), fixed
    gamma_taus: tuple[float, ...]
    a_gamma: np.ndarray  # threshold jumps (V)
    extra: dict[str, float]  # coefficients of extra features, in threshold units (V per feature unit)
    log_likelihood: float  # nats
    log_likelihood_poisson: float  # a constant rate's, the baseline
    n_spikes: int
    iterations: int

    @property
    def bits_per_spike(self) -> float:
        """Information gain over a constant rate (bits per recorded spike)."""
        return (self.log_likelihood - self.log_likelihood_poisson) / max(self.n_spikes, 1) / np.log(2)


def _design(data: FitData, voltages: Sequence[np.ndarray], n_ref: int, taus: Sequence[float],
            extra: dict[str, Sequence[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Features ``[V, 1, gamma basis..., extra...]`` and spike indicators of every tested step."""
    rows, ys = [], []
    for s, steps in enumerate(spike_steps(data)):
        n = data.n_steps
        basis = exp_basis(steps, n, taus, data.dt)
        spk = np.zeros(n)
        spk[steps] = 1.0
        tested = np.ones(n - 1, bool)
        for i in steps:  # no threshold test while refractory
            tested[i + 1:min(n - 1, i + n_ref)] = False
        # the test at step i sees the updated state (sample i + 1) before this step's own jump
        feats = [voltages[s][1:], np.ones(n - 1)] + [b[1:] - spk[:-1] for b in basis]
        feats += [np.asarray(x[s])[1:] for x in extra.values()]
        rows.append(np.column_stack(feats)[tested])
        ys.append(spk[:-1][tested])
    return np.concatenate(rows), np.concatenate(ys)


def _newton(X: torch.Tensor, y: torch.Tensor, dt: float, theta: torch.Tensor, penalty: torch.Tensor,
            max_iter: int = 100) -> tuple[torch.Tensor, float, int]:
    """Maximise the Bernoulli (complementary log-log) log-likelihood minus ``sum(penalty * theta**2)/2`` by
    damped Newton steps."""

    def loglik(th):
        u = torch.exp(X @ th) * dt
        return float((y * torch.log(-torch.expm1(-u)).clamp_min(-700) - (1 - y) * u).sum()
                     - 0.5 * (penalty * th**2).sum())

    value = loglik(theta)
    for it in range(max_iter):
        u = (torch.exp(X @ theta) * dt).clamp(1e-300, 700)
        em1 = torch.expm1(u)
        g1 = torch.where(y > 0.5, u / em1, -u)  # d loglik / d eta
        h1 = torch.where(y > 0.5, u * (em1 - u * (em1 + 1)) / em1**2, -u)  # second derivative (< 0)
        grad = X.T @ g1 - penalty * theta
        hess = (X.T * h1) @ X - torch.diag(penalty)
        step = torch.linalg.solve(hess - 1e-10 * torch.eye(len(theta), dtype=X.dtype), grad)
        t = 1.0
        while t > 1e-6:  # backtracking: the objective must rise
            candidate = theta - t * step
            new = loglik(candidate)
            if np.isfinite(new) and new >= value - 1e-12:
                break
            t *= 0.5
        theta, improvement, value = candidate, new - value, new
        if abs(improvement) < 1e-9 * max(1.0, abs(value)):
            return theta, value, it + 1
    return theta, value, max_iter


def fit_threshold(data: FitData, voltages: Sequence[np.ndarray], t_ref: float, gamma_taus: Sequence[float] = (),
                  lambda0: float = 1000.0, extra: dict[str, Sequence[np.ndarray]] | None = None,
                  ridge: float = 1.0) -> ThresholdFit:
    """Stage b: ``VT_star``, ``DV`` and the threshold jumps ``a_gamma`` (time constants ``gamma_taus``, s)
    from the recorded spikes, given the model's voltage per sweep (stage a's, recorded spikes fed back).

    ``lambda0`` (Hz) is the escape rate at threshold (fixed: it and ``VT_star`` trade off exactly);
    ``extra``: more threshold features per sweep (arrays like the voltages), fitted with them;
    ``ridge``: a Gaussian prior on the threshold's spike-triggered components (on their coefficients with
    features scaled to [0, 1]): few spikes cannot pin down many time scales, and it keeps them small.
    """
    extra = dict(extra or {})
    n_ref = max(1, int(round(t_ref / data.dt)))
    n_spikes = int(sum(len(s) for s in spike_steps(data)))
    if n_spikes < 3:
        raise FitError(f"stage b fits the threshold to the recorded spikes, and {', '.join(data.names[:3])} "
                       f"hold {n_spikes}; fit sweeps with spikes")
    X, y = _design(data, voltages, n_ref, gamma_taus, extra)
    scale = np.abs(X).max(0)
    scale[scale == 0] = 1.0
    Xt, yt = torch.tensor(X / scale), torch.tensor(y)
    rate = max(float(yt.mean()), 1e-12) / data.dt
    theta = torch.zeros(X.shape[1], dtype=torch.float64)
    theta[1] = np.log(rate) * scale[1]  # a constant rate: the starting point, and the baseline
    base = float(np.log(-np.expm1(-rate * data.dt)) * y.sum() - rate * data.dt * (len(y) - y.sum()))
    penalty = torch.zeros(X.shape[1], dtype=torch.float64)
    penalty[2:2 + len(gamma_taus)] = ridge
    theta, value, iterations = _newton(Xt, yt, data.dt, theta, penalty)
    coef = theta.numpy() / scale
    if not coef[0] > 0:
        raise FitError("stage b found no rise of the firing probability with the voltage (1/DV <= 0): the "
                       "model's voltage does not explain when the cell fires; check stage a's fit")
    DV = 1.0 / coef[0]
    k = len(gamma_taus)
    return ThresholdFit(VT_star=float((np.log(lambda0) - coef[1]) * DV), DV=float(DV), lambda0=float(lambda0),
                        gamma_taus=tuple(float(t) for t in gamma_taus), a_gamma=-coef[2:2 + k] * DV,
                        extra={name: float(-c * DV) for name, c in zip(extra, coef[2 + k:])},
                        log_likelihood=value, log_likelihood_poisson=base, n_spikes=n_spikes,
                        iterations=iterations)
