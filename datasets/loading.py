"""``ts.datasets.load``: any file neo reads (or neo objects) into one :class:`Recording`.

Voltage comes from the file's membrane-potential channel, converted to volts. The injected
current comes, in this order, from what the user passes (``current=`` array, ``protocol=``
steps), a current channel in the file, or the stored stimulus protocol (for Axon files neo's
``AxonIO.read_raw_protocol`` rebuilds the command waveform). Spikes come from the file's
SpikeTrains, else they are detected on the voltage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import neo
import numpy as np
import quantities as pq
import torch
from brian2.units.fundamentalunits import Quantity

from tidesim.core.errors import ShapeError, TidesimError, UnitMismatchError
from tidesim.datasets.nwb import read_nwb
from tidesim.datasets.recording import Recording
from tidesim.datasets.spikes import SpikeData, detect_spikes, read_spike_times_mat

__all__ = ["load", "RecordingFormatError", "ChannelError", "ProtocolError"]


class RecordingFormatError(TidesimError, IOError):
    """No neo IO could read the file."""


class ChannelError(TidesimError, KeyError):
    """The channel asked for is not in the recording (the message lists those that are)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ProtocolError(TidesimError, ValueError):
    """A stimulus protocol or current array that does not fit the sweeps."""


_STIMULUS_NAMES = ("current", "i", "i_inj", "iinj", "stimulus", "command", "cmd", "cmd 0")


#: neo readers that unpickle the file: loading one can run any code the file carries.
_PICKLING = {"PickleIO"}


def _read_file(path: Path, allow_pickle: bool = False):
    if not path.exists():
        raise FileNotFoundError(f"no such recording file: {path}")
    ext = path.suffix.lower().lstrip(".")
    candidates = [io for io in neo.io.iolist if ext in [e.lower() for e in io.extensions]]
    if not allow_pickle and any(io.__name__ in _PICKLING for io in candidates):
        candidates = [io for io in candidates if io.__name__ not in _PICKLING]
        if not candidates:
            raise RecordingFormatError(
                f"{path.name}: '.{ext}' files are Python pickles, and unpickling a file runs any code it carries; "
                "tidesim refuses them. Save the data as NIX (ts.datasets.save(rec, 'x.nix')) where you made it, "
                "or pass allow_pickle=True if you made this file yourself")
    if not candidates:
        known = sorted({e for io in neo.io.iolist for e in io.extensions})
        raise RecordingFormatError(
            f"neo has no reader for '.{ext}' files ({path.name}); it reads: {', '.join(known)}")
    errors = []
    for io_class in candidates:
        try:
            io = io_class(str(path))
            blocks = io.read(lazy=False) if not hasattr(io, "read_block") else [io.read_block(lazy=False)]
            return io, blocks
        except Exception as exc:  # each reader fails in its own way; report them all
            errors.append(f"{io_class.__name__}: {type(exc).__name__}: {exc}")
    raise RecordingFormatError(f"{path} could not be read by any neo reader for .{ext} files:\n  "
                               + "\n  ".join(errors))


