"""Spike encoders (ts.encode): statistics, reproducibility, documented semantics, snnTorch parity, errors."""

import math

import pytest
import snntorch.spikegen as spikegen  # noqa: E402  (a test dependency: fail, never skip)
import torch

from tidesim import encode
from tidesim.core.errors import ShapeError, TidesimError


def _binomial_ok(counts, n, p, z=5.0):
    """|count/n - p| within z standard errors (exact 0/1 rates when p is 0 or 1)."""
    sd = torch.sqrt(p * (1 - p) / n)
    return bool(((counts / n - p).abs() <= z * sd + 1e-12).all())


# ---------------------------------------------------------------------------------------------- rate

def test_rate_matches_intensities_and_is_binary():
    p = torch.tensor([[0.0, 0.05, 0.3, 0.5], [0.7, 0.95, 1.0, 0.2]], dtype=torch.float64)
    T = 4000
    s = encode.rate(p, T, seed=1)
    assert s.shape == (T, 2, 4) and s.dtype == torch.float64
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    assert _binomial_ok(s.sum(0), T, p)
    assert torch.all(s[:, 0, 0] == 0) and torch.all(s[:, 1, 2] == 1)  # p = 0 never, p = 1 always


def test_rate_gain_and_poisson_form():
    x = torch.tensor([0.25, 0.5, 1.0])
    s = encode.rate(x, 5000, gain=0.4, seed=3)
    assert _binomial_ok(s.sum(0).double(), 5000, 0.4 * x.double())
    dt, max_rate = 1e-3, 80.0  # Hz: p = x * 80 * 1e-3
    s = encode.rate(x, 20000, max_rate=max_rate, dt=dt, seed=4)
    assert _binomial_ok(s.sum(0).double(), 20000, x.double() * max_rate * dt)
    hz = s.sum(0) / (20000 * dt)
    assert torch.allclose(hz, x * max_rate, rtol=0.15)


def test_rate_time_varying_input():
    p = torch.zeros(50, 2, 3)
    p[10:20] = 1.0
    s = encode.rate(p, None, seed=0)
    assert s.shape == p.shape
    assert torch.equal(s, p)  # probabilities 0/1 are deterministic


