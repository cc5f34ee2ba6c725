"""NWB 2 intracellular current-clamp files through pynwb: read into a Recording, write one.

neo's NWB reader is fragile for intracellular files (neo#1413) and does not read NWB 1, so tidesim reads
NWB 2 itself with pynwb, the format's reference API. A sweep is a ``CurrentClampSeries`` (the response)
and, where the file has it, the ``CurrentClampStimulusSeries`` injected during it. Stimulus and response
are paired through the icephys ``IntracellularRecordingsTable`` when the file has one (files written by
pynwb >= 2 and by tidesim), else by ``sweep_number``, else by order. Values are read in SI with each
series' ``conversion`` and ``offset``.
"""

from __future__ import annotations

import datetime
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tidesim.core.files import atomic_write, check_new
from tidesim.datasets.recording import Recording
from tidesim.datasets.spikes import detect_spikes

__all__ = ["read_nwb", "write_nwb"]


class NWBFormatError(ValueError):
    """An NWB file without what a current-clamp Recording needs (named in the message)."""


def _si(series) -> np.ndarray:
    data = np.asarray(series.data[:], dtype=float)
    return data * float(series.conversion) + float(getattr(series, "offset", 0.0) or 0.0)


def _dt(series, where: str) -> float:
    if series.rate is not None:
        return 1.0 / float(series.rate)
    t = np.asarray(series.timestamps[:], dtype=float)
    steps = np.diff(t)
    if steps.size == 0 or not np.allclose(steps, steps[0], rtol=1e-6):
        raise NWBFormatError(f"{where}: series {series.name!r} is not sampled at a regular interval")
    return float(steps[0])


def _pairs(nwbfile, names: list[str]) -> list[tuple[Any, Any]]:
    """(response, stimulus or None) per sweep, in the file's order."""
    responses = [nwbfile.acquisition[n] for n in names]
    table = getattr(nwbfile, "intracellular_recordings", None)
    if table is not None and len(table) > 0:
        by_response = {}
        for k in range(len(table)):
            resp = table["responses"]["response"][k].timeseries
            stim = table["stimuli"]["stimulus"][k].timeseries
            by_response[resp.name] = stim
        return [(r, by_response.get(r.name)) for r in responses]
    stimuli = [s for s in nwbfile.stimulus.values() if type(s).__name__ == "CurrentClampStimulusSeries"]
    by_sweep = {getattr(s, "sweep_number", None): s for s in stimuli}
    if all(getattr(r, "sweep_number", None) in by_sweep for r in responses) and None not in by_sweep:
        return [(r, by_sweep[r.sweep_number]) for r in responses]
    if len(stimuli) == len(responses):
        return list(zip(responses, stimuli))
    return [(r, None) for r in responses]


def read_nwb(path: str | Path, channel: str | None = None, spike_threshold: float = 0.0,
             rearm: float | None = -0.01, refractory: float = 0.5e-3, name: str | None = None) -> Recording:
    """The current-clamp sweeps of an NWB 2 file as a :class:`Recording` (V, A, s).

    ``channel``: the intracellular electrode's name when the file has several (default: the only one).
    Spikes are detected on the voltage (``spike_threshold``, ``rearm`` in V, ``refractory`` in s).
    """
    from pynwb import NWBHDF5IO  # pynwb loads its schema on import: only when an NWB file is read

    path = Path(path)
    where = path.name
    with NWBHDF5IO(str(path), "r", load_namespaces=True) as io:
        nwbfile = io.read()
        names = [n for n, s in nwbfile.acquisition.items() if type(s).__name__ == "CurrentClampSeries"]
        electrodes = sorted({nwbfile.acquisition[n].electrode.name for n in names})
        if not names:
            found = ", ".join(f"{n} ({type(s).__name__})" for n, s in nwbfile.acquisition.items()) or "nothing"
            raise NWBFormatError(f"{where} holds no CurrentClampSeries in its acquisition (found {found})")
        if channel is None and len(electrodes) > 1:
            raise NWBFormatError(f"{where} has sweeps from electrodes {', '.join(electrodes)}: choose one with "
                                 "channel=")
        if channel is not None:
            if channel not in electrodes:
                raise NWBFormatError(f"{where} has no electrode {channel!r}; it has {', '.join(electrodes)}")
            names = [n for n in names if nwbfile.acquisition[n].electrode.name == channel]
        pairs = _pairs(nwbfile, names)
        dts = {round(_dt(r, where), 12) for r, _ in pairs}
        lengths = {len(r.data) for r, _ in pairs}
        if len(dts) > 1 or len(lengths) > 1:
            raise NWBFormatError(f"{where}: sweeps differ in sampling interval ({sorted(dts)} s) or length "
                                 f"({sorted(lengths)} samples); load them separately (channel=)")
        voltage = np.stack([_si(r) for r, _ in pairs])
        current = None
        if all(s is not None for _, s in pairs):
            current = np.stack([_si(s) for _, s in pairs])
            if current.shape != voltage.shape:
                raise NWBFormatError(f"{where}: stimulus and response of a sweep differ in length")
        dt = dts.pop()
        annotations = {"source": str(path), "file_origin": path.name, "format": "NWB 2 (pynwb)",
                       "session_description": nwbfile.session_description, "identifier": nwbfile.identifier,
                       "electrode": electrodes[0] if channel is None else channel,
                       "current_source": "CurrentClampStimulusSeries in file" if current is not None else "none"}
        sweeps = [{"name": r.name, "sweep_number": getattr(r, "sweep_number", None),
                   "t_start": float(r.starting_time or 0.0)} for r, _ in pairs]
    spikes = [detect_spikes(v, dt, spike_threshold, rearm, refractory) for v in voltage]
    annotations["spikes_source"] = f"detected: crossing {spike_threshold * 1e3:g} mV"
    return Recording(torch.from_numpy(voltage), dt, None if current is None else torch.from_numpy(current), spikes,
                     name=name or path.stem, annotations=annotations, sweep_annotations=sweeps)


