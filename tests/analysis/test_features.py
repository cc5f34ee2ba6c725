"""Current-clamp features on the shipped regular-spiking recording (PROVENANCE.md's facts)."""

import numpy as np
import pytest

import tidesim as ts


@pytest.fixture(scope="module")
def rec():
    return ts.datasets.load_bundled("regular_spiking")


def test_step_window_is_the_documented_first_step(rec):
    start, stop = ts.analysis.step_window(rec)
    assert start == pytest.approx(0.1469, abs=2e-4) and stop == pytest.approx(0.6469, abs=2e-4)


def test_fi_curve(rec):
    fi = ts.analysis.fi_curve(rec)
    assert np.allclose(fi["current_A"], (-100 + 25 * np.arange(17)) * 1e-12, atol=1e-15)
    assert (fi["rate_Hz"][fi["current_A"] <= 25e-12] == 0).all()  # rheobase between 25 and 50 pA
    assert fi["rate_Hz"].iloc[-1] > 10 and np.all(np.diff(fi["rate_Hz"]) >= -2.0)  # roughly monotone
    # the first step holds about half of each sweep's spikes (the same step repeats at 1.65 s)
    assert fi["spikes"].sum() <= rec.spike_counts.sum().item()


def test_first_spike_latency(rec):
    lat = ts.analysis.first_spike_latency(rec)
    fi = ts.analysis.fi_curve(rec)
    assert np.all(np.isnan(lat[fi["spikes"] == 0]))
    spiking = lat[fi["spikes"] > 0]
    assert np.all((spiking > 0) & (spiking < 0.5))
    assert spiking[-1] < spiking[0]  # stronger steps fire sooner


def test_adaptation(rec):
    start, stop = ts.analysis.step_window(rec)
    spikes = rec.spike_times[-1]
    inside = spikes[(spikes >= start) & (spikes < stop)]
    assert ts.analysis.adaptation_index(inside) > 0  # PROVENANCE: spike-frequency adaptation
    assert ts.analysis.adaptation_index([0.0, 0.1, 0.3]) == pytest.approx(1 / 3)  # (0.2-0.1)/(0.2+0.1)
    assert ts.analysis.adaptation_index([0.0, 0.1, 0.2, 0.3]) == pytest.approx(0)


def test_efel_features(rec):
    names = ("AP_amplitude", "mean_frequency", "Spikecount_stimint")
    feats = ts.analysis.efel_features(rec.select([0, 16]), features=names)
    assert np.isnan(feats.loc[0, "AP_amplitude"])  # no spikes in the -100 pA sweep
    assert 60 < feats.loc[1, "AP_amplitude"] < 140  # mV, spikes peak near +54 mV from about -45 mV
    fi = ts.analysis.fi_curve(rec.select([0, 16]))
    assert feats.loc[1, "Spikecount_stimint"] == fi["spikes"].iloc[1]
