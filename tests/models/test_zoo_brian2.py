"""Every zoo model agrees with Brian2: traces before the first spike, spike counts and times.

float64, deterministic step currents that make each model fire repeatedly, 1 s of simulated
time, Brian2's numpy target (no compile wait). A perturbed-parameter run shows the comparison
can fail.
"""

import numpy as np
import pytest
import torch

import tidesim as ts
from tidesim.engines.simulate import n_steps_for
from tidesim.validation.neuron import compare

pytestmark = pytest.mark.brian2

DURATION = 1.0


def step_inputs(name, n=3):
    spec = ts.models.module(name).VALIDATION
    dt = spec["dt"]
    T = n_steps_for(DURATION, dt)
    amps = torch.tensor(np.linspace(min(spec["amplitudes"]), max(spec["amplitudes"]), n), dtype=torch.float64)
    series = torch.zeros(T, n, dtype=torch.float64)
    series[int(round(0.02 / dt)):] = amps  # the step starts at 20 ms: a sub-threshold stretch first
    return {spec["input"]: series}, dt


@pytest.mark.parametrize("name", [
    "lif", "adex", "izhikevich", pytest.param("hodgkin_huxley", marks=pytest.mark.slow)])
def test_zoo_model_agrees_with_brian2(name):
    model = ts.models.get(name)
    inputs, dt = step_inputs(name)
    report = ts.crossvalidate(model, duration=DURATION, dt=dt, inputs=inputs, target="numpy")
    table = report.to_dataframe()
    assert report.passed, str(report)
    counts = report.spikes.counts_brian2
    assert np.all(counts >= 5), f"{name} should fire repeatedly, got {counts}"
    assert np.array_equal(report.spikes.counts_torch, counts)
    assert report.spikes.max_time_difference <= dt * (1 + 1e-9)
    for v in report.variables:
        assert v.max_abs_error_before_first_spike <= 1e-6 * v.scale, v
    assert set(table.index) == set(model.state_names) | {"spikes"}


def test_perturbed_parameter_is_caught():
    model = ts.models.get("adex")
    inputs, dt = step_inputs("adex")
    res_b2 = ts.simulate(model, duration=DURATION, dt=dt, inputs=inputs, backend="brian2", target="numpy")
    res_same = ts.simulate(model, duration=DURATION, dt=dt, inputs=inputs)
    res_off = ts.simulate(model.with_params(gL=model.parameters["gL"] * 1.001), duration=DURATION, dt=dt,
                          inputs=inputs)
    variables, spikes, _ = compare(res_same, res_b2)
    assert all(v.passed for v in variables) and spikes.passed
    variables, spikes, _ = compare(res_off, res_b2)
    assert not all(v.passed for v in variables)  # a 0.1 % change in g_L is caught before any spike
    assert not spikes.passed


def test_izhikevich_presets_agree_with_brian2():
    # the paper's neuron types, each with its characteristic firing, in both simulators
    for preset in ("IB", "CH", "FS"):
        model = ts.models.get("izhikevich", preset=preset)
        report = ts.crossvalidate(model, duration=0.3, dt=1e-4, n=1, inputs={"I": 10e-9}, target="numpy")
        assert report.passed, str(report)
        assert report.spikes.counts_brian2[0] >= 3
