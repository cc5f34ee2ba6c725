"""What the compiled neuron engine hands back and what it allocates: spike events instead of a raster
where no gradient needs one, threads over neurons, the float32 exp, and the memory check."""

import ctypes
import tracemalloc

import numpy as np
import pytest
import torch

import tidesim as ts
from tidesim.codegen import build
from tidesim.codegen.c_forward import EXPF
from tidesim.core import inputs


def test_a_run_without_gradient_returns_the_eager_engines_spikes_as_events():
    model = ts.models.get("adex")
    I = torch.linspace(0.6e-9, 1.4e-9, 7, dtype=torch.float64)
    eager = ts.simulate(model, 0.3, params={"I": I}, engine="eager", record=["v"])
    compiled = ts.simulate(model, 0.3, params={"I": I}, engine="compiled", record=["v"])
    assert compiled._spikes is None  # nothing [T, n] built for the spikes
    steps, neurons = compiled.spike_events
    assert len(steps) == int(eager.spikes.sum()) > 20
    assert np.all(np.diff(steps) >= 0)
    want_steps, want_neurons = np.nonzero(eager.spikes.numpy())
    assert np.array_equal(steps, want_steps) and np.array_equal(neurons, want_neurons)
    assert torch.equal(compiled.spike_counts, eager.spike_counts)
    for a, b in zip(compiled.spike_trains, eager.spike_trains):
        assert np.array_equal(a, b)
    assert torch.equal(compiled.spikes, eager.spikes)  # the raster, built on demand


def test_spikes_only_allocates_nothing_per_step():
    """20,000 neurons x 2,000 steps with record=[]: a float64 raster would be 305 MiB."""
    model = ts.models.get("adex")
    I = torch.linspace(0.6e-9, 1.4e-9, 20_000, dtype=torch.float64)
    ts.simulate(model, 0.001, params={"I": I}, record=[], engine="compiled")  # the kernel is built
    tracemalloc.start()
    try:
        res = ts.simulate(model, 0.2, params={"I": I}, record=[], engine="compiled", threads=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(res.spike_events[0]) > 20_000
    assert peak < 30 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_threads_over_neurons_change_nothing():
    model = ts.models.get("izhikevich")
    I = torch.linspace(5e-12, 15e-12, 23, dtype=torch.float64) * 1e3
    one = ts.simulate(model, 0.2, params={"I": I}, engine="compiled", threads=1)
    four = ts.simulate(model, 0.2, params={"I": I}, engine="compiled", threads=4)
    assert len(one.spike_events[0]) > 50
    for a, b in zip(one.spike_events, four.spike_events):
        assert np.array_equal(a, b)
    for name in model.state_names:
        assert torch.equal(one[name], four[name]) and torch.equal(one.final_state[name], four.final_state[name])


def test_event_buffers_grow_when_a_run_has_more_spikes_than_they_hold():
    model = ts.models.get("lif")
    I = torch.full((3,), 2e-9, dtype=torch.float64)
    eager = ts.simulate(model, 3.0, params={"I": I}, engine="eager", record=[])
    compiled = ts.simulate(model, 3.0, params={"I": I}, engine="compiled", record=[])
    assert int(eager.spikes.sum()) > 1024 + 4 * 3  # beyond the first buffer's capacity
    assert np.array_equal(compiled.spike_events[0], np.nonzero(eager.spikes.numpy())[0])


def test_float32_exp_is_within_two_ulp_and_keeps_inf_nan_and_underflow():
    source = "#include <math.h>\n#include <stdint.h>\n" + EXPF + \
        "void tidesim_exps(const float* x, float* y, int64_t n) { for (int64_t k = 0; k < n; k++) " \
        "y[k] = _expf32(x[k]); }\n"
    lib = build.load(source, "test", native=True)
    lib.tidesim_exps.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    x = np.concatenate([np.linspace(-86.4, 88.7, 200_001, dtype=np.float32),
                        np.array([100.0, -100.0, np.inf, -np.inf, np.nan, 0.0], dtype=np.float32)])
    y = np.empty_like(x)
    lib.tidesim_exps(x.ctypes.data, y.ctypes.data, len(x))
    exact = np.exp(x[:-6].astype(np.float64)).astype(np.float32)
    ulp = np.abs(y[:-6].view(np.int32).astype(np.int64) - exact.view(np.int32).astype(np.int64))
    assert ulp.max() <= 2, ulp.max()
    assert y[-6] == np.inf and y[-5] == 0.0 and y[-4] == np.inf and y[-3] == 0.0 and np.isnan(y[-2])
    assert y[-1] == 1.0


def test_the_memory_check_counts_what_the_engine_allocates(monkeypatch):
    """10,000 neurons x 1,000 steps: 76 MiB per float64 [T, n] array, and 80 MiB said to be free."""
    monkeypatch.setattr(inputs, "available_memory", lambda device: 80 * 2**20)
    model = ts.models.get("lif")
    I = torch.full((10_000,), 0.5e-9, dtype=torch.float64)
    res = ts.simulate(model, 0.1, params={"I": I}, record=[], engine="compiled")  # events only: fits
    assert res.n == 10_000
    with pytest.raises(ts.InsufficientMemoryError, match="spike raster") as err:
        ts.simulate(model, 0.1, params={"I": I}, record=[], engine="eager")
    assert "10000 neurons x 1000 steps" in str(err.value)
    with pytest.raises(ts.InsufficientMemoryError, match="checkpoint=True") as err:
        ts.simulate(model, 0.1, params={"I": I.clone().requires_grad_(True)}, record=[], engine="compiled")
    assert "stored state(s) for the backward pass" in str(err.value)


@pytest.mark.parametrize("threads", ["two", 0, 1.5, True])
def test_threads_must_be_a_positive_whole_number(threads):
    with pytest.raises(ts.InputError, match="threads must be a positive whole number"):
        ts.simulate(ts.models.get("lif"), 0.01, threads=threads)
