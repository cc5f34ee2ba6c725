"""Figures: the right data on labelled axes."""

import matplotlib.pyplot as plt
import numpy as np

import tidesim as ts


def test_raster_one_row_per_unit():
    units = ts.datasets.load_bundled("hippocampus_units")
    fig = ts.analysis.raster(units, label="unit")
    ax = fig.axes[0]
    assert len(ax.collections) == units.n_units and ax.get_xlabel() == "time (s)"
    assert len(ax.collections[3].get_positions()) == len(units.trains[3][0])
    plt.close(fig)


def test_isi_histogram_counts_every_interval():
    trains = [np.array([0.0, 0.01, 0.03]), np.array([0.1, 0.15])]
    fig = ts.analysis.isi_histogram(trains, bins=np.arange(0, 60, 5))
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == 3 and "ms" in ax.get_xlabel()
    plt.close(fig)


def test_fi_plot_and_recording_plot():
    rec = ts.datasets.load_bundled("axon_steps")
    fig = ts.analysis.fi_plot(rec)
    line = fig.axes[0].lines[0]
    assert np.allclose(line.get_xdata(), ts.analysis.fi_curve(rec)["current_A"] * 1e12)
    assert fig.axes[0].get_xlabel() == "step current (pA)" and fig.axes[0].get_ylabel() == "firing rate (Hz)"
    plt.close(fig)
    fig = rec.plot([0, 8])
    assert len(fig.axes) == 2 and "mV" in fig.axes[0].get_ylabel() and "pA" in fig.axes[1].get_ylabel()
    plt.close(fig)
