"""Synthetic ground truth: a Recording made by a zoo model with known parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import neo
import numpy as np
import quantities as pq
import torch

from tidesim.core.files import atomic_write, check_new
from tidesim.core.result import dims_to_quantities
from tidesim.datasets.loading import _steps_to_current
from tidesim.datasets.nwb import write_nwb
from tidesim.datasets.recording import Recording
from tidesim.engines.simulate import simulate

__all__ = ["synthetic", "save"]


def synthetic(
    model,
    params: Mapping[str, Any] | None = None,
    protocol: Any = None,
    noise: float = 0.0,
    jitter: float = 0.0,
    dt: float = 1e-4,
    duration: float | None = None,
    input: str = "I",
    voltage: str = "v",
    seed: int | None = None,
    name: str | None = None,
) -> Recording:
    """Simulate ``model`` with known ``params`` and return it as a :class:`Recording`.

    Parameters
    ----------
    protocol
        The stimulus: a Recording (its current and sampling are used), a current array
        ``[sweeps, T]`` in amperes, or step amplitudes (A) with ``duration``: each amplitude is one
        sweep with a step from 10% to 90% of the sweep, or a list of ``(start, stop, amplitude)``
        step lists, one per sweep.
    noise
        Standard deviation of Gaussian recording noise added to the voltage (V).
    jitter
        Standard deviation of Gaussian jitter added to each spike time (s).
    voltage, input
        The model's membrane-potential state and current parameter.
    """
    if isinstance(protocol, Recording):
        current = protocol.current.clone()
        dt = protocol.dt
    elif isinstance(protocol, (torch.Tensor, np.ndarray)) and np.ndim(protocol) == 2:
        current = torch.as_tensor(np.asarray(protocol, dtype=float))
    else:
        if duration is None:
            raise ValueError("give duration= (seconds) with a step protocol")
        n_samples = int(round(duration / dt))
        steps = list(protocol)
        if steps and not isinstance(steps[0], (list, tuple)):
            steps = [[(0.1 * duration, 0.9 * duration, float(a))] for a in steps]
        current = torch.from_numpy(_steps_to_current(steps, len(steps), n_samples, dt))
    n_sweeps, n_samples = current.shape
    params = dict(params or {})
    res = simulate(model, duration=n_samples * dt, dt=dt, n=n_sweeps, params=params,
                   inputs={input: current.T.contiguous()}, record=[voltage], seed=seed)
    gen = np.random.default_rng(seed)
    v = res[voltage].detach().T.contiguous().to(torch.float64)
    if noise:
        v = v + torch.from_numpy(gen.normal(0.0, noise, size=tuple(v.shape)))
    trains = []
    for times in res.spike_trains:
        times = np.asarray(times, dtype=float)
        if jitter and len(times):
            times = np.sort(np.clip(times + gen.normal(0.0, jitter, size=len(times)), 0.0, n_samples * dt))
        trains.append(times)
    true = {k: (v_.detach().cpu().numpy().tolist() if isinstance(v_, torch.Tensor) else v_)
            for k, v_ in params.items()}
    return Recording(v, dt, current, trains, name=name or f"synthetic {model.name}",
                     annotations={"synthetic": True, "model": model.name, "true_parameters": true,
                                  "noise_V": noise, "jitter_s": jitter, "seed": seed,
                                  "current_source": "synthetic protocol", "spikes_source": "model"})


def _result_block(res):
    """A SimulationResult as a neo Block with one Segment per neuron (loaded back as sweeps)."""


    block = neo.Block(name=f"{res.model.name} ({res.backend})", model=res.model.name, backend=res.backend)
    for k in range(res.n):
        seg = neo.Segment(name=f"neuron {k}", neuron=k)
        for name, values in res.states.items():
            seg.analogsignals.append(neo.AnalogSignal(
                values[:, k].detach().cpu().numpy()[:, None], units=dims_to_quantities(res.model.dims[name]),
                sampling_period=res.dt * pq.s, name=name))
        injected = res.params.get("I")
        if injected is not None and res.model.unit_of("I") == "A":
            values = torch.as_tensor(injected).detach().cpu().to(torch.float64)
            values = values.expand(len(res.t), res.n) if values.ndim < 2 else values
            seg.analogsignals.append(neo.AnalogSignal(values[:, k].numpy()[:, None], units=pq.A,
                                                      sampling_period=res.dt * pq.s, name="current"))
        seg.spiketrains.append(neo.SpikeTrain(res.spike_trains[k] * pq.s, t_stop=res.duration * pq.s,
                                              name="spikes"))
        block.segments.append(seg)
    return block


def save(obj, path, overwrite: bool = False, **nwb: Any) -> None:
    """Write a Recording, SpikeData or SimulationResult to NIX (``.nix``, ``.h5``, through neo), or a
    Recording to NWB 2 (``.nwb``, through pynwb: :func:`tidesim.datasets.nwb.write_nwb`, whose ``subject=``
    it passes on).

    The file is written beside ``path`` and moved onto it when complete; an existing file is
    replaced only with ``overwrite=True``."""
    path = Path(path)
    if path.suffix.lower() == ".nwb":
        if not isinstance(obj, Recording):
            raise ValueError(f"save writes NWB files for a Recording (current-clamp sweeps); got a "
                             f"{type(obj).__name__}: save it as .nix")
        write_nwb(obj, path, overwrite=overwrite, **nwb)
        return
    if path.suffix.lower() not in (".nix", ".h5"):
        raise ValueError(f"save writes NIX files (.nix) and NWB files (.nwb); got '{path.suffix}'")
    check_new([path], overwrite, "saving the recording")
    block = _result_block(obj) if hasattr(obj, "spike_trains") and hasattr(obj, "model") else obj.to_neo()

    def write(tmp: Path) -> None:
        tmp.unlink()  # NixIO creates its own file
        with neo.io.NixIO(str(tmp), mode="ow") as io:
            io.write_block(block)

    atomic_write(path, write)
