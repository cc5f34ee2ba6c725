"""Statistics of a recorded population, the summaries a network model is fitted to (elephant).

The quantities labs report for a population of recorded units (e.g. Brunel 2000 for the phase
diagram's states; Bellec et al. 2021, "Fitting summary statistics of neural data with a
differentiable spiking network simulator", NeurIPS, for their use as a fitting target): the
distribution of firing rates, of ISI irregularity and of count variability, the distribution of
pairwise spike-count correlations, and the spectrum of the population activity.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import numpy as np
import pandas as pd
import quantities as pq
from elephant import utils as elephant_utils
from elephant.conversion import BinnedSpikeTrain
from elephant.spectral import welch_psd
from elephant.spike_train_correlation import correlation_coefficient
from elephant.statistics import cv, isi, mean_firing_rate

from tidesim.analysis.spiketrains import as_spiketrains

__all__ = ["POPULATION_STATISTICS", "population_statistics"]

#: name -> what it is (units). The order of :func:`population_statistics`' output.
POPULATION_STATISTICS = {
    "rate_mean": "mean firing rate over units (Hz)",
    "rate_sd": "standard deviation of the units' firing rates (Hz)",
    "cv_mean": "mean ISI coefficient of variation over units with >= 3 spikes (0 if none)",
    "cv_sd": "standard deviation of the units' ISI CV",
    "fano_mean": "mean over units of the spike-count Fano factor in windows of fano_window s",
    "corr_mean": "mean spike-count correlation over pairs of active units (bins of corr_bin s)",
    "corr_sd": "standard deviation of the pairwise spike-count correlations",
    "sync_chi": "synchrony chi (Golomb 2007): sqrt(var of the mean count / mean var of unit counts), corr_bin",
    "power_low": "fraction of the population activity's power spectrum at 1-30 Hz",
    "power_gamma": "fraction at 30-150 Hz",
    "power_fast": "fraction at 150-400 Hz",
}


def population_statistics(spikes: Any, t_start: float | None = None, t_stop: float | None = None,
                          corr_bin: float = 10e-3, fano_window: float = 0.1) -> pd.Series:
    """The statistics of :data:`POPULATION_STATISTICS` for a population's spike trains.

    ``spikes``: a :class:`~tidesim.datasets.SpikeData` (first trial), a network population's
    :class:`~tidesim.SimulationResult`, a neo Segment or a list of ``neo.SpikeTrain``. ``t_start``/
    ``t_stop`` (s) cut a window (e.g. after a simulation's warm-up). Rates, CV and correlations are
    elephant's (``mean_firing_rate``, ``cv`` of ``isi``, ``correlation_coefficient``); the spectrum is
    elephant's ``welch_psd`` of the summed population activity in 1 ms bins (2 Hz resolution).
    """
    trains = as_spiketrains(spikes)
    if not trains:
        raise ValueError("population_statistics needs at least one spike train")
    with _quiet_binning():
        return _statistics(trains, t_start, t_stop, corr_bin, fano_window)


@contextlib.contextmanager
def _quiet_binning():
    """elephant logs a warning each time it moves a spike that sits on a bin edge by rounding into the
    next bin; for statistics of many simulations that is noise, not news."""
    level = elephant_utils.logger.level
    elephant_utils.logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        elephant_utils.logger.setLevel(level)


def _statistics(trains: list, t_start, t_stop, corr_bin: float, fano_window: float) -> pd.Series:
    start = (trains[0].t_start.rescale("s") if t_start is None else t_start * pq.s)
    stop = (trains[0].t_stop.rescale("s") if t_stop is None else t_stop * pq.s)
    trains = [st.time_slice(start, stop) for st in trains]
    trains = [st.__class__(st.times, t_start=start, t_stop=stop) for st in trains]
    rates = np.array([float(mean_firing_rate(st).rescale("Hz")) for st in trains])
    cvs = np.array([cv(isi(st.magnitude)) for st in trains if len(st) >= 3])
    binned = BinnedSpikeTrain(trains, bin_size=corr_bin * pq.s)
    counts = binned.to_array().astype(float)
    active = counts.std(axis=1) > 0
    corr = (correlation_coefficient(binned[np.nonzero(active)[0]]) if active.sum() >= 2
            else np.full((2, 2), np.nan))
    pairs = corr[np.triu_indices(len(corr), 1)]
    window = BinnedSpikeTrain(trains, bin_size=fano_window * pq.s).to_array().astype(float)
    means = window.mean(axis=1)
    fano = window.var(axis=1)[means > 0] / means[means > 0]
    # Golomb 2007: 1/sqrt(n) for independent units, 1 for full synchrony
    chi = np.sqrt(counts.mean(0).var() / max(counts.var(axis=1).mean(), 1e-12))
    bands = _spectrum_fractions(trains)
    return pd.Series({
        "rate_mean": rates.mean(), "rate_sd": rates.std(),
        "cv_mean": cvs.mean() if cvs.size else 0.0, "cv_sd": cvs.std() if cvs.size else 0.0,
        "fano_mean": fano.mean() if fano.size else 0.0,
        "corr_mean": np.nanmean(pairs) if np.isfinite(pairs).any() else 0.0,
        "corr_sd": np.nanstd(pairs) if np.isfinite(pairs).any() else 0.0,
        "sync_chi": chi, **bands,
    })[list(POPULATION_STATISTICS)]


def _spectrum_fractions(trains: list) -> dict[str, float]:
    activity = BinnedSpikeTrain(trains, bin_size=1 * pq.ms).to_array().sum(axis=0).astype(float)
    if activity.std() == 0 or activity.size < 500:
        return {"power_low": 0.0, "power_gamma": 0.0, "power_fast": 0.0}
    freqs, psd = welch_psd(activity - activity.mean(), frequency_resolution=2 * pq.Hz, fs=1000 * pq.Hz)
    freqs, psd = np.asarray(freqs), np.asarray(psd).ravel()
    total = psd[(freqs >= 1) & (freqs <= 400)].sum()
    band = {"power_low": (1, 30), "power_gamma": (30, 150), "power_fast": (150, 400)}
    return {k: float(psd[(freqs >= lo) & (freqs < hi)].sum() / total) for k, (lo, hi) in band.items()}
