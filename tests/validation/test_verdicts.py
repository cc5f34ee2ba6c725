"""The four outcomes of a comparison (exact, within tolerance, diverged after t, disagree), each
following from the numbers it prints; and Brian2's own statements run bit for bit in torch and C."""

import numpy as np
import pytest
import torch

import tidesim as ts
from tidesim.cli.main import _validation_inputs
from tidesim.core.inputs import n_steps_for
from tidesim.validation.neuron import compare
from tidesim.validation.verdicts import spike_verdict, trace_verdict

DT = 1e-4


def _raster(T, n, spikes):
    r = np.zeros((T, n), dtype=bool)
    for step, k in spikes:
        r[step, k] = True
    return r


def test_trace_outcomes_follow_from_the_numbers():
    T, n = 1000, 2
    a = np.linspace(-0.07, -0.05, T)[:, None].repeat(n, 1)
    no_spikes = np.zeros((T, n), dtype=bool)
    assert trace_verdict(a, a.copy(), 1e-8, DT, no_spikes).outcome == "exact"
    assert trace_verdict(a, a + 1e-12, 1e-8, DT, no_spikes).outcome == "within tolerance"
    # rounding-sized difference from step 100 that grows 10x every 100 steps, after neuron 1 spiked at 50
    b = a.copy()
    steps = np.arange(100, T)
    b[100:, 1] += 1e-16 * 10.0 ** ((steps - 100) / 100)
    v = trace_verdict(a, b, 1e-8, DT, _raster(T, n, [(50, 1)]))
    assert v.outcome == "diverged" and v.neuron == 1 and v.spikes_before == 1
    assert v.at == pytest.approx(900 * DT)  # 1e-16 * 10^8 = 1e-8 is first exceeded at step 900
    assert v.growth_per_50ms == pytest.approx(1e5, rel=0.1)  # 10x per 10 ms (100 steps): 10^5 per 50 ms
    # the same difference before any spike: the models differ
    assert trace_verdict(a, b, 1e-8, DT, no_spikes).outcome == "disagree"
    # a difference that is large at once, even after spikes, is no rounding divergence
    c = a.copy()
    c[300:, 0] += 1e-3
    assert trace_verdict(a, c, 1e-8, DT, _raster(T, n, [(50, 0)])).outcome == "disagree"


def test_spike_outcomes_follow_from_the_numbers():
    a = [np.array([0.01, 0.02, 0.03, 0.04]), np.array([0.015, 0.035])]
    assert spike_verdict(a, [x.copy() for x in a], 1e-4, 0.05, 0.1).outcome == "exact"
    shifted = [a[0] + 5e-5, a[1]]
    assert spike_verdict(a, shifted, 1e-4, 0.05, 0.1).outcome == "within tolerance"
    later = [np.array([0.01, 0.02, 0.031, 0.041]), a[1]]
    v = spike_verdict(a, later, 1e-4, 0.05, 0.1)
    assert v.outcome == "diverged" and v.neuron == 0 and v.spike_index == 2 and v.at == pytest.approx(0.03)
    assert v.statistics["count"] == (6.0, 6.0) and v.statistics_agree
    fewer = [np.array([0.01]), a[1]]
    assert spike_verdict(a, fewer, 1e-4, 0.05, 0.1).outcome == "disagree"


def test_report_lines_say_the_outcome_they_show():
    model = ts.models.get("izhikevich", preset="FS")
    report = ts.crossvalidate(model, duration=0.3, n=3, dt=DT, params={"I": np.array([4e-9, 6e-9, 9e-9])},
                              target="numpy")
    text = str(report)
    assert report.passed and "v: exact (bitwise equal at every step)" in text
    assert "spikes: exact" in text
    assert not any(" ok" in line and "DISAGREE" in line for line in text.splitlines())
    table = report.to_dataframe()
    assert set(table["outcome"]) == {"exact"}
    wrong = model.with_params(a=model.parameters["a"] * 1.001)
    torch_run = ts.simulate(wrong, 0.3, n=3, dt=DT, params={"I": np.array([4e-9, 6e-9, 9e-9])})
    brian2_run = ts.simulate(model, 0.3, n=3, dt=DT, params={"I": np.array([4e-9, 6e-9, 9e-9])},
                             backend="brian2", target="numpy")
    variables, spikes, _ = compare(torch_run, brian2_run)
    u = next(v for v in variables if v.name == "u")
    assert u.verdict.outcome == "disagree" and not u.passed
    assert "DISAGREE" in u.describe(model.dims["u"]) and "FAIL" in u.describe(model.dims["u"])


def _izhikevich_run(preset, n, duration, **kw):
    model = ts.models.get("izhikevich", preset=preset)
    spec = ts.models.module("izhikevich").VALIDATION
    inputs, spec = _validation_inputs("izhikevich", n, None, duration, spec["dt"])
    series = torch.zeros(n_steps_for(duration, spec["dt"]), n, dtype=torch.float64)
    series[int(round(0.01 / spec["dt"])):] = torch.as_tensor(inputs[spec["input"]], dtype=torch.float64)
    return ts.simulate(model, duration, n=n, dt=spec["dt"], inputs={spec["input"]: series}, **kw)


@pytest.mark.brian2
@pytest.mark.slow
@pytest.mark.parametrize("target", ["numpy", "cython"])
def test_every_izhikevich_preset_is_bitwise_brian2_in_both_engines(target):
    """The presets whose spikes moved by a step after 25-70 spikes when tidesim printed its own
    simplification: 8 neurons, 2 s, every spike and every sample identical."""
    for preset in ["RS", "IB", "CH", "FS", "TC", "RZ", "LTS"]:
        reference = _izhikevich_run(preset, 8, 2.0, backend="brian2", target=target)
        for engine in ("eager", "compiled"):
            run = _izhikevich_run(preset, 8, 2.0, engine=engine)
            assert run.engine == engine
            same = torch.equal(run["v"], reference["v"]) and torch.equal(run["u"], reference["u"])
            assert same, (preset, engine)
            assert all(np.array_equal(x, y) for x, y in zip(run.spike_trains, reference.spike_trains))
