"""Frozen-noise recordings: repeated trials of one current, and the 2007 competition's files.

The Quantitative Single-Neuron Modeling Competition 2007 (Jolivet et al. 2008, Biol Cybern 99:417),
challenge A: rat L5 pyramidal cells (Rauch et al. 2003, J Neurophysiol 90:1598) driven by
Ornstein-Uhlenbeck currents, four repeats of each stimulus, 5 kHz. Its files carry no license: tidesim
reads them from where they lie (``load_qsnmc2007(folder)``) and ships none of them.

What the files hold, measured (``benchmarks/spike_timing.py`` prints it again): training sets 00, 04, 05,
06, 08, 09, 11 and 12 with the recorded current, voltage and spike times; test sets 01, 02, 03 and 07 with
the current and spike times, but those spike times are identical to the file
``ChallengeA_with_aEIF_27sept.zip`` of the same repository, the spikes of the organisers' adaptive
exponential integrate-and-fire model (script ``aEIF_test_p25E.m``), not of the cell: the cell's test
spikes were never released. They are loaded with ``spikes_source="aEIF model (organisers' example)"``
in each sweep's annotations, so that nothing scores a model against them as if they were data.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from tidesim.datasets.loading import ProtocolError
from tidesim.datasets.recording import Recording

__all__ = ["load_qsnmc2007", "QSNMC2007_DT", "QSNMC2007_MODEL_SPIKES"]

#: Sampling interval of the competition's files (5 kHz, the organisers' scripts use 1/5000 s).
QSNMC2007_DT = 2e-4
#: Where the test sets' "spike times" come from (see the module docstring).
QSNMC2007_MODEL_SPIKES = "aEIF model (organisers' example)"

_SETS = {"training": (0, 4, 5, 6, 8, 9, 11, 12), "test": (1, 2, 3, 7)}


def _read_text(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return np.loadtxt(f, ndmin=2)


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.exists():
            return candidate
    return None


def load_qsnmc2007(folder: str | Path, split: str = "training", sets: Sequence[int] | None = None,
                   repeats: Sequence[int] = (0, 1, 2, 3)) -> Recording:
    """Challenge A of the 2007 competition as one Recording: a sweep per set and repeat, in SI units,
    labelled with its stimulus (``rec.stimuli``: ``"set 04"``) so that repeats are known.

    ``folder`` holds ``training/`` and ``test/`` (files ``04-0.voltage[.gz]``: sample, current pA,
    voltage mV; ``04-0.spiketimes[.gz]``: spike sample indices). Test sweeps have no recorded voltage
    (NaN) and their spike times are the organisers' model's (annotated, see the module docstring).
    """
    folder = Path(folder)
    if split not in _SETS:
        raise ValueError(f"split must be 'training' or 'test', got {split!r}")
    sub = folder / split
    if not sub.is_dir():
        raise FileNotFoundError(f"no {split}/ folder in {folder} (expected the competition's challenge A files)")
    sets = list(_SETS[split] if sets is None else sets)
    volts, currents, trains, annotations = [], [], [], []
    for s in sets:
        for r in repeats:
            stem = f"{int(s):02d}-{int(r)}"
            vfile = _find(sub, f"{stem}.voltage")
            if vfile is None:
                raise FileNotFoundError(f"{sub} has no {stem}.voltage(.gz): set {s}, repeat {r} is not there")
            table = _read_text(vfile)
            if table.shape[1] < 3:
                raise ProtocolError(f"{vfile.name} has {table.shape[1]} columns; expected sample, current (pA), "
                                    "voltage (mV)")
            current = table[:, 1] * 1e-12
            voltage = table[:, 2] * 1e-3 if split == "training" else np.full(len(table), np.nan)
            sfile = _find(sub, f"{stem}.spiketimes")
            spikes = np.zeros(0) if sfile is None else _read_text(sfile)[:, 0] * QSNMC2007_DT
            volts.append(voltage)
            currents.append(current)
            trains.append(np.sort(spikes))
            ann = {"stimulus": f"set {int(s):02d}", "repeat": int(r), "file": vfile.name,
                   "spikes_source": "recorded" if split == "training" else QSNMC2007_MODEL_SPIKES}
            if sfile is None:
                ann["spikes_source"] = "none"
            annotations.append(ann)
    n = min(len(v) for v in volts)
    rec = Recording(torch.tensor(np.stack([v[:n] for v in volts])), QSNMC2007_DT,
                    torch.tensor(np.stack([c[:n] for c in currents])), trains,
                    name=f"QSNMC 2007 challenge A ({split})",
                    annotations={"source": str(folder), "split": split, "reference": "Jolivet et al. 2008; "
                                 "Rauch et al. 2003"},
                    sweep_annotations=annotations)
    rec.check_repeats()
    return rec
