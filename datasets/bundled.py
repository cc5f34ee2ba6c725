"""The real recordings shipped with tidesim (see ``data/PROVENANCE.md`` for sources and licences)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from tidesim.datasets.loading import load
from tidesim.datasets.recording import Recording
from tidesim.datasets.spikes import SpikeData

__all__ = ["bundled", "load_bundled", "bundled_path", "describe_bundled", "provenance"]

#: name -> file and what it is. Every file was recorded from a real neuron (PROVENANCE.md).
_MANIFEST = {
    "regular_spiking": {
        "file": "171116sh_0018.abf",
        "kind": "current clamp",
        "description": "whole-cell current clamp, adapting regular-spiking cell; 17 sweeps x 3 s at 20 kHz, "
                       "steps -100 + 25 k pA (0.147-0.647 s and 1.647-2.147 s) and a -100 pA step",
        "source": "swharden/pyABF data/abfs/171116sh_0018.abf (MIT)",
    },
    "fast_spiking": {
        "file": "2019_07_24_0055_fsi.abf",
        "kind": "current clamp",
        "description": "whole-cell current clamp, fast-spiking interneuron (fires spontaneously); "
                       "17 sweeps x 3 s at 20 kHz, same step protocol as regular_spiking",
        "source": "swharden/pyABF data/abfs/2019_07_24_0055_fsi.abf (MIT)",
    },
    "axon_steps": {
        "file": "File_axon_5.abf",
        "kind": "current clamp",
        "description": "whole-cell current clamp; 9 sweeps x 1 s at 20 kHz, steps -100 + 50 k pA "
                       "from 0.2156 to 0.7156 s; spikes only at the onset of the largest steps",
        "source": "swharden/pyABF data/abfs/File_axon_5.abf (MIT)",
    },
    "hippocampus_units": {
        "file": "all_unit.mat",
        "kind": "spike trains",
        "description": "16 spike-sorted units, rat hippocampus tetrodes, ~998 s (Wave_Clus; Balbi lab)",
        "source": "mzabolocki/SynaptiConn tests/spiketimetest/mat_file/all_unit.mat (MIT); cite the "
                  "publications named in PROVENANCE.md",
    },
}


def _data_dir():
    return resources.files("tidesim.datasets") / "data"


def bundled() -> list[str]:
    """Names of the shipped recordings."""
    return sorted(_MANIFEST)


def describe_bundled() -> pd.DataFrame:
    """A table of the shipped recordings: file, kind, description, source."""
    return pd.DataFrame.from_dict(_MANIFEST, orient="index").rename_axis("name")


def bundled_path(name: str) -> Path:
    """Path of a shipped recording's file."""
    if name not in _MANIFEST:
        raise KeyError(f"no bundled recording '{name}'; bundled: {', '.join(bundled())}")
    return Path(str(_data_dir() / _MANIFEST[name]["file"]))


def provenance() -> str:
    """The text of PROVENANCE.md: where each shipped file comes from, its licence, what was measured."""
    return (_data_dir() / "PROVENANCE.md").read_text()


def load_bundled(name: str, **kwargs) -> Recording | SpikeData:
    """Load a shipped recording by name (keyword arguments go to :func:`tidesim.datasets.load`)."""
    path = bundled_path(name)
    kwargs.setdefault("name", name)
    return load(path, **kwargs)
