"""How well spike timing is predicted: the field's measures, for single trials and repeated trials.

All times are seconds. A "trial set" is a list of spike-time arrays recorded (or simulated) with the same
stimulus; measures that compare a model with data take the data's repeats and the model's runs.

- :func:`coincidence_factor` (Kistler et al. 1997; Jolivet et al. 2008): coincidences within ``±delta``
  beyond what a Poisson train at the model's rate would reach by chance. The 2007 competition used
  ``delta = 2 ms``; 4 ms is common for in-vitro step data.
- :func:`intrinsic_reliability`: the coincidence factor between repeats of the data (Jolivet 2008), the
  most any model can be expected to reach.
- :func:`normalized_gamma`: the model's mean coincidence factor against the data's repeats divided by the
  intrinsic reliability (the competition's score; about 0.7-0.8 for the best models there).
- :func:`md_star`: Naud et al. (2011)'s Md*, a similarity of PSTHs with an unbiased estimate of the
  data's self-similarity (the Kistler window, as in Pozzorini et al. 2015 and the GIFFittingToolbox).
- :func:`psth_explained_variance`: 1 - Var(PSTH_data - PSTH_model) / Var(PSTH_data) with PSTHs in
  10 ms bins (the "explained variance" of Teeter et al. 2018, Nat Commun 9:709).

elephant has none of these (its synchrony and dissimilarity measures answer other questions), so they
are written here from the papers' definitions; the tests check them on hand-computed cases.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

__all__ = ["coincidences", "coincidence_factor", "intrinsic_reliability", "normalized_gamma", "md_star",
           "psth_explained_variance", "psth"]


def _train(x) -> np.ndarray:
    return np.sort(np.asarray(x, dtype=float).ravel())


def coincidences(data: Sequence[float], model: Sequence[float], delta: float) -> int:
    """Number of model spikes within ``±delta`` (s) of a data spike, each spike used at most once
    (greedy matching in time order, as Kistler et al. 1997 count them)."""
    td, tm = _train(data), _train(model)
    i = j = count = 0
    while i < len(td) and j < len(tm):
        if abs(td[i] - tm[j]) <= delta + 1e-12:
            count += 1
            i += 1
            j += 1
        elif tm[j] < td[i]:
            j += 1
        else:
            i += 1
    return count


def coincidence_factor(data: Sequence[float], model: Sequence[float], duration: float, delta: float = 4e-3
                       ) -> float:
    """Coincidence factor Gamma of one model train against one data train over ``duration`` s.

    Gamma = (N_coinc - <N_coinc>) / (N_data + N_model)/2 / (1 - 2 nu delta), where nu is the model's rate,
    <N_coinc> = 2 nu delta N_data the coincidences a Poisson train at that rate makes by chance
    (Kistler et al. 1997, J Neurosci 17:11; Jolivet et al. 2008, Biol Cybern 99:417). 1 is a perfect match,
    0 chance. NaN when both trains are empty, or when 2 nu delta >= 1 (above 1/(2 delta), 125 Hz at 4 ms,
    chance coincidences fill the window and Gamma is undefined: use a smaller ``delta``).

    brian2modelfitting's GammaFactor differs in two details: it matches each data spike to its nearest
    model spike (a model spike may count twice) and takes nu from the data.
    """
    td, tm = _train(data), _train(model)
    if len(td) + len(tm) == 0:
        return float("nan")
    nu = len(tm) / duration
    norm = 1.0 - 2.0 * nu * delta
    if norm <= 0:
        return float("nan")
    expected = 2.0 * nu * delta * len(td)
    return float((coincidences(td, tm, delta) - expected) / (0.5 * (len(td) + len(tm))) / norm)


def intrinsic_reliability(trials: Sequence[Sequence[float]], duration: float, delta: float = 4e-3) -> float:
    """Mean coincidence factor over all ordered pairs of repeats of the data (Jolivet et al. 2008): the
    reliability of the cell itself. NaN with fewer than two repeats."""
    trials = [_train(t) for t in trials]
    values = [coincidence_factor(a, b, duration, delta) for a, b in itertools.permutations(trials, 2)]
    return float(np.nanmean(values)) if values and not np.all(np.isnan(values)) else float("nan")


def normalized_gamma(data_trials: Sequence[Sequence[float]], model_trials: Sequence[Sequence[float]],
                     duration: float, delta: float = 4e-3) -> dict[str, float]:
    """The model's coincidence factor with the data, relative to the data's own reliability.

    Returns ``gamma`` (mean over every model run x data repeat), ``reliability``
    (:func:`intrinsic_reliability`) and ``normalized`` (``gamma / reliability``, the 2007 competition's
    score; NaN when the reliability is not positive).
    """
    g = [coincidence_factor(d, m, duration, delta) for d in data_trials for m in model_trials]
    gamma = float(np.nanmean(g)) if g and not np.all(np.isnan(g)) else float("nan")
    r = intrinsic_reliability(data_trials, duration, delta)
    return {"gamma": gamma, "reliability": r, "normalized": gamma / r if r > 0 else float("nan")}


def _binary(trains: Sequence[Sequence[float]], duration: float, dt: float) -> np.ndarray:
    n = int(round(duration / dt))
    out = np.zeros((len(trains), n))
    for k, t in enumerate(trains):
        idx = np.clip(np.floor(_train(t) / dt + 1e-9).astype(int), 0, n - 1)
        np.add.at(out[k], idx, 1.0)
    return out


def md_star(data_trials: Sequence[Sequence[float]], model_trials: Sequence[Sequence[float]], duration: float,
            delta: float = 4e-3, dt: float = 1e-4) -> float:
    """Md* (Naud, Gerhard, Mensi & Gerstner 2011, Neural Comput 23:3016): 2<D, M> / (<D, D>* + <M, M>*),
    where D and M are the mean spike trains (on a ``dt`` grid) of the data repeats and the model runs,
    <a, b> counts pairs of spikes within ``±delta`` (the Kistler window), and * marks unbiased estimates
    from distinct pairs of trials (a set of one trial uses itself). 1 is a perfect prediction; it needs at
    least two data repeats."""
    if len(data_trials) < 2:
        raise ValueError("Md* needs at least two repeats of the data (it estimates their self-similarity)")
    D, M = _binary(data_trials, duration, dt), _binary(model_trials, duration, dt)
    width = 2 * int(round(delta / dt)) + 1
    window = np.ones(width)

    def dot(a, b):
        return float(np.dot(np.convolve(a, window, mode="same"), b))

    def self_similarity(X):
        if len(X) == 1:
            return dot(X[0], X[0])
        pairs = [dot(X[i], X[j]) for i, j in itertools.combinations(range(len(X)), 2)]
        return float(np.mean(pairs))

    cross = dot(D.mean(0), M.mean(0))
    denominator = self_similarity(D) + self_similarity(M)
    return 2.0 * cross / denominator if denominator > 0 else float("nan")


def psth(trials: Sequence[Sequence[float]], duration: float, bin_size: float = 10e-3) -> np.ndarray:
    """Peri-stimulus time histogram: mean spike count per trial in each ``bin_size`` (s) bin, in Hz."""
    edges = np.arange(0.0, duration + 1e-12, bin_size)
    counts = np.array([np.histogram(_train(t), bins=edges)[0] for t in trials], dtype=float)
    return counts.mean(0) / bin_size


def psth_explained_variance(data_trials: Sequence[Sequence[float]], model_trials: Sequence[Sequence[float]],
                            duration: float, bin_size: float = 10e-3) -> float:
    """Explained variance of the data's PSTH by the model's: 1 - Var(PSTH_d - PSTH_m) / Var(PSTH_d), PSTHs
    in ``bin_size`` bins (10 ms in Teeter et al. 2018). 1 is perfect, 0 no better than the mean rate."""
    d, m = psth(data_trials, duration, bin_size), psth(model_trials, duration, bin_size)
    var = float(np.var(d))
    return 1.0 - float(np.var(d - m)) / var if var > 0 else float("nan")
