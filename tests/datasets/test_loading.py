"""Loading from neo objects and files: round trips, protocols, synthetic data, and every error path."""

import neo
import numpy as np
import pytest
import quantities as pq
import torch

import tidesim as ts
from tidesim.datasets import (
    ChannelError,
    MissingCurrentError,
    ProtocolError,
    RecordingFormatError,
)


def _segment(values_mv, units="mV", name="Vm", rate=10000.0):
    seg = neo.Segment()
    seg.analogsignals.append(neo.AnalogSignal(np.asarray(values_mv, dtype=float)[:, None], units=units,
                                              sampling_rate=rate * pq.Hz, name=name))
    return seg


def test_load_neo_objects_converts_units_and_detects_spikes():
    v = np.full(1000, -70.0)
    v[200:205] = 20.0  # one spike
    v[205] = -5.0  # below threshold but not below the re-arm level (-10 mV) ...
    v[206:208] = 10.0  # ... so this crossing is the same spike
    v[600:603] = 30.0  # a second one
    seg = _segment(v)
    seg.annotate(cell="A1")
    rec = ts.datasets.load(seg)
    assert rec.voltage.shape == (1, 1000) and rec.voltage[0, 0].item() == pytest.approx(-0.07)
    assert rec.dt == pytest.approx(1e-4)
    assert np.allclose(rec.spike_times[0], [0.02, 0.06])
    assert rec.sweep_annotations[0]["cell"] == "A1"
    block = neo.Block()
    block.segments += [_segment(v), _segment(v - 5)]
    rec2 = ts.datasets.load([block])
    assert len(rec2) == 2 and rec2.voltage[1, 0].item() == pytest.approx(-0.075)
    # thresholds are settable: 25 mV sees only the second spike
    assert np.allclose(ts.datasets.load(seg, spike_threshold=0.025).spike_times[0], [0.06])


def test_protocol_steps_and_current_array():
    seg = _segment(np.full(5000, -65.0))
    rec = ts.datasets.load(seg, protocol=[(0.1, 0.3, 200e-12)])
    assert rec.current[0, 999].item() == 0 and rec.current[0, 1000].item() == pytest.approx(200e-12)
    assert rec.current[0, 2999].item() == pytest.approx(200e-12) and rec.current[0, 3000].item() == 0
    assert rec.annotations["current_source"] == "given to load (protocol=)"
    rec = ts.datasets.load(seg, protocol=[(0.1 * pq.s, 0.3 * pq.s, 50 * pq.pA)])
    assert rec.current.max().item() == pytest.approx(50e-12)
    rec = ts.datasets.load(seg, current=np.linspace(0, 1e-10, 5000))
    assert rec.current[0, -1].item() == pytest.approx(1e-10)


def test_protocol_that_does_not_fit_the_sweep():
    seg = _segment(np.full(5000, -65.0))  # 0.5 s
    with pytest.raises(ProtocolError) as err:
        ts.datasets.load(seg, protocol=[(0.2, 0.8, 1e-10)])
    assert "0.5 s" in str(err.value) and "(0.2 s, 0.8 s)" in str(err.value)
    with pytest.raises(ProtocolError, match="2 sweeps"):
        ts.datasets.load(seg, protocol=[[(0.1, 0.2, 1e-10)], [(0.1, 0.2, 2e-10)]])
    with pytest.raises(ts.ShapeError, match="5000"):
        ts.datasets.load(seg, current=np.zeros(4000))


def test_missing_current_is_a_clear_error():
    rec = ts.datasets.load(_segment(np.full(100, -65.0)))
    assert not rec.has_current
    with pytest.raises(MissingCurrentError, match="protocol="):
        _ = rec.current


def test_channel_that_does_not_exist_lists_channels():
    rec_path = ts.datasets.bundled_path("axon_steps")
    with pytest.raises(ChannelError) as err:
        ts.datasets.load(rec_path, channel="IN 7")
    assert "'IN 7'" in str(err.value) and "'_Ipatch'" in str(err.value)
    with pytest.raises(ChannelError, match="no channel 3"):
        ts.datasets.load(rec_path, channel=3)


def test_current_units_where_voltage_was_expected():
    seg = _segment(np.zeros(100), units="pA", name="Im")
    with pytest.raises(ts.UnitMismatchError) as err:
        ts.datasets.load(seg)
    assert "voltage" in str(err.value) and "'Im'" in str(err.value)
    with pytest.raises(ts.UnitMismatchError, match="current"):
        ts.datasets.load(seg, channel="Im")


