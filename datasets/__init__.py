"""Recordings: any format neo reads, the real recordings shipped with tidesim, and synthetic ground truth.

>>> import tidesim as ts
>>> rec = ts.datasets.load_bundled("regular_spiking")
>>> rec.voltage.shape, rec.current.shape     # [sweeps, samples], volts and amperes
"""

from tidesim.datasets.bundled import (
    bundled,
    bundled_path,
    describe_bundled,
    load_bundled,
    provenance,
)
from tidesim.datasets.electrode import AECError, ElectrodeKernel, compensate, electrode_kernel
from tidesim.datasets.frozen_noise import QSNMC2007_DT, QSNMC2007_MODEL_SPIKES, load_qsnmc2007
from tidesim.datasets.loading import (
    ChannelError,
    ProtocolError,
    RecordingFormatError,
    load,
)
from tidesim.datasets.recording import MissingCurrentError, Recording
from tidesim.datasets.spikes import SpikeData, detect_spikes, read_spike_times_mat
from tidesim.datasets.synthetic import save, synthetic
from tidesim.datasets.tables import plasticity_table, plasticity_tables

__all__ = [
    "load", "Recording", "SpikeData", "bundled", "load_bundled", "bundled_path", "describe_bundled",
    "provenance", "detect_spikes", "read_spike_times_mat", "RecordingFormatError", "ChannelError",
    "ProtocolError", "MissingCurrentError", "synthetic", "save", "plasticity_table", "plasticity_tables",
    "load_qsnmc2007", "QSNMC2007_DT", "QSNMC2007_MODEL_SPIKES", "electrode_kernel", "compensate",
    "ElectrodeKernel", "AECError",
]
