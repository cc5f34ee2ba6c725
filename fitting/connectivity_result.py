"""What a connectivity method found: signed weights, p-values, coupling time courses, and their
comparison with a known connectivity (ground truth from a simulator)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ConnectivityResult", "fdr_significant", "detection_scores"]


def fdr_significant(pvalues: np.ndarray, alpha: float) -> np.ndarray:
    """Benjamini-Hochberg at false-discovery rate ``alpha`` over the finite p-values (NaN: not tested)."""
    out = np.zeros(pvalues.shape, dtype=bool)
    finite = np.isfinite(pvalues)
    p = pvalues[finite]
    if p.size == 0:
        return out
    order = np.argsort(p)
    passed = p[order] <= alpha * np.arange(1, p.size + 1) / p.size
    k = np.nonzero(passed)[0].max() + 1 if passed.any() else 0
    hit = np.zeros(p.size, dtype=bool)
    hit[order[:k]] = True
    out[finite] = hit
    return out


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney: probability that a connected pair outranks an unconnected
    one, ties counted half)."""
    pos, neg = scores[positive], scores[~positive]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    ranks = pd.Series(np.concatenate([pos, neg])).rank().to_numpy()
    return float((ranks[:pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def detection_scores(score: np.ndarray, detected: np.ndarray, sign: np.ndarray, truth: np.ndarray) -> dict:
    """Precision, recall, ROC AUC and sign accuracy of detections against ``truth`` (signed or boolean
    ``[n, n]``, row = target), over the off-diagonal pairs that were tested."""
    truth = np.asarray(truth, dtype=float)
    if truth.shape != score.shape:
        raise ValueError(f"truth has shape {truth.shape}, the result {score.shape}")
    tested = np.isfinite(score) & ~np.eye(len(score), dtype=bool)
    real = truth[tested] != 0
    hit = detected[tested]
    tp = int((hit & real).sum())
    right_sign = np.sign(sign[tested][hit & real]) == np.sign(truth[tested][hit & real])
    return {"auc": _auc(score[tested], real), "precision": tp / hit.sum() if hit.sum() else float("nan"),
            "recall": tp / real.sum() if real.sum() else float("nan"), "detected": int(hit.sum()),
            "connected": int(real.sum()), "sign_accuracy": float(right_sign.mean()) if tp else float("nan")}


@dataclass
class ConnectivityResult:
    """Couplings between recorded units (row = target, column = source).

    ``weights[i, j]``: extra spikes of unit ``i`` caused by one spike of unit ``j`` within the
    coupling window (negative: spikes suppressed); for ``"glm"`` from the fitted coupling filter and
    ``i``'s mean rate, for ``"ccg"`` the correlogram's excess over its baseline. ``pvalues[i, j]``:
    test of "no coupling" (``"glm"``: Wald chi-square of the filter; ``"ccg"``: Poisson test of the
    window's count). NaN on the diagonal and for skipped units. ``filters[i, j, :]`` are coupling
    time courses at ``lags`` (s): log-rate change for ``"glm"``, correlogram excess (spikes per
    source spike per bin) for ``"ccg"``.
    """

    method: str
    unit_names: list[str]
    weights: np.ndarray
    pvalues: np.ndarray
    filters: np.ndarray
    lags: np.ndarray
    alpha: float = 0.05
    skipped: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    fit_time: float = float("nan")

    @property
    def n_units(self) -> int:
        """Number of units (rows and columns of the matrices)."""
        return len(self.unit_names)

    @property
    def significant(self) -> np.ndarray:
        """Boolean ``[n, n]``: couplings significant at false-discovery rate ``alpha`` (Benjamini-Hochberg
        over all tested pairs)."""
        return fdr_significant(self.pvalues, self.alpha)

    @property
    def score(self) -> np.ndarray:
        """``-log10(p)`` per pair: the ranking used for ROC curves."""
        with np.errstate(divide="ignore"):
            return -np.log10(np.clip(self.pvalues, 1e-300, 1))

    def compare(self, truth: Any) -> dict:
        """Precision, recall (of the FDR-significant pairs), ROC AUC of ``score`` and sign accuracy
        against a known connectivity ``truth`` (``[n, n]`` weights or booleans, row = target)."""
        return detection_scores(self.score, self.significant, self.weights, np.asarray(truth))

    def to_dataframe(self) -> pd.DataFrame:
        """One row per ordered pair: target, source, weight, p-value, significant, sign."""
        n = self.n_units
        tgt, src = np.nonzero(~np.eye(n, dtype=bool))
        sig = self.significant
        return pd.DataFrame({
            "target": [self.unit_names[i] for i in tgt], "source": [self.unit_names[j] for j in src],
            "weight": self.weights[tgt, src], "pvalue": self.pvalues[tgt, src], "significant": sig[tgt, src],
            "sign": np.where(sig[tgt, src], np.where(self.weights[tgt, src] > 0, "excitatory", "inhibitory"), ""),
        })

    def plot(self, ax=None, pairs: int = 0):
        """Heat map of the weights with significant pairs circled; with ``pairs > 0`` also the coupling
        time courses of the ``pairs`` most significant couplings. Returns the figure."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, axes = plt.subplots(1, 2 if pairs else 1, figsize=(10 if pairs else 5, 4), squeeze=False)
            ax, ax2 = axes[0, 0], (axes[0, 1] if pairs else None)
        else:
            fig, ax2 = ax.figure, None
        lim = np.nanmax(np.abs(self.weights)) if np.isfinite(self.weights).any() else 1.0
        im = ax.imshow(self.weights, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ti, sj = np.nonzero(self.significant)
        ax.scatter(sj, ti, s=30, facecolors="none", edgecolors="k", linewidths=0.8)
        ax.set(xlabel="source unit", ylabel="target unit",
               title=f"{self.method}: weights (circled: FDR {self.alpha:g})")
        fig.colorbar(im, ax=ax, label="extra spikes per source spike")
        if ax2 is not None:
            order = np.argsort(np.nan_to_num(self.pvalues, nan=2).ravel())[:pairs]
            for flat in order:
                i, j = divmod(int(flat), self.n_units)
                pair = f"{self.unit_names[j]} -> {self.unit_names[i]}"
                ax2.plot(self.lags * 1e3, self.filters[i, j], label=pair)
            ax2.axhline(0, color="0.5", lw=0.5)
            ax2.set(xlabel="lag after source spike (ms)", ylabel="coupling", title="strongest couplings")
            ax2.legend(fontsize=7)
        return fig

    def __repr__(self) -> str:
        sig = self.significant
        w = self.weights[sig]
        return (f"ConnectivityResult({self.method!r}, units={self.n_units}, "
                f"significant={int(sig.sum())} (+{int((w > 0).sum())} / -{int((w < 0).sum())}) "
                f"at FDR {self.alpha:g}, skipped={len(self.skipped)})")