def test_file_neo_cannot_read(tmp_path):
    unknown = tmp_path / "cell.xyz"
    unknown.write_text("not a recording")
    with pytest.raises(RecordingFormatError) as err:
        ts.datasets.load(unknown)
    assert "cell.xyz" in str(err.value) and "abf" in str(err.value)
    broken = tmp_path / "broken.abf"
    broken.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(RecordingFormatError) as err:
        ts.datasets.load(broken)
    assert "broken.abf" in str(err.value) and "AxonIO" in str(err.value)
    with pytest.raises(FileNotFoundError):
        ts.datasets.load(tmp_path / "missing.abf")


def test_simulation_round_trip_through_nix(tmp_path):
    adex = ts.models.get("adex")
    res = ts.simulate(adex, 0.2, params={"I": torch.tensor([0.8e-9, 1.2e-9])})
    path = tmp_path / "sim.nix"
    ts.datasets.save(res, path)
    back = ts.datasets.load(path)
    assert torch.equal(back.voltage, res["v"].T) and back.dt == pytest.approx(res.dt)
    assert torch.allclose(back.current[:, 0], torch.tensor([0.8e-9, 1.2e-9], dtype=torch.float64))
    assert all(np.allclose(a, b) for a, b in zip(back.spike_times, res.spike_trains))
    assert back.annotations["model"] == "adex"
    block = neo.io.NixIO(str(path), mode="ro").read_block()
    assert block.segments[0].analogsignals[0].units == pq.V  # units kept in the file


def test_recording_round_trip_through_nix(tmp_path):
    rec = ts.datasets.load_bundled("axon_steps")
    path = tmp_path / "rec.nix"
    ts.datasets.save(rec, path)
    back = ts.datasets.load(path)
    assert torch.equal(back.voltage, rec.voltage) and torch.equal(back.current, rec.current)
    assert all(np.allclose(a, b, atol=1e-9) for a, b in zip(back.spike_times, rec.spike_times))
    assert back.name == "axon_steps"
    with pytest.raises(ValueError, match="NIX"):
        ts.datasets.save(rec, tmp_path / "rec.csv")


def test_synthetic_ground_truth():
    lif = ts.models.get("lif")
    clean = ts.datasets.synthetic(lif, {"tau_m": 0.02}, [0.1e-9, 0.4e-9], duration=0.3, seed=1)
    assert len(clean) == 2 and clean.spike_counts[0] == 0 and clean.spike_counts[1] > 3
    assert clean.annotations["true_parameters"] == {"tau_m": 0.02}
    assert clean.current[1, 1000].item() == pytest.approx(0.4e-9) and clean.current[1, 0].item() == 0
    noisy = ts.datasets.synthetic(lif, {"tau_m": 0.02}, [0.1e-9, 0.4e-9], duration=0.3, seed=1,
                                  noise=1e-3, jitter=2e-4)
    residual = (noisy.voltage - clean.voltage).numpy()
    assert residual.std() == pytest.approx(1e-3, rel=0.05)
    shift = noisy.spike_times[1] - clean.spike_times[1]
    assert 0 < np.abs(shift).max() < 2e-3
    again = ts.datasets.synthetic(lif, clean.annotations["true_parameters"], clean, seed=1)
    assert torch.equal(again.voltage, clean.voltage)  # a Recording as the protocol


class _Payload:
    """Unpickling it creates ``marker``: stands in for any command a crafted file could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_pickled_recording_is_refused_and_runs_nothing(tmp_path):
    import pickle

    marker = tmp_path / "ran"
    for name in ("cell.pkl", "cell.pickle", "CELL.PKL"):
        path = tmp_path / name
        path.write_bytes(pickle.dumps(_Payload(marker)))
        with pytest.raises(ts.datasets.RecordingFormatError, match="pickles(.|\n)*allow_pickle=True"):
            ts.datasets.load(path)
        with pytest.raises(ts.datasets.RecordingFormatError, match="pickles"):
            ts.datasets.load([path])
    assert not marker.exists()


def test_pickle_allowed_when_asked_for_a_file_you_made(tmp_path):
    rec = ts.datasets.load_bundled("axon_steps")
    path = tmp_path / "mine.pkl"
    neo.io.PickleIO(str(path)).write_block(rec.to_neo())
    back = ts.datasets.load(path, allow_pickle=True)
    assert torch.equal(back.voltage, rec.voltage)


def test_save_never_replaces_a_file_unasked(tmp_path):
    rec = ts.datasets.load_bundled("axon_steps")
    path = tmp_path / "rec.nix"
    ts.datasets.save(rec.select([0]), path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ts.datasets.save(rec, path)
    assert path.read_bytes() == before
    ts.datasets.save(rec, path, overwrite=True)
    assert len(ts.datasets.load(path)) == len(rec)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.nix"]  # no temporary file left behind
