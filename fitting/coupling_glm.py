"""Coupled point-process model of a recorded population, fitted by maximum likelihood.

Each unit ``i`` is an escape-noise neuron whose spike count in a bin is Poisson with rate
``exp(eta_i(t))``, ``eta_i = drift_i(t) + (own spike history) + sum_j (coupling filter j->i) * spikes_j``,
with the recorded spikes fed back (Truccolo et al. 2005, J. Neurophysiol. 93:1074; Pillow et al. 2008,
Nature 454:995). Filters are sums of raised-cosine bumps, so the log-likelihood is concave in the
coefficients. All units are fitted at once in torch: one feature matrix of filtered spike trains is
shared by every target.

The likelihood is ``sum_spikes eta - sum_bins exp(eta)``. Its spike term is exact and computed once
(spike-triggered sums of the features). Its integral term runs over every bin, or, for long
recordings, over a uniform random subset of bins weighted by the inverse sampling fraction: an
unbiased estimate whose sampling error is reported (``integral_fraction``) and kept well below the
Poisson noise of the spike term by the default size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import chi2

from tidesim.fitting.coupling_data import PopulationBins, filtered_trace
from tidesim.fitting.errors import FitError

__all__ = ["GLMDesign", "GLMFit", "build_design", "fit_glm"]


@dataclass
class GLMDesign:
    """Features at the integral bins and their spike-triggered sums.

    ``Xc [S, n, K]`` coupling features, ``Xh [n, S, Kh]`` history features (unit-major: each unit
    reads its own), ``Z [S, m]`` drift (hat functions over the session, summing to 1);
    ``Sc [n_tgt, n_src, K]``, ``Sh [n, Kh]``,
    ``Sz [n, m]``: their sums over each target's spikes; ``scale``: bins per integral bin.
    """

    Xc: np.ndarray
    Xh: np.ndarray
    Z: np.ndarray
    Sc: np.ndarray
    Sh: np.ndarray
    Sz: np.ndarray
    counts: np.ndarray
    n_bins: int
    scale: float


Basis = tuple[np.ndarray, np.ndarray]  # (lags in bins, bumps [k, lag])


def build_design(pb: PopulationBins, coupling: Basis, history: Basis,
                 drift: float | None, max_bins: int, rng: np.random.Generator) -> GLMDesign:
    """Filtered spike trains at the integral bins and at every spike (see :class:`GLMDesign`)."""
    valid = np.nonzero(pb.valid)[0]
    rows = valid if valid.size <= max_bins else np.sort(rng.choice(valid, size=max_bins, replace=False))
    n = pb.n_units
    (lag_c, basis_c), (lag_h, basis_h) = coupling, history
    Xc = np.empty((rows.size, n, len(basis_c)), dtype=np.float32)
    Xh = np.empty((n, rows.size, len(basis_h)), dtype=np.float32)
    Sc = np.zeros((n, n, len(basis_c)))
    Sh = np.zeros((n, len(basis_h)))
    for j in range(n):
        own = pb.unit_bins(j)
        for k, kern in enumerate(basis_c):
            trace = filtered_trace(own, pb.n_bins, lag_c, kern)
            Xc[:, j, k] = trace[rows]
            Sc[:, j, k] = np.bincount(pb.spike_units, weights=trace[pb.spike_bins], minlength=n)
        for k, kern in enumerate(basis_h):
            trace = filtered_trace(own, pb.n_bins, lag_h, kern)
            Xh[j, :, k] = trace[rows]
            Sh[j, k] = trace[own].sum()
    session = np.cumsum(pb.valid) * pb.bin_size  # recorded time, trials end to end (s)
    end = session[-1] if session.size else 0.0
    Z = _hats(session[rows], end, drift)
    Sz = _hat_sums(session[pb.spike_bins], pb.spike_units, n, end, drift, Z.shape[1])
    return GLMDesign(Xc, Xh, Z.astype(np.float32), Sc, Sh, Sz, pb.counts.astype(float), valid.size,
                     valid.size / max(rows.size, 1))


def _hats(t: np.ndarray, total: float, spacing: float | None) -> np.ndarray:
    """Piecewise-linear hat functions with knots every ``spacing`` s over ``[0, total]`` (one column,
    a constant, without drift): a slowly varying baseline rate per unit."""
    if spacing is None or total <= spacing:
        return np.ones((t.size, 1))
    knots = np.linspace(0.0, total, int(np.ceil(total / spacing)) + 1)
    width = knots[1] - knots[0]
    return np.clip(1 - np.abs(t[:, None] - knots[None, :]) / width, 0, None)


def _hat_sums(t: np.ndarray, units: np.ndarray, n: int, total: float, spacing: float | None, m: int) -> np.ndarray:
    """``[n, m]``: each unit's sum of the hat functions at its spike times, without the dense
    ``[spikes, m]`` matrix (each time touches at most two hats)."""
    if m == 1:
        return np.bincount(units, minlength=n).astype(float)[:, None]
    width = total / (m - 1)
    left = np.minimum((t / width).astype(np.int64), m - 2)
    frac = t / width - left
    out = np.bincount(units * m + left, weights=1 - frac, minlength=n * m)
    out += np.bincount(units * m + left + 1, weights=frac, minlength=n * m)
    return out.reshape(n, m)


@dataclass
class GLMFit:
    """Fitted coefficients (numpy) and their Wald statistics.

    ``W [n_src, K, n_tgt]`` coupling coefficients (0 on the diagonal: a unit's own history is
    ``H [n, Kh]``), ``C [m, n]`` drift; ``wald [n_tgt, n_src]`` chi-square statistics with ``K``
    degrees of freedom and ``pvalues``; ``mean_rate [n]`` spikes per bin.
    """

    W: np.ndarray
    H: np.ndarray
    C: np.ndarray
    wald: np.ndarray
    pvalues: np.ndarray
    mean_rate: np.ndarray
    log_likelihood: float
    iterations: int
    fisher: str


def fit_glm(design: GLMDesign, ridge: float = 1e-3, group_l1: float = 0.0, max_iter: int = 500,
            tol: float = 1e-7) -> GLMFit:
    """Maximum (penalised) likelihood of all units at once, then Wald tests of each coupling.

    ``ridge``: Gaussian prior on every filter coefficient (per spike of the target, so its weight
    does not depend on the recording's length); ``group_l1``: group lasso on each coupling filter
    (proximal gradient after the smooth fit), weighted per target by the square root of its spike
    count on standardised features, so that a filter is set to exactly zero when its score
    statistic (about the Wald chi-square) is below ``group_l1**2``. The features are divided by
    their root mean square in place (L-BFGS converges in far fewer steps on standardised
    features); results are in the original coefficients, and the Wald statistics do not depend
    on the scaling.
    """
    n, K = design.Sc.shape[1], design.Sc.shape[2]
    total = float(design.counts.sum())
    if total == 0:
        raise FitError("no spikes to fit")
    sc, sh = _standardise(design)
    t = _Tensors(design)
    params = _initial(design, n, K)
    counts = torch.from_numpy(design.counts)
    penalty = (ridge * counts[None, :] / torch.from_numpy(sc.reshape(-1, 1)) ** 2,
               ridge * counts[:, None] / torch.from_numpy(sh) ** 2)
    # coarse to fine: first on a systematic subset of the integral bins (cheap steps, reweighted so the
    # objective stays unbiased), then on all of them from there, which takes few steps
    stride = t.Xc.shape[0] // COARSE_BINS
    iterations = 0
    if stride >= 4:
        iterations = _lbfgs(_objective(t.every(stride), n, K, penalty, total), params, max_iter, 1e-5)
    objective = _objective(t, n, K, penalty, total)
    iterations += _lbfgs(objective, params, max_iter, tol)
    if group_l1 > 0:
        # per target, scaled so that a filter is zero when its score statistic is below group_l1**2
        strength = group_l1 * torch.sqrt(counts) / total
        iterations += _proximal(objective, params, strength, n, K)
    with torch.no_grad():
        final = -float(objective(*params)) * total
        W, H, C = (p.detach().double() for p in params)
        W = W.reshape(n, K, n) * _mask(n, K).reshape(n, K, n)
        eta = t.eta(W.reshape(n * K, n), H, C)
    wald, kind = _wald(t, W, eta, design.scale, penalty)
    pvalues = chi2.sf(wald, K)
    np.fill_diagonal(pvalues, np.nan)
    mean_rate = design.counts / design.n_bins
    W_orig = W.numpy() / sc[:, :, None]
    return GLMFit(W_orig, H.numpy() / sh, C.numpy(), wald, pvalues, mean_rate, final, int(iterations), kind)


COARSE_BINS = 150_000  # integral bins of the coarse first pass


def _lbfgs(objective, params: list[torch.Tensor], max_iter: int, tol: float) -> int:
    """Minimise ``objective(*params)`` in place with L-BFGS (strong Wolfe line search); its iterations."""
    opt = torch.optim.LBFGS(params, lr=1, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-10,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = objective(*params)
        loss.backward()
        return loss

    opt.step(closure)
    return int(opt.state[opt._params[0]].get("n_iter", 0))


def _standardise(d: GLMDesign) -> tuple[np.ndarray, np.ndarray]:
    """Divide coupling and history features (and their spike-triggered sums) by their root mean square
    over the integral bins, in place; returns the scales ``[n, K]`` and ``[n, Kh]``."""
    sc = np.sqrt(np.mean(np.square(d.Xc, dtype=np.float64), axis=0)).clip(1e-6)
    sh = np.sqrt(np.mean(np.square(d.Xh, dtype=np.float64), axis=1)).clip(1e-6)
    d.Xc /= sc.astype(np.float32)
    d.Xh /= sh.astype(np.float32)[:, None, :]
    d.Sc /= sc[None]
    d.Sh /= sh
    return sc, sh


class _Tensors:
    """The design as torch tensors, and the linear predictor ``eta [S, n]``."""

    def __init__(self, d: GLMDesign):
        self.Xc = torch.from_numpy(d.Xc.reshape(d.Xc.shape[0], -1))
        self.Xh = torch.from_numpy(d.Xh)
        self.Z = torch.from_numpy(d.Z)
        self.Sc = torch.from_numpy(d.Sc.reshape(d.Sc.shape[0], -1).T.copy())  # [n_src*K, n_tgt]
        self.Sh, self.Sz = torch.from_numpy(d.Sh), torch.from_numpy(d.Sz.T.copy())
        self.scale = d.scale

    def every(self, stride: int) -> "_Tensors":
        """The same design on every ``stride``-th integral bin, reweighted (a copy of those rows only)."""
        sub = object.__new__(_Tensors)
        sub.__dict__.update(self.__dict__)
        sub.Xc, sub.Z = self.Xc[::stride].contiguous(), self.Z[::stride].contiguous()
        sub.Xh = self.Xh[:, ::stride].contiguous()
        sub.scale = self.scale * self.Xc.shape[0] / sub.Xc.shape[0]
        return sub

    def eta(self, W: torch.Tensor, H: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
        """Linear predictor: float32 products (the features are float32), summed in float64."""
        own = torch.bmm(self.Xh, H.float().unsqueeze(-1)).squeeze(-1).T + (self.Z @ C.float())
        return torch.addmm(own, self.Xc, W.float()).double()


def _mask(n: int, K: int) -> torch.Tensor:
    """1 where source != target: a unit's own spikes enter through its history filter only."""
    return (1 - torch.eye(n, dtype=torch.float64)).repeat_interleave(K, dim=0)


def _initial(d: GLMDesign, n: int, K: int) -> list[torch.Tensor]:
    rate = np.maximum(d.counts, 0.5) / d.n_bins
    C = np.tile(np.log(rate), (d.Z.shape[1], 1))
    W = torch.zeros(n * K, n, dtype=torch.float64, requires_grad=True)
    H = torch.zeros(n, d.Xh.shape[2], dtype=torch.float64, requires_grad=True)
    return [W, H, torch.tensor(C, dtype=torch.float64, requires_grad=True)]


def _objective(t: _Tensors, n: int, K: int, penalty: tuple[torch.Tensor, torch.Tensor], total: float):
    mask = _mask(n, K)
    pen_w, pen_h = penalty

    def negative_log_likelihood(W, H, C):
        Wm = W * mask
        eta = t.eta(Wm, H, C)
        spike_term = (t.Sc * Wm).sum() + (t.Sh * H).sum() + (t.Sz * C).sum()
        integral = t.scale * torch.exp(eta).sum()
        prior = 0.5 * ((pen_w * Wm ** 2).sum() + (pen_h * H ** 2).sum())
        return (integral - spike_term + prior) / total

    return negative_log_likelihood


def _proximal(objective, params, strength: torch.Tensor, n: int, K: int, steps: int = 200) -> int:
    """Group lasso by proximal gradient (FISTA with backtracking) on the coupling groups."""
    W, H, C = params
    step = 1.0
    prev = [p.detach().clone() for p in params]
    for it in range(1, steps + 1):
        momentum = [(p.detach() + (it - 2) / (it + 1) * (p.detach() - q)) if it > 1 else p.detach().clone()
                    for p, q in zip(params, prev)]
        y = [m.requires_grad_(True) for m in momentum]
        f = objective(*y)
        grads = torch.autograd.grad(f, y)
        while True:
            cand = [m.detach() - step * g for m, g in zip(y, grads)]
            norms = cand[0].reshape(n, K, n).norm(dim=1, keepdim=True)
            shrink = torch.clamp(1 - step * strength / norms.clamp_min(1e-300), min=0)
            cand[0] = (cand[0].reshape(n, K, n) * shrink).reshape(n * K, n)
            diff = [c - m.detach() for c, m in zip(cand, y)]
            linear = sum((g * d).sum() for g, d in zip(grads, diff))
            bound = f + linear + sum((d ** 2).sum() for d in diff) / (2 * step)
            if objective(*cand) <= bound + 1e-12 or step < 1e-8:
                break
            step *= 0.5
        change = max(float((c - p.detach()).abs().max()) for c, p in zip(cand, params))
        prev = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, c in zip(params, cand):
                p.copy_(c)
        if change < 1e-7:
            return it
    return steps


Penalty = tuple[torch.Tensor, torch.Tensor]  # prior precision of W [n_src*K, n_tgt] and of H [n, Kh]


def _wald(t: _Tensors, W: torch.Tensor, eta: torch.Tensor, scale: float, penalty: Penalty
          ) -> tuple[np.ndarray, str]:
    """Wald chi-square of each coupling filter from the penalised Fisher information.

    Up to 100 units: the full information of each target's coefficients (coupling, history and
    drift) from at most 50,000 integral bins, so correlated sources share their evidence. Larger
    populations: each filter's own block of the information with the intercept's share removed
    (faster; optimistic where sources' spike trains are strongly correlated). ``.fisher`` in the
    result says which was used. When the integral term ran on a subset of the bins, its sampling
    variance is added (sandwich ``I^-1 (I + V) I^-1``), so p-values do not overstate the evidence.
    """
    n, K, _ = W.shape
    rate = torch.exp(eta) * scale  # expected spikes that each integral bin stands for
    # variance of the subsampled integral's gradient (simple random sampling without replacement)
    noise = rate ** 2 * (1 - 1 / scale)
    if n <= 100:
        return _wald_full(t, W, rate, noise, penalty), "full"
    info = _block_information(t, rate, n, K, centre=True)
    info = info + torch.diag_embed(penalty[0].reshape(n, K, n).permute(2, 0, 1))
    w = W.permute(2, 0, 1).unsqueeze(-1)  # [tgt, src, K, 1]
    u = info @ w
    spread = info + _block_information(t, noise, n, K, centre=False)
    wald = (u * torch.linalg.solve(spread, u)).sum((-1, -2)).numpy()  # w' I (I + V)^-1 I w
    np.fill_diagonal(wald, np.nan)
    return wald, "block"


def _block_information(t: _Tensors, weight: torch.Tensor, n: int, K: int, centre: bool) -> torch.Tensor:
    """``[tgt, src, K, K]``: sum over integral bins of ``weight[:, tgt]`` times the outer product of
    ``src``'s features; with ``centre``, minus the intercept's share (Schur complement: the features
    are positive, so the baseline rate explains much of their mean)."""
    Xc = t.Xc.reshape(-1, n, K)
    info = torch.empty(n, n, K, K, dtype=torch.float64)
    for k in range(K):  # one K x K entry at a time keeps memory at [S, n]
        for m in range(K):
            info[:, :, k, m] = (weight.T.float() @ (Xc[:, :, k] * Xc[:, :, m])).double()
    if centre:
        first = (weight.T.float() @ t.Xc).double().reshape(n, n, K)
        info = info - first[..., :, None] * first[..., None, :] / weight.sum(0).double()[:, None, None, None]
    return info


def _wald_full(t: _Tensors, W: torch.Tensor, rate: torch.Tensor, noise: torch.Tensor,
               penalty: Penalty) -> np.ndarray:
    n, K, _ = W.shape
    S = t.Xc.shape[0]
    take = torch.from_numpy(np.linspace(0, S - 1, min(S, 50_000)).astype(np.int64))
    factor = S / take.numel()
    Xc, Xh, Z = t.Xc[take].double(), t.Xh[:, take].double(), t.Z[take].double()
    subsampled = bool((noise > 0).any())
    wald = np.full((n, n), np.nan)
    keep = torch.ones(n * K, dtype=torch.bool)
    for i in range(n):
        keep[:] = True
        keep[i * K:(i + 1) * K] = False
        n_keep = int(keep.sum())
        A = torch.cat([Xc[:, keep], Xh[i], Z], dim=1)
        info = (A * (rate[take, i] * factor)[:, None]).T @ A
        n_pen = n_keep + Xh.shape[2]
        info[:n_pen, :n_pen] += torch.diag(torch.cat([penalty[0][keep, i], penalty[1][i]]))
        inverse = torch.linalg.pinv(info, hermitian=True)
        if subsampled:
            spread = (A * (noise[take, i] * factor)[:, None]).T @ A
            inverse = inverse + inverse @ spread @ inverse
        cov = inverse[:n_keep, :n_keep]
        w = W[:, :, i].reshape(-1)[keep]
        for pos, j in enumerate(j for j in range(n) if j != i):
            sl = slice(pos * K, (pos + 1) * K)
            wj = w[sl]
            wald[i, j] = float(wj @ torch.linalg.solve(cov[sl, sl], wj))
    return wald
