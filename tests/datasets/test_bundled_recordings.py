"""Every shipped recording loads with the values measured independently in PROVENANCE.md."""

import numpy as np
import pytest
import torch

import tidesim as ts

# From PROVENANCE.md (counted there with neo 0.14.6: upward crossings of 0 mV, re-armed below -10 mV)
EXPECTED = {
    "axon_steps": dict(sweeps=9, samples=20000, channel="_Ipatch", v0_median=-72.5e-3,
                       spikes=[0, 0, 0, 0, 0, 0, 2, 2, 3],
                       steps=[(0.2156, 0.7156, lambda k: (-100 + 50 * k) * 1e-12)]),
    "regular_spiking": dict(sweeps=17, samples=60000, channel="IN 0", v0_median=-61.9e-3,
                            spikes=[0, 0, 0, 0, 0, 0, 2, 3, 6, 8, 10, 12, 12, 14, 16, 16, 18],
                            steps=[(0.1469, 0.6469, lambda k: (-100 + 25 * k) * 1e-12),
                                   (1.1468, 1.6468, lambda k: -100e-12),
                                   (1.6468, 2.1469, lambda k: (-100 + 25 * k) * 1e-12)]),
    "fast_spiking": dict(sweeps=17, samples=60000, channel="IN 0", v0_median=-53.4e-3,
                         spikes=[2, 3, 2, 4, 16, 28, 37, 48, 55, 68, 76, 83, 91, 99, 105, 114, 117],
                         steps=[(0.1469, 0.6469, lambda k: (-100 + 25 * k) * 1e-12)]),
}


def test_bundled_names_and_provenance():
    assert ts.datasets.bundled() == ["axon_steps", "fast_spiking", "hippocampus_units", "regular_spiking"]
    table = ts.datasets.describe_bundled()
    assert set(table.index) == set(ts.datasets.bundled()) and "MIT" in table.loc["axon_steps", "source"]
    text = ts.datasets.provenance()
    for name in ("171116sh_0018.abf", "2019_07_24_0055_fsi.abf", "File_axon_5.abf", "all_unit.mat", "License"):
        assert name in text
    with pytest.raises(KeyError, match="bundled"):
        ts.datasets.load_bundled("nope")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_current_clamp_recording_matches_provenance(name):
    exp = EXPECTED[name]
    rec = ts.datasets.load_bundled(name)
    assert len(rec) == exp["sweeps"] and rec.n_samples == exp["samples"]
    assert rec.dt == pytest.approx(1 / 20000) and rec.sampling_rate == pytest.approx(20000)
    assert rec.annotations["channel"] == exp["channel"]
    assert rec.voltage.dtype == torch.float64
    # PROVENANCE's "Vm at sweep start": median over sweeps of the first 10 ms, rounded to 0.1 mV
    start = rec.voltage[:, :200].mean(1).median().item()
    assert start == pytest.approx(exp["v0_median"], abs=0.1e-3)  # volts
    assert rec.spike_counts.tolist() == exp["spikes"]
    assert "read_raw_protocol" in rec.annotations["current_source"]
    # the stimulus: each step at the documented time and amplitude (amperes)
    t = rec.t.numpy()
    for k in range(len(rec)):
        for start, stop, amplitude in exp["steps"]:
            inside = (t > start + 1e-3) & (t < stop - 1e-3)
            assert np.allclose(rec.current[k].numpy()[inside], amplitude(k), atol=1e-15)
    before = t < exp["steps"][0][0] - 1e-3
    assert np.all(rec.current[:, before].numpy() == 0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_voltage_deflects_when_the_step_starts(name):
    quiet = name != "fast_spiking"  # that cell fires and drifts spontaneously before the step
    # the loaded stimulus is aligned with the trace: hyperpolarising steps pull the voltage down
    # right at their onset, and not before
    rec = ts.datasets.load_bundled(name)
    start = EXPECTED[name]["steps"][0][0]
    t = rec.t.numpy()
    pre = (t > start - 0.03) & (t < start - 0.001)
    early = (t > start - 0.001) & (t < start)
    post = (t > start + 0.01) & (t < start + 0.04)
    v = rec.voltage.numpy()
    negative = [k for k in range(len(rec)) if rec.current[k, post].mean() < 0]
    assert negative
    for k in negative:  # medians: the fast-spiking cell fires spontaneously
        drop = np.median(v[k, pre]) - np.median(v[k, post])
        assert drop > 2e-3, (name, k, drop)  # more than 2 mV down within 40 ms of the onset
        if quiet:
            assert abs(np.median(v[k, pre]) - np.median(v[k, early])) < 1.5e-3  # nothing before it


def test_spike_train_file_matches_provenance():
    units = ts.datasets.load_bundled("hippocampus_units")
    assert isinstance(units, ts.datasets.SpikeData)
    assert units.n_units == 16 and units.n_trials == 1
    assert units.spike_counts[:, 0].tolist() == [3238, 2532, 1167, 1253, 485, 3423, 1253, 1593, 1056, 1771,
                                                 5230, 2610, 4756, 2711, 1231, 803]
    first = min(tr[0][0] for tr in units.trains)
    last = max(tr[0][-1] for tr in units.trains)
    assert first == pytest.approx(0.70148, abs=1e-5) and last == pytest.approx(998.176, abs=1e-3)
    grid = np.concatenate([tr[0] for tr in units.trains]) / 40e-6  # a 25 kHz sampling grid
    assert np.allclose(grid, np.round(grid), atol=1e-3)
    block = units.to_neo()
    assert len(block.segments[0].spiketrains) == 16
    assert block.segments[0].spiketrains[4].size == 485


def test_recording_selection_and_neo():
    rec = ts.datasets.load_bundled("axon_steps")
    part = rec.select([8, 6])
    assert len(part) == 2 and part.spike_counts.tolist() == [3, 2]
    assert torch.equal(part.voltage[0], rec.voltage[8]) and torch.equal(part.current[1], rec.current[6])
    assert rec[7].spike_counts.tolist() == [2]
    with pytest.raises(IndexError, match="9 sweeps"):
        rec.select([9])
    block = rec.to_neo()
    assert len(block.segments) == 9
    sig = block.segments[8].analogsignals[0]
    assert str(sig.units.dimensionality) == "V" and sig.shape == (20000, 1)
    assert block.segments[8].spiketrains[0].size == 3
    assert block.segments[3].annotations["sweep"] == 3
    fig = rec.plot(sweeps=[0, 8])
    assert fig.axes[0].get_ylabel() == "membrane potential (mV)"
    assert fig.axes[1].get_ylabel() == "injected current (pA)"