def _segments(source, allow_pickle: bool = False) -> tuple[list, Any, dict, str]:
    """(segments, io or None, block annotations, name) from a path, Block, Segment or list."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        io, blocks = _read_file(path, allow_pickle)
        segs = [s for b in blocks for s in b.segments]
        ann = {**blocks[0].annotations, "source": str(path), "file_origin": path.name}
        return segs, io, ann, blocks[0].name or path.stem
    if isinstance(source, neo.Block):
        return list(source.segments), None, dict(source.annotations), source.name or "recording"
    if isinstance(source, neo.Segment):
        return [source], None, dict(source.annotations), source.name or "recording"
    if isinstance(source, (list, tuple)):
        segs, ann, name = [], {}, "recording"
        for item in source:
            s, _, a, n = _segments(item, allow_pickle)
            segs += s
            ann = ann or a
            name = n if name == "recording" else name
        return segs, None, ann, name
    raise TypeError(f"cannot load a recording from {type(source).__name__}: give a path, a neo Block or "
                    "Segment, or a list of them")


def _channels(seg) -> list[tuple[str, Any, int]]:
    """(name, signal, column) of every analog channel in a segment."""
    out = []
    for sig in seg.analogsignals:
        names = sig.array_annotations.get("channel_names") if hasattr(sig, "array_annotations") else None
        for col in range(sig.shape[1]):
            name = str(names[col]) if names is not None and len(names) > col else (
                str(sig.name) if sig.shape[1] == 1 and sig.name else f"{sig.name or 'signal'}[{col}]")
            out.append((name, sig, col))
    return out


def _is(units, reference: str) -> bool:
    try:
        pq.Quantity(1.0, units).rescale(reference)
        return True
    except ValueError:
        return False


def _select_channel(channels, channel, where: str):
    listing = ", ".join(f"{i}: '{n}' ({s.units.dimensionality.string})" for i, (n, s, _) in enumerate(channels))
    if channel is None:
        for entry in channels:
            if _is(entry[1].units, "V"):
                return entry
        raise UnitMismatchError(f"{where} has no channel in voltage units; its channels are {listing}. "
                                "Pass channel= to choose one, or check that this is a current-clamp recording")
    if isinstance(channel, int):
        if not 0 <= channel < len(channels):
            raise ChannelError(f"{where} has no channel {channel}; its channels are {listing}")
        entry = channels[channel]
    else:
        match = [e for e in channels if e[0] == channel]
        if not match:
            raise ChannelError(f"{where} has no channel '{channel}'; its channels are {listing}")
        entry = match[0]
    if not _is(entry[1].units, "V"):
        kind = "current" if _is(entry[1].units, "A") else "not voltage"
        raise UnitMismatchError(
            f"channel '{entry[0]}' of {where} is in {entry[1].units.dimensionality.string} ({kind}), but the "
            f"membrane potential (volts) was expected; its channels are {listing}")
    return entry


def _steps_to_current(steps, n_sweeps: int, n_samples: int, dt: float) -> np.ndarray:
    """Step protocol(s) as a current array [S, T] in amperes."""
    per_sweep = steps if steps and isinstance(steps[0], (list, tuple)) and steps[0] \
        and isinstance(steps[0][0], (list, tuple)) else [steps] * n_sweeps
    if len(per_sweep) != n_sweeps:
        raise ProtocolError(f"the protocol gives steps for {len(per_sweep)} sweeps but the recording has "
                            f"{n_sweeps}")
    duration = n_samples * dt
    out = np.zeros((n_sweeps, n_samples))
    t = np.arange(n_samples) * dt
    for k, sweep_steps in enumerate(per_sweep):
        for step in sweep_steps:
            if len(step) != 3:
                raise ProtocolError(f"a protocol step is (start s, stop s, amplitude A); got {step!r}")
            start, stop = float(_si(step[0], "s")), float(_si(step[1], "s"))
            amplitude = float(_si(step[2], "A"))
            if not 0 <= start < stop or stop > duration + 0.5 * dt:
                raise ProtocolError(
                    f"protocol step ({start:g} s, {stop:g} s) of sweep {k} does not fit the sweep length "
                    f"{duration:g} s (steps need 0 <= start < stop <= sweep length)")
            out[k, (t >= start - 1e-12) & (t < stop - 1e-12)] += amplitude
    return out


def _si(value, unit: str):
    if isinstance(value, pq.Quantity):
        return value.rescale(unit).magnitude
    try:  # a Brian2 quantity

        if isinstance(value, Quantity):
            return np.asarray(value)
    except ImportError:  # pragma: no cover
        pass
    return value


def _current_array(current, n_sweeps, n_samples) -> np.ndarray:
    arr = np.asarray(_si(current.detach().cpu().numpy() if isinstance(current, torch.Tensor) else current, "A"),
                     dtype=float)
    if arr.ndim == 1:
        arr = np.broadcast_to(arr, (n_sweeps, arr.shape[0]))
    if arr.ndim != 2 or arr.shape != (n_sweeps, n_samples):
        raise ShapeError(f"current= has shape {arr.shape}; the recording needs [T] = [{n_samples}] or "
                         f"[sweeps, T] = [{n_sweeps}, {n_samples}] (amperes)")
    return np.array(arr)


def _axon_protocol(io, n_sweeps, n_samples, current_channel):
    sigs, names, units = io.read_raw_protocol()
    candidates = [j for j, u in enumerate(units) if _is(u, "A")]
    if current_channel is not None:
        candidates = [j for j, n in enumerate(names) if n == current_channel]
    if not candidates or len(sigs) != n_sweeps:
        return None, None
    j = candidates[0]
    arr = np.stack([pq.Quantity(np.asarray(sigs[k][j], dtype=float), units[j]).rescale("A").magnitude
                    for k in range(n_sweeps)])
    if arr.shape[1] != n_samples:
        return None, None
    return arr, f"protocol in file (AxonIO.read_raw_protocol, DAC '{names[j]}', {units[j]})"


def load(
    source: Any,
    channel: str | int | None = None,
    current: Any = None,
    protocol: Sequence | None = None,
    current_channel: str | None = None,
    spike_threshold: float = 0.0,
    rearm: float | None = -0.01,
    refractory: float = 0.5e-3,
    name: str | None = None,
    allow_pickle: bool = False,
) -> Recording | SpikeData:
    """Load a recording: a path to any file neo reads, a neo Block or Segment, or a list of them.

    NWB 2 files (``.nwb``) are read with pynwb (``tidesim.datasets.nwb.read_nwb``): their
    ``CurrentClampSeries`` and the stimuli paired with them; ``channel`` names the electrode.

    Parameters
    ----------
    channel
        Membrane-potential channel, by name or index (default: the first in voltage units).
    current
        Injected current, [T] or [sweeps, T] in amperes (array, tensor or quantity).
    protocol
        Current steps as ``(start s, stop s, amplitude A)``, for every sweep, or one list per sweep.
    current_channel
        Name of the file's current channel or stimulus DAC (default: the first in current units).
    spike_threshold, rearm, refractory
        Spike detection on the voltage when the file has no spike trains: an upward crossing of
        ``spike_threshold`` (V) counts if the voltage fell below ``rearm`` (V) since the last spike
        and at least ``refractory`` (s) has passed.
    allow_pickle
        Read Python pickle files (neo's ``.pkl``). Unpickling runs any code a file carries, so they
        are refused unless you pass ``True`` for a file you made yourself.

    Returns
    -------
    Recording
        All sweeps of one cell. Files of spike times only (sorted units) give a
        :class:`SpikeData` instead; MATLAB ``.mat`` files of spike times are read by
        :func:`read_spike_times_mat`.
    """
    if isinstance(source, (str, Path)) and Path(source).suffix.lower() == ".mat":
        return read_spike_times_mat(source, name=name)
    if isinstance(source, (str, Path)) and Path(source).suffix.lower() == ".nwb":
        if not Path(source).exists():
            raise FileNotFoundError(f"no such recording file: {source}")
        rec = read_nwb(source, channel=channel, spike_threshold=spike_threshold, rearm=rearm,
                       refractory=refractory, name=name)
        if current is None and protocol is None:
            return rec
        if current is not None and protocol is not None:
            raise ValueError("give current= or protocol=, not both")
        n, T = rec.voltage.shape
        cur = _current_array(current, n, T) if current is not None else _steps_to_current(protocol, n, T, rec.dt)
        rec.annotations["current_source"] = "given to load"
        return Recording(rec.voltage, rec.dt, torch.from_numpy(cur), rec.spike_times, name=rec.name,
                         annotations=rec.annotations, sweep_annotations=rec.sweep_annotations)
    segs, io, ann, default_name = _segments(source, allow_pickle)
    where = f"'{default_name}'"
    if not segs:
        raise RecordingFormatError(f"{where} holds no segments (sweeps)")
    if not any(seg.analogsignals for seg in segs):
        if any(seg.spiketrains for seg in segs):
            return SpikeData.from_segments(segs, name=name or default_name)
        raise RecordingFormatError(f"{where} holds neither analog signals nor spike trains")
    chosen = [_select_channel(_channels(seg), channel, f"{where} sweep {k}") for k, seg in enumerate(segs)]
    dts = {float(sig.sampling_period.rescale("s").magnitude) for _, sig, _ in chosen}
    if len(dts) > 1:
        raise ProtocolError(f"{where}: sweeps have different sampling intervals {sorted(dts)}")
    dt = dts.pop()
    lengths = {sig.shape[0] for _, sig, _ in chosen}
    if len(lengths) > 1:
        raise ProtocolError(f"{where}: sweeps have different lengths {sorted(lengths)} samples")
    n_samples, n_sweeps = lengths.pop(), len(segs)
    voltage = np.stack([sig[:, col].rescale("V").magnitude.ravel() for _, sig, col in chosen])
    ann = {**ann, "channel": chosen[0][0]}
    if current is not None and protocol is not None:
        raise ValueError("give current= or protocol=, not both")
    cur, cur_source = None, None
    if current is not None:
        cur, cur_source = _current_array(current, n_sweeps, n_samples), "given to load (current=)"
    elif protocol is not None:
        cur, cur_source = _steps_to_current(protocol, n_sweeps, n_samples, dt), "given to load (protocol=)"
    else:
        in_file = []
        for seg in segs:
            amps = [(n, s, c) for n, s, c in _channels(seg) if _is(s.units, "A")
                    and (current_channel is None or n == current_channel)]
            # a channel named for the stimulus wins over other current-unit channels
            amps.sort(key=lambda e: e[0].lower() not in _STIMULUS_NAMES)
            if not amps:
                break
            in_file.append(amps[0][1][:, amps[0][2]].rescale("A").magnitude.ravel())
        if len(in_file) == n_sweeps:
            cur, cur_source = np.stack(in_file), "current channel in file"
        elif io is not None and hasattr(io, "read_raw_protocol"):
            cur, cur_source = _axon_protocol(io, n_sweeps, n_samples, current_channel)
    ann["current_source"] = cur_source or "none"
    spikes = []
    for k, seg in enumerate(segs):
        if seg.spiketrains:
            t0 = float(seg.t_start.rescale("s").magnitude)
            times = np.sort(np.concatenate([st.rescale("s").magnitude - t0 for st in seg.spiketrains]))
            spikes.append(times)
        else:
            spikes.append(detect_spikes(voltage[k], dt, spike_threshold, rearm, refractory))
    ann["spikes_source"] = "file" if any(seg.spiketrains for seg in segs) else (
        f"detected: crossing {spike_threshold * 1e3:g} mV, re-armed below "
        f"{'-' if rearm is None else f'{rearm * 1e3:g} mV'}, refractory {refractory * 1e3:g} ms")
    sweep_ann = [{**seg.annotations, "t_start": float(seg.t_start.rescale("s").magnitude)} for seg in segs]
    return Recording(torch.from_numpy(voltage), dt, None if cur is None else torch.from_numpy(cur), spikes,
                     name=name or default_name, annotations=ann, sweep_annotations=sweep_ann)
