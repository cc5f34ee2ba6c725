"""Spike trains of a recorded population made ready for coupling inference: checked, binned, and
filtered with the basis functions of the coupling and spike-history filters.

Everything a connectivity method needs from the data is computed here once: the binned spikes
(one bin axis; trials follow each other with an empty gap longer than any filter, so history
never reaches from one trial into the next), and the filtered spike trains (features) at chosen
bins. Checks name the unit and the time in seconds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import neo
import numpy as np

from tidesim.datasets.spikes import SpikeData
from tidesim.fitting.errors import FitError, FitWarning

__all__ = ["PopulationBins", "as_population", "bin_population", "raised_cosine_basis", "filtered_trace"]


def as_population(spikes: Any, t_stop: float | None = None) -> SpikeData:
    """A :class:`SpikeData` from what a lab has: ``SpikeData``, a ``neo.Block``/``Segment``, a list of
    ``neo.SpikeTrain`` or a list of arrays of spike times in seconds (then ``t_stop`` is required).

    Spike times outside ``[t_start, t_stop)``, repeated times within one unit (a sorting artefact)
    and trains of one population with different recording spans are refused, naming the unit.
    """
    if isinstance(spikes, SpikeData):
        data = spikes
        if t_stop is not None:
            notes = {k: v for k, v in data.annotations.items() if k != "t_stop_inferred"}
            data = SpikeData(data.trains, data.t_start, float(t_stop), data.unit_names, data.name, notes)
        elif data.annotations.get("t_stop_inferred"):
            raise FitError(f"{data.name}: the recording's end (t_stop) is not known (it was set to 1 ms after "
                           f"the last spike, {data.t_stop:.3f} s); pass t_stop= in seconds: the silent end "
                           "of a recording is data too")
    elif isinstance(spikes, neo.Block):
        data = SpikeData.from_segments(spikes.segments, name=spikes.name or "block")
    elif isinstance(spikes, neo.Segment):
        data = SpikeData.from_segments([spikes], name=spikes.name or "segment")
    elif isinstance(spikes, (list, tuple)) and spikes and all(isinstance(s, neo.SpikeTrain) for s in spikes):
        data = _from_neo_trains(spikes)
    elif isinstance(spikes, (list, tuple)):
        if t_stop is None:
            raise FitError("spike times given as arrays need t_stop= (s): the recording's end")
        data = SpikeData([[np.asarray(s, dtype=float)] for s in spikes], 0.0, float(t_stop))
    else:
        raise FitError(f"cannot read spike trains from a {type(spikes).__name__}; pass a SpikeData, a neo "
                       "Block/Segment, a list of neo.SpikeTrain or a list of arrays (s) with t_stop=")
    _check_times(data)
    return data


def _from_neo_trains(trains: Sequence[neo.SpikeTrain]) -> SpikeData:
    spans = {(float(st.t_start.rescale("s")), float(st.t_stop.rescale("s"))) for st in trains}
    if len(spans) > 1:
        listed = ", ".join(f"{st.name or u}: {float(st.t_start.rescale('s')):g}-"
                           f"{float(st.t_stop.rescale('s')):g} s"
                           for u, st in enumerate(trains))
        raise FitError(f"the units were recorded over different spans ({listed}); coupling needs one common "
                       "window: cut every train to it first (neo: SpikeTrain.time_slice(t_start, t_stop))")
    start, stop = spans.pop()
    names = [st.name or f"unit {u}" for u, st in enumerate(trains)]
    return SpikeData([[np.asarray(st.rescale("s").magnitude) - start] for st in trains], 0.0, stop - start, names)


def _check_times(data: SpikeData) -> None:
    for u, unit in enumerate(data.trains):
        for k, tr in enumerate(unit):
            where = f"unit '{data.unit_names[u]}'" + (f", trial {k}" if data.n_trials > 1 else "")
            if not np.all(np.isfinite(tr)):
                raise FitError(f"{where}: spike times must be finite numbers (s)")
            outside = tr[(tr < data.t_start) | (tr >= data.t_stop)]
            if outside.size:
                raise FitError(f"{where}: {outside.size} spike(s) outside the recording [{data.t_start:g}, "
                               f"{data.t_stop:g}) s, first at {outside[0]:.6g} s")
            same = np.nonzero(np.diff(tr) == 0)[0]
            if same.size:
                raise FitError(f"{where}: spike time {tr[same[0]]:.6g} s appears twice ({same.size} repeated "
                               "time(s)); a sorter's double detection? remove them before fitting")


@dataclass
class PopulationBins:
    """Binned spikes of ``n`` units on one bin axis of ``n_bins`` bins of ``bin_size`` s.

    ``spike_bins``/``spike_units``: bin index and unit of every spike (sorted by bin); ``valid``:
    the bins that belong to the recording (False in the gaps between trials); ``bin_time``: the
    time of each bin from its trial's start (s).
    """

    bin_size: float
    n_bins: int
    spike_bins: np.ndarray
    spike_units: np.ndarray
    valid: np.ndarray
    bin_time: np.ndarray
    counts: np.ndarray

    @property
    def n_units(self) -> int:
        """Number of units."""
        return len(self.counts)

    def unit_bins(self, u: int) -> np.ndarray:
        """Bin index of each of unit ``u``'s spikes."""
        return self.spike_bins[self.spike_units == u]


