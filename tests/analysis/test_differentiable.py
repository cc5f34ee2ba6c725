"""The torch statistics agree with elephant on the same trains and pass gradients to parameters."""

import brian2 as b2
import numpy as np
import pytest
import torch
from scipy.signal import lfilter

import tidesim as ts
from tidesim.analysis import torch as tsa


def _raster(rng, T, n, p):
    return torch.as_tensor(rng.random((T, n)) < p, dtype=torch.float64)


def test_filtered_is_a_first_order_filter():
    rng = np.random.default_rng(0)
    s = _raster(rng, 300, 3, 0.05)
    dt, tau = 1e-4, 3e-3
    expected = lfilter([1.0], [1.0, -np.exp(-dt / tau)], s.numpy(), axis=0)
    assert np.allclose(tsa.filtered(s, dt, tau).numpy(), expected, atol=1e-12)


def test_rate_and_count():
    s = torch.zeros(1000, 2, dtype=torch.float64)
    s[::100, 1] = 1
    assert tsa.spike_count(s).tolist() == [0, 10]
    assert tsa.firing_rate(s, 1e-4).tolist() == pytest.approx([0, 100.0])


def test_van_rossum_matches_elephant():
    rng = np.random.default_rng(2)
    T, n, dt, tau = 2000, 4, 1e-4, 5e-3
    a, b = _raster(rng, T, n, 0.01), _raster(rng, T, n, 0.01)
    ours = tsa.van_rossum_distance(a, b, dt, tau).numpy()
    for k in range(n):
        ta = np.nonzero(a[:, k].numpy())[0] * dt
        tb = np.nonzero(b[:, k].numpy())[0] * dt
        ref = ts.analysis.van_rossum_distance([ta, tb], tau=tau)[0, 1]
        assert ours[k] == pytest.approx(ref, rel=1e-6), k


def test_gradient_reaches_parameters_through_surrogate_spikes():
    model = ts.models.get("lif")
    dt = 0.1 * b2.ms
    target = ts.simulate(model, 100 * b2.ms, n=1, dt=dt, params={"I": 0.35 * b2.nA}).spikes
    I = torch.tensor([0.25e-9], dtype=torch.float64, requires_grad=True)
    res = ts.simulate(model, 100 * b2.ms, n=1, dt=dt, params={"I": I})
    d = tsa.van_rossum_distance(res.spikes, target, float(dt), 10e-3).sum()
    d.backward()
    assert torch.isfinite(I.grad).all() and I.grad.item() < 0  # more current: closer to the faster target


@pytest.mark.parametrize("name", ["regular_spiking", "fast_spiking"])
def test_torch_statistics_on_real_spike_trains(name):
    # the recording's spike times on its own sample grid, as a [T, sweeps] raster
    rec = ts.datasets.load_bundled(name)
    raster = torch.zeros(rec.n_samples, len(rec), dtype=torch.float64)
    for k, times in enumerate(rec.spike_times):
        raster[np.round(np.asarray(times) / rec.dt).astype(int), k] = 1
    rates = tsa.firing_rate(raster, rec.dt).numpy()
    assert np.allclose(rates, ts.analysis.firing_rate(rec), rtol=1e-9)
    # van Rossum between consecutive sweeps, torch vs elephant
    ours = tsa.van_rossum_distance(raster[:, 1:], raster[:, :-1], rec.dt, 10e-3).numpy()
    for k in range(1, len(rec), 4):
        ref = ts.analysis.van_rossum_distance([rec.spike_times[k], rec.spike_times[k - 1]], tau=10e-3)[0, 1]
        assert ours[k - 1] == pytest.approx(ref, rel=1e-6, abs=1e-9)