def _nwbfile(rec: Recording, subject: dict[str, Any] | None):
    from pynwb import NWBFile
    from pynwb.file import Subject
    from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries

    source = rec.annotations.get("file_origin", "a tidesim Recording")
    nwbfile = NWBFile(session_description=f"current-clamp sweeps of {rec.name}, from {source}",
                      identifier=str(uuid.uuid4()), experiment_description=f"{rec.name}: {len(rec)} sweeps",
                      session_start_time=datetime.datetime.now(datetime.timezone.utc),
                      subject=Subject(**{"subject_id": rec.name, "sex": "U", "description": "not recorded in "
                                         "the source; pass subject= to write_nwb", **(subject or {})}))
    device = nwbfile.create_device(name="amplifier", description=f"the amplifier that recorded {source}")
    electrode = nwbfile.create_icephys_electrode(
        name="electrode", device=device, cell_id=rec.name,
        description=f"recording channel {rec.annotations.get('channel', 'not named in the source')}")
    for k in range(len(rec)):
        response = CurrentClampSeries(name=f"response_{k:03d}", data=rec.voltage[k].numpy(), electrode=electrode,
                                      gain=1.0, rate=1.0 / rec.dt, starting_time=0.0, sweep_number=np.uint32(k),
                                      unit="volts",
                                      description=f"membrane potential, sweep {k} of {rec.name}")
        stimulus = None
        if rec.current is not None:
            stimulus = CurrentClampStimulusSeries(name=f"stimulus_{k:03d}", data=rec.current[k].numpy(),
                                                  electrode=electrode, gain=1.0, rate=1.0 / rec.dt,
                                                  starting_time=0.0, sweep_number=np.uint32(k), unit="amperes",
                                                  description=f"injected current, sweep {k} of {rec.name}")
        nwbfile.add_intracellular_recording(electrode=electrode, response=response, stimulus=stimulus)
    return nwbfile


def write_nwb(rec: Recording, path: str | Path, overwrite: bool = False,
              subject: dict[str, Any] | None = None) -> Path:
    """Write ``rec`` as an NWB 2 file: a ``CurrentClampSeries`` per sweep, its ``CurrentClampStimulusSeries``,
    and the icephys tables pairing them. ``subject``: ``pynwb.file.Subject`` fields (``species``, ``age``,
    ``sex``, ...; default: only an id, the recording's name). An existing file is replaced only with
    ``overwrite=True``."""
    from pynwb import NWBHDF5IO

    path = Path(path)
    check_new([path], overwrite, "saving the recording")
    given = set(subject or {}) | ({"age"} if "date_of_birth" in (subject or {}) else set())
    missing = [f for f in ("species", "age") if f not in given]
    if missing:
        warnings.warn(f"writing {path.name} without the subject's {' and '.join(missing)}: NWB Inspector (and "
                      "DANDI) require them; pass subject={'species': ..., 'age': 'P21D', 'sex': ...}", UserWarning,
                      stacklevel=2)
    nwbfile = _nwbfile(rec, subject)

    def write(tmp: Path) -> None:
        with NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwbfile)

    return atomic_write(path, write, suffix=".part.nwb")
