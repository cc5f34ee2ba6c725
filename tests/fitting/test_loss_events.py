"""Losses on spike events (the path of gradient-free evaluations) against elephant and against the
raster losses they replace."""

import numpy as np
import pytest
import torch

import tidesim as ts
from tidesim.fitting import loss_events as le
from tidesim.fitting.data import FitData
from tidesim.fitting.losses import ModelOutput, SpikeCount, TraceMSE, VanRossum


def _events(rng, T, n, rate):
    raster = rng.random((T, n)) < rate
    steps, cols = np.nonzero(raster)
    return steps.astype(np.int64), cols.astype(np.int64), raster


def test_van_rossum_on_events_equals_elephants():
    rng = np.random.default_rng(4)
    T, n, dt, tau = 3000, 6, 1e-4, 8e-3
    ms, mc, _ = _events(rng, T, n, 0.004)
    ts_, tc, _ = _events(rng, T, n, 0.006)
    mc[mc == 5], tc[tc == 5] = 4, 4  # column 5: no spikes on either side
    ours = le.van_rossum_squared((ms, mc), (ts_, tc), n, dt, tau)
    for k in range(n):
        ref = ts.analysis.van_rossum_distance([ms[mc == k] * dt, ts_[tc == k] * dt], tau=tau)[0, 1]
        assert np.sqrt(ours[k]) == pytest.approx(ref, rel=1e-6, abs=1e-9), k
    assert ours[5] == 0


def test_merged_windows_are_the_union_of_the_spike_windows():
    steps = np.array([10, 12, 30, 0, 99, 50])
    cols = np.array([0, 0, 0, 1, 1, 2])
    col, a, b = le.merged_windows(steps, cols, before=2, after=3, T=100)
    assert list(zip(col, a, b)) == [(0, 8, 16), (0, 28, 34), (1, 0, 4), (1, 97, 100), (2, 48, 54)]


@pytest.mark.parametrize("rate", [0.002, 0.05])  # sparse spikes; and windows that cover most samples
def test_event_losses_equal_the_raster_losses(rate):
    rng = np.random.default_rng(7)
    T, B, S, dt = 4000, 5, 3, 1e-4
    steps, cols, raster = _events(rng, T, B * S, rate)
    voltage = torch.from_numpy(rng.normal(-0.06, 0.01, (T, B, S)))
    rec = (rng.random((T, S)) < 0.003).astype(np.float64)
    data = FitData(dt, torch.from_numpy(rng.normal(-0.06, 0.01, (T, S))), torch.zeros(T, S), torch.from_numpy(rec),
                   [np.nonzero(rec[:, s])[0] * dt for s in range(S)], [f"sweep {s}" for s in range(S)])
    with_raster = ModelOutput(voltage, torch.from_numpy(raster.astype(np.float64)).reshape(T, B, S), dt)
    with_events = ModelOutput(voltage.clone(), None, dt, events=(steps, cols))
    for loss in (TraceMSE(), VanRossum(tau=10e-3), SpikeCount()):
        a, b = loss(with_raster, data), loss(with_events, data)
        assert a.shape == b.shape == (B,)
        assert torch.allclose(a, b, rtol=1e-10, atol=0), type(loss).__name__
    assert torch.equal(with_events.spikes, with_raster.spikes)  # built on demand
