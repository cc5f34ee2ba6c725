"""NWB 2 current-clamp files: tidesim's reader on files pynwb writes its own way, and tidesim's writer
checked by pynwb's validator and NWB Inspector."""

import datetime

import numpy as np
import pytest
import torch
from pynwb import NWBHDF5IO, NWBFile
from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries, VoltageClampSeries

import tidesim as ts
from tidesim.datasets.nwb import NWBFormatError

SUBJECT = {"species": "Rattus norvegicus", "age": "P21D", "sex": "M"}


def _file(path, electrodes=("e0",), stimuli="by_sweep_number", extra=None):
    """A file as another lab's pynwb script might write it: mV and pA with conversion factors, stimuli
    added in reverse order and paired only by sweep_number (no icephys tables)."""
    nwb = NWBFile(session_description="test", identifier="abc",
                  session_start_time=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    device = nwb.create_device(name="amp")
    t = np.arange(2000) * 1e-4
    stims = []
    for e_name in electrodes:
        electrode = nwb.create_icephys_electrode(name=e_name, device=device, description="patch")
        for k in range(3):
            amp_pa = 100.0 * (k + 1)
            stim = np.where((t >= 0.05) & (t < 0.15), amp_pa, 0.0)
            vm_mv = -65.0 + 0.1 * stim + 40.0 * ((t > 0.1) & (t < 0.1003)) * (k > 0)
            nwb.add_acquisition(CurrentClampSeries(name=f"{e_name}_resp{k}", data=vm_mv, conversion=1e-3,
                                                   unit="volts", electrode=electrode, rate=1e4, gain=1.0,
                                                   sweep_number=np.uint32(k)))
            stims.append(CurrentClampStimulusSeries(name=f"{e_name}_stim{k}", data=stim, conversion=1e-12,
                                                    unit="amperes", electrode=electrode, rate=1e4, gain=1.0,
                                                    sweep_number=np.uint32(k)))
        if extra is not None:
            nwb.add_acquisition(extra(electrode))
    if stimuli == "by_sweep_number":
        for s in reversed(stims):
            nwb.add_stimulus(s)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def test_a_file_written_by_pynwb_is_read_in_si_with_its_stimuli(tmp_path):
    rec = ts.datasets.load(_file(tmp_path / "lab.nwb"), spike_threshold=-0.04)
    assert len(rec) == 3 and rec.dt == pytest.approx(1e-4) and rec.voltage.shape == (3, 2000)
    assert rec.voltage[0, 0].item() == pytest.approx(-0.065)  # mV x conversion 1e-3
    for k in range(3):  # paired by sweep_number although added in reverse order
        assert rec.current[k, 1000].item() == pytest.approx(100e-12 * (k + 1))
        assert rec.current[k, 0].item() == 0.0
    assert rec.spike_counts.tolist() == [0, 1, 1]
    assert rec.annotations["current_source"] == "CurrentClampStimulusSeries in file"


def test_electrodes_and_missing_sweeps_are_named(tmp_path):
    two = _file(tmp_path / "two.nwb", electrodes=("e0", "e1"))
    with pytest.raises(NWBFormatError, match="electrodes e0, e1: choose one with channel="):
        ts.datasets.load(two)
    assert len(ts.datasets.load(two, channel="e1")) == 3
    with pytest.raises(NWBFormatError, match="no electrode 'e9'"):
        ts.datasets.load(two, channel="e9")
    nwb = NWBFile(session_description="vc", identifier="x",
                  session_start_time=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    electrode = nwb.create_icephys_electrode(name="e", device=nwb.create_device(name="amp"), description="d")
    nwb.add_acquisition(VoltageClampSeries(name="vc0", data=np.zeros(10), electrode=electrode, rate=1e4,
                                           gain=1.0))
    with NWBHDF5IO(str(tmp_path / "vc.nwb"), "w") as io:
        io.write(nwb)
    with pytest.raises(NWBFormatError, match=r"no CurrentClampSeries .*vc0 \(VoltageClampSeries\)"):
        ts.datasets.load(tmp_path / "vc.nwb")


def test_recording_round_trips_through_nwb_and_the_file_passes_nwb_inspector(tmp_path):
    from nwbinspector import Importance, inspect_nwbfile
    from pynwb import validate

    rec = ts.datasets.load_bundled("axon_steps")
    path = tmp_path / "cell.nwb"
    ts.datasets.save(rec, path, subject=SUBJECT)
    back = ts.datasets.load(path)
    assert torch.equal(back.voltage, rec.voltage) and torch.equal(back.current, rec.current)
    assert back.dt == rec.dt and all(np.array_equal(a, b) for a, b in zip(back.spike_times, rec.spike_times))
    errors = validate(path=str(path))
    assert not errors, errors
    serious = [m for m in inspect_nwbfile(nwbfile_path=str(path))
               if m.importance in (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION)]
    assert not serious, [m.message for m in serious]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ts.datasets.save(rec, path, subject=SUBJECT)
    with pytest.warns(UserWarning, match="without the subject's species and age"):
        ts.datasets.save(rec, tmp_path / "anonymous.nwb")
    with pytest.raises(ValueError, match="NWB files for a Recording"):
        ts.datasets.save(ts.simulate(ts.models.get("lif"), 0.01), tmp_path / "sim.nwb")