def test_rate_seeds_reproducible_and_global_rng_untouched():
    x = torch.full((8, 16), 0.5)
    state = torch.random.get_rng_state()
    a, b, c = encode.rate(x, 20, seed=7), encode.rate(x, 20, seed=7), encode.rate(x, 20, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(encode.rate(x, 20, generator=g1), encode.rate(x, 20, generator=g2))
    assert not torch.equal(encode.rate(x, 20), encode.rate(x, 20))  # unseeded: fresh random streams
    assert torch.equal(torch.random.get_rng_state(), state)


def test_rate_statistics_agree_with_snntorch():
    x = torch.rand(3, 10, generator=torch.Generator().manual_seed(0))
    T = 3000
    ours = encode.rate(x, T, seed=11).sum(0).double()
    with torch.random.fork_rng():
        torch.manual_seed(11)
        theirs = spikegen.rate(x, num_steps=T).sum(0).double()
    p = x.double()
    assert _binomial_ok(ours, T, p) and _binomial_ok(theirs, T, p)
    # two independent binomials: difference within 5 sd of the difference
    sd = torch.sqrt(2 * p * (1 - p) / T)
    assert bool(((ours - theirs).abs() / T <= 5 * sd + 1e-12).all())


@pytest.mark.parametrize("kwargs, match", [
    (dict(data=torch.tensor([-0.1, 0.5]), num_steps=5), r"\[0, 1\]"),
    (dict(data=torch.tensor([0.5, 1.2]), num_steps=5), r"\[0, 1\]"),
    (dict(data=torch.tensor([0.5, math.nan]), num_steps=5), "NaN"),
    (dict(data=torch.tensor([0.5]), num_steps=0), "num_steps"),
    (dict(data=torch.tensor([0.5]), num_steps=-3), "num_steps"),
    (dict(data=torch.tensor([0.5]), num_steps=2.5), "num_steps"),
    (dict(data=torch.tensor([0.8]), num_steps=5, gain=1.5), "above 1"),
    (dict(data=torch.tensor([0.8]), num_steps=5, max_rate=2000.0, dt=1e-3), r"rate\*dt"),
    (dict(data=torch.tensor([0.8]), num_steps=5, max_rate=20.0), "both max_rate"),
    (dict(data=torch.tensor([0.8]), num_steps=5, seed=1, generator=torch.Generator()), "not both"),
])
def test_rate_errors(kwargs, match):
    with pytest.raises(encode.EncodingError, match=match):
        encode.rate(**kwargs)
    assert issubclass(encode.EncodingError, TidesimError) and issubclass(encode.EncodingError, ValueError)


# ---------------------------------------------------------------------------------------------- latency

def _first_step(spikes):
    """Step of each input's spike, or -1 if none."""
    T = spikes.shape[0]
    steps = torch.arange(T).view(-1, *([1] * (spikes.dim() - 1))).expand_as(spikes)
    return torch.where(spikes.sum(0) > 0, (steps * spikes).sum(0).long(), torch.full(spikes.shape[1:], -1))


@pytest.mark.parametrize("method", ["linear", "log"])
def test_latency_one_spike_brighter_earlier(method):
    x = torch.rand(4, 50, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    s = encode.latency(x, 30, method=method, clip=True)
    assert s.shape == (30, 4, 50)
    assert s.sum(0).max() <= 1
    assert torch.equal(s.sum(0) == 1, x >= 0.01 if method == "linear" else x > 0.01)
    t = _first_step(s).flatten()
    order = torch.argsort(x.flatten(), descending=True)
    fired = t[order][t[order] >= 0]
    assert torch.all(fired[1:] >= fired[:-1])  # never earlier for a dimmer input
    assert fired.min() == 0 and fired.max() == 29  # normalize: the code spans the window


def test_latency_hand_values_and_below_threshold():
    # linear, normalize: t = (T-1) * (1 - x) = 4 * [1, 0.5, 0] -> steps [4, 2, 0]; 0.005 < threshold
    x = torch.tensor([0.25, 0.5, 1.0, 0.005])
    s = encode.latency(x, 5)
    assert _first_step(s).tolist() == [3, 2, 0, 4]  # 4 * 0.75 = 3; below threshold -> last step
    assert _first_step(encode.latency(x, 5, clip=True)).tolist() == [3, 2, 0, -1]
    # first_spike_time shifts and narrows the window: t = 2 + (5 - 1 - 2) * (1 - x)
    assert _first_step(encode.latency(x, 5, first_spike_time=2, clip=True)).tolist() == [4, 3, 2, -1]
    # log, tau = 10 steps, threshold 0.01: t = 10 ln(x / (x - 0.01))
    x = torch.tensor([0.02, 0.05, 1.0, 0.01], dtype=torch.float64)
    expect = [round(10 * math.log(v / (v - 0.01))) for v in (0.02, 0.05, 1.0)] + [-1]
    assert expect == [7, 2, 0, -1]
    assert _first_step(encode.latency(x, 10, tau=10, method="log", normalize=False, clip=True)).tolist() == expect
    t = encode.latency_times(x, 10, tau=10, method="log", normalize=False, clip=True)
    assert math.isclose(float(t[0]), 10 * math.log(2)) and math.isinf(float(t[3]))


@pytest.mark.parametrize("fst", [0, 3])
def test_latency_linear_equals_snntorch(fst):
    x = torch.rand(6, 40, generator=torch.Generator().manual_seed(fst))
    x[x < 0.2] = 0.0  # plenty of sub-threshold inputs: clip=True drops them in both
    ours = encode.latency(x, 25, method="linear", normalize=True, clip=True, first_spike_time=fst)
    theirs = spikegen.latency(x, num_steps=25, linear=True, normalize=True, clip=True, first_spike_time=fst)
    assert torch.equal(ours, theirs)
    # without normalize: t = tau * (1 - x)
    x = x.clamp(min=0.05)
    ours = encode.latency(x, 25, tau=20.0, method="linear", normalize=False)
    theirs = spikegen.latency(x, num_steps=25, tau=20, linear=True, normalize=False)
    assert torch.equal(ours, theirs)


def test_latency_log_equals_snntorch_above_threshold():
    x = 0.02 + 0.98 * torch.rand(5, 30, generator=torch.Generator().manual_seed(9))
    for normalize, tau in ((True, 1.0), (False, 5.0)):
        ours = encode.latency(x, 40, tau=tau, method="log", normalize=normalize)
        theirs = spikegen.latency(x, num_steps=40, tau=tau, normalize=normalize)
        assert torch.equal(ours, theirs), normalize


def test_latency_log_sub_threshold_inputs_do_not_squash_the_code():
    # snnTorch clamps the 0 to threshold + 1e-7 and normalises by its huge time, pushing the others to
    # step 0; here the dimmest spiking input (0.2) takes the last step
    x = torch.tensor([0.0, 0.2, 0.6, 1.0])
    t = _first_step(encode.latency(x, 20, method="log", clip=True))
    assert t.tolist()[0] == -1 and t[1] == 19 and 0 <= t[3] < t[2] < t[1]
    assert _first_step(spikegen.latency(x, num_steps=20, normalize=True, clip=True))[1:].max() == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(data=torch.tensor([0.5]), num_steps=5, tau=10.0, normalize=False), "after the last step"),
    (dict(data=torch.tensor([0.5]), num_steps=5, threshold=1.0), "threshold"),
    (dict(data=torch.tensor([0.5]), num_steps=5, method="exp"), "method"),
    (dict(data=torch.tensor([0.5]), num_steps=5, first_spike_time=5), "first_spike_time"),
    (dict(data=torch.tensor([1.5]), num_steps=5), r"\[0, 1\]"),
    (dict(data=torch.tensor([0.5]), num_steps=0), "num_steps"),
    (dict(data=torch.tensor([0.5, math.nan]), num_steps=5), "NaN"),
])
def test_latency_errors(kwargs, match):
    with pytest.raises(encode.EncodingError, match=match):
        encode.latency(**kwargs)


