"""Figures of spike data: raster, ISI histogram, f-I curve (matplotlib, labelled axes with units)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tidesim.analysis.features import fi_curve
from tidesim.analysis.spiketrains import as_spiketrains
from tidesim.analysis.statistics import isi

__all__ = ["raster", "isi_histogram", "fi_plot"]


def _axes(ax, figsize=(7, 3)):
    # matplotlib loads only when a figure is drawn
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def raster(obj: Any, ax=None, label: str = "train", **kw):
    """Spike raster: one row per train (sweep, unit or neuron), time in seconds."""
    fig, ax = _axes(ax)
    trains = as_spiketrains(obj)
    times = [np.asarray(st.rescale("s").magnitude) for st in trains]
    ax.eventplot(times, lineoffsets=np.arange(len(times)), linelengths=0.8, colors=kw.pop("color", "k"), **kw)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(label)
    ax.set_ylim(-0.6, len(times) - 0.4)
    return fig


def isi_histogram(obj: Any, bins: int | np.ndarray = 50, ax=None, log: bool = False):
    """Histogram of the inter-spike intervals (ms) pooled over all trains."""
    fig, ax = _axes(ax, figsize=(5, 3))
    intervals = np.concatenate([i for i in isi(obj)] or [np.array([])]) * 1e3
    if log and intervals.size:
        bins = np.logspace(np.log10(intervals.min()), np.log10(intervals.max()), bins if np.isscalar(bins) else 50)
        ax.set_xscale("log")
    ax.hist(intervals, bins=bins, color="0.3")
    ax.set_xlabel("inter-spike interval (ms)")
    ax.set_ylabel("count")
    ax.set_title(f"{intervals.size} intervals")
    return fig


def fi_plot(rec_or_table: Any, ax=None, label: str | None = None, window: tuple[float, float] | None = None, **kw):
    """f-I curve: firing rate in the step (Hz) against step current (pA), from a Recording or
    :func:`fi_curve`'s table. Call again with the same ``ax`` to overlay data and model."""


    table = rec_or_table if isinstance(rec_or_table, pd.DataFrame) else fi_curve(rec_or_table, window)
    fig, ax = _axes(ax, figsize=(4.5, 3.5))
    name = label if label is not None else getattr(rec_or_table, "name", None)
    ax.plot(table["current_A"] * 1e12, table["rate_Hz"], marker=kw.pop("marker", "o"), label=name, **kw)
    ax.set_xlabel("step current (pA)")
    ax.set_ylabel("firing rate (Hz)")
    if name:
        ax.legend(frameon=False)
    return fig