def bin_population(data: SpikeData, bin_size: float, gap_bins: int) -> PopulationBins:
    """Bin every unit's spikes at ``bin_size`` s; trials are laid end to end with ``gap_bins`` empty bins
    between them. Warns (naming units) where more than 1 % of a unit's spikes share a bin with another
    of its spikes: the Poisson likelihood counts them, but a bin wider than the refractory period
    blurs the spike history."""
    if not bin_size > 0:
        raise FitError(f"bin_size = {bin_size} s: must be positive")
    per_trial = int(np.ceil(round(data.duration / bin_size, 9)))
    offsets = np.arange(data.n_trials) * (per_trial + gap_bins)
    bins, units = [], []
    for u, unit in enumerate(data.trains):
        for k, tr in enumerate(unit):
            b = np.minimum(((tr - data.t_start) / bin_size).astype(np.int64), per_trial - 1)
            bins.append(b + offsets[k])
            units.append(np.full(b.size, u, dtype=np.int64))
    bins_all = np.concatenate(bins) if bins else np.zeros(0, np.int64)
    units_all = np.concatenate(units) if units else np.zeros(0, np.int64)
    order = np.argsort(bins_all, kind="stable")
    bins_all, units_all = bins_all[order], units_all[order]
    n_bins = int(offsets[-1] + per_trial) if data.n_trials else 0
    valid = np.zeros(n_bins, dtype=bool)
    bin_time = np.zeros(n_bins)
    for off in offsets:
        valid[off:off + per_trial] = True
        bin_time[off:off + per_trial] = data.t_start + np.arange(per_trial) * bin_size
    _warn_shared_bins(data, bins_all, units_all, n_bins, bin_size)
    counts = np.bincount(units_all, minlength=data.n_units)
    return PopulationBins(bin_size, n_bins, bins_all, units_all, valid, bin_time, counts)


def _warn_shared_bins(data: SpikeData, bins: np.ndarray, units: np.ndarray, n_bins: int, bin_size: float) -> None:
    keys, counts = np.unique(units * max(n_bins, 1) + bins, return_counts=True)
    extra = np.bincount(keys // max(n_bins, 1), weights=counts - 1, minlength=data.n_units)
    total = np.maximum(np.bincount(units, minlength=data.n_units), 1)
    bad = [data.unit_names[u] for u in np.nonzero(extra / total > 0.01)[0]]
    if bad:
        warnings.warn(f"bin_size = {bin_size * 1e3:g} ms holds two or more spikes of one unit for more than 1 % "
                      f"of the spikes of {', '.join(bad)}: the bin is wider than these units' refractory "
                      "period; their counts enter the Poisson likelihood as counts, and a smaller bin keeps "
                      "their spike history sharper", FitWarning, stacklevel=4)


def raised_cosine_basis(n_basis: int, first: float, last: float, bin_size: float, stretch: float = 1.0
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Raised-cosine bumps on a log-stretched time axis (Pillow et al. 2008, Nature 454:995, Methods).

    Returns ``(lags, basis)``: lags in bins (1, 2, ... up to ``last``) and ``basis[k, lag]``. The
    first bump peaks at ``first`` s and the last at ``last`` s, bumps overlap by half, and each
    peaks at 1, so that a coefficient reads as the log-rate change at its bump's peak.
    """
    lags = np.arange(1, int(np.ceil(last / bin_size * 1.5)) + 1)
    t = lags * bin_size
    warp = np.log(t + stretch * bin_size)
    peaks = np.linspace(np.log(first + stretch * bin_size), np.log(last + stretch * bin_size), n_basis)
    spacing = (peaks[1] - peaks[0]) if n_basis > 1 else (warp[-1] - warp[0])
    arg = np.clip((warp[None, :] - peaks[:, None]) * np.pi / (2 * spacing), -np.pi, np.pi)
    basis = 0.5 * (1 + np.cos(arg))
    keep = basis.max(axis=0) > 1e-6
    lags, basis = lags[keep], basis[:, keep]
    return lags, basis / basis.max(axis=1, keepdims=True)


def filtered_trace(bins: np.ndarray, n_bins: int, lags: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``sum over spikes s of kernel[lag]`` placed at bin ``s + lag``: a spike train filtered causally
    (strictly after the spike), length ``n_bins`` (float32)."""
    idx = (bins[:, None] + lags[None, :]).ravel()
    w = np.broadcast_to(kernel, (bins.size, kernel.size)).ravel()
    inside = idx < n_bins
    return np.bincount(idx[inside], weights=w[inside], minlength=n_bins).astype(np.float32)