# ---------------------------------------------------------------------------------------------- delta

def test_delta_hand_examples():
    a = torch.tensor([1, 2, 2.9, 3, 3.9])
    assert encode.delta(a, threshold=1).tolist() == [1, 1, 0, 0, 0]
    assert encode.delta(a, threshold=1, padding=True).tolist() == [0, 1, 0, 0, 0]
    b = torch.tensor([1, 2, 0, 2, 2.9])
    s = encode.delta(b, threshold=1, off_spike=True)
    assert s.shape == (5, 2)
    assert s[:, 0].tolist() == [1, 1, 0, 1, 0] and s[:, 1].tolist() == [0, 0, 1, 0, 0]


def test_delta_spikes_only_on_change_and_channels():
    x = torch.zeros(30, 3, 4)
    x[10:, 0, 1] = 1.0  # a step up at t = 10
    x[20:, 2, 3] = -0.5  # a step down at t = 20
    s = encode.delta(x, threshold=0.2, off_spike=True, padding=True)
    assert s.shape == (30, 3, 2, 4)  # channel axis after batch
    on, off = s[:, :, 0], s[:, :, 1]
    assert torch.nonzero(on).tolist() == [[10, 0, 1]]
    assert torch.nonzero(off).tolist() == [[20, 2, 3]]
    assert torch.equal(encode.delta(torch.full((10, 2), 3.0), padding=True), torch.zeros(10, 2))


def test_delta_equals_snntorch():
    x = torch.randn(40, 3, 5, generator=torch.Generator().manual_seed(1)).cumsum(0)
    for padding in (False, True):
        assert torch.equal(encode.delta(x, 0.5, padding=padding), spikegen.delta(x, 0.5, padding=padding))
        s = encode.delta(x, 0.5, off_spike=True, padding=padding)
        signed = spikegen.delta(x, 0.5, padding=padding, off_spike=True)
        assert torch.equal(s[:, :, 0] - s[:, :, 1], signed)


def test_delta_errors():
    with pytest.raises(encode.EncodingError, match="threshold"):
        encode.delta(torch.zeros(5, 2), threshold=0)
    with pytest.raises(encode.EncodingError, match="NaN"):
        encode.delta(torch.tensor([0.0, math.nan]))
    with pytest.raises(ShapeError):
        encode.delta(torch.tensor(1.0))


# ---------------------------------------------------------------------------------------------- population

def test_population_shape_and_receptive_fields():
    v = torch.tensor([[0.0, 5.0], [10.0, 2.5]], dtype=torch.float64)
    r = encode.population(v, 5, 0.0, 10.0, sigma=1.0)
    assert r.shape == (2, 2, 5)
    centres = [0.0, 2.5, 5.0, 7.5, 10.0]
    expect = [[math.exp(-((5.0 - c) ** 2) / 2) for c in centres]]
    assert torch.allclose(r[0, 1], torch.tensor(expect[0], dtype=torch.float64))
    assert r[1, 1, 1] == 1.0  # 2.5 sits on neuron 1's centre


def test_population_round_trip():
    n, low, high = 12, -1.0, 3.0
    spacing = (high - low) / (n - 1)
    v = torch.linspace(low, high, 301, dtype=torch.float64)
    r = encode.population(v, n, low, high)
    err = (encode.population_decode(r, low, high) - v).abs()
    assert err.max() < 0.5 * spacing  # everywhere, edges included
    interior = (v > low + 2 * spacing) & (v < high - 2 * spacing)
    assert err[interior].max() < 0.05 * spacing
    centres = torch.linspace(low, high, n, dtype=torch.float64)
    assert torch.allclose(encode.population_decode(encode.population(centres, n, low, high), low, high), centres)
    # the plain centre of mass is pulled inwards at the edges (documented)
    glob = encode.population_decode(r, low, high, window=None)
    assert glob[0] > low + 0.3 * spacing and glob[-1] < high - 0.3 * spacing


def test_population_round_trip_through_rate_spikes():
    n, low, high = 16, 0.0, 1.0
    v = torch.linspace(0.15, 0.85, 15)
    spikes = encode.rate(encode.population(v, n, low, high), 400, seed=0)  # [T, 15, n]
    decoded = encode.population_decode(spikes.sum(0), low, high)
    assert (decoded - v).abs().max() < 0.5 / (n - 1)


def test_population_errors_and_silence():
    with pytest.raises(encode.EncodingError, match=r"\[low, high\]"):
        encode.population(torch.tensor([1.5]), 4, 0.0, 1.0)
    with pytest.raises(encode.EncodingError, match="n_neurons"):
        encode.population(torch.tensor([0.5]), 1, 0.0, 1.0)
    with pytest.raises(encode.EncodingError, match="low < high"):
        encode.population(torch.tensor([0.5]), 4, 1.0, 1.0)
    with pytest.raises(encode.EncodingError, match="sigma"):
        encode.population(torch.tensor([0.5]), 4, 0.0, 1.0, sigma=0.0)
    with pytest.raises(encode.EncodingError, match="NaN"):
        encode.population(torch.tensor([math.nan]), 4, 0.0, 1.0)
    with pytest.raises(encode.EncodingError, match=">= 0"):
        encode.population_decode(torch.tensor([1.0, -1.0]), 0.0, 1.0)
    assert math.isnan(float(encode.population_decode(torch.zeros(4), 0.0, 1.0)))
    assert float(encode.population_decode(torch.zeros(4), 0.0, 1.0, empty=0.5)) == 0.5
