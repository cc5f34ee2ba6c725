"""Active electrode compensation on a membrane simulated by Brian2 behind a modelled electrode."""

import brian2 as b2
import numpy as np
import pytest
import torch
from scipy.signal import lfilter

import tidesim as ts

DT = 1e-4


def _recording(Re=20e6, tau_e=0.1e-3, seed=0):
    rng = np.random.default_rng(seed)
    n = 40000
    a = np.exp(-DT / 1e-3)
    current = 0.05e-9 + 0.1e-9 * lfilter([np.sqrt(1 - a * a)], [1, -a], rng.normal(size=(2, n)), axis=1)
    membrane = ts.NeuronModel("dv/dt = (E_L - v + R*I)/tau : volt\nI : amp",
                              parameters={"E_L": -65 * b2.mV, "R": 50 * b2.Mohm, "tau": 8 * b2.ms},
                              initial={"v": -65e-3 + 50e6 * 0.05e-9}, method="exact")
    res = ts.simulate(membrane, n * DT, n=2, dt=DT, inputs={"I": torch.tensor(current.T.copy())},
                      backend="brian2", target="numpy")
    d = np.exp(-DT / tau_e)
    electrode = Re * lfilter([1 - d], [1, -d], current, axis=1)  # a first-order electrode
    recorded = res["v"].T.numpy() + electrode
    rec = ts.datasets.Recording(torch.tensor(recorded), DT, torch.tensor(current), name="membrane + electrode")
    return rec, res["v"].T.numpy()


def test_compensation_recovers_the_membrane_voltage():
    rec, membrane = _recording()
    original = rec.voltage.clone()
    kernel = ts.datasets.electrode_kernel(rec)
    assert kernel.R == pytest.approx(50e6, rel=0.05) and kernel.tau == pytest.approx(8e-3, rel=0.05)
    assert kernel.electrode_resistance == pytest.approx(20e6, rel=0.05)
    fixed = ts.datasets.compensate(rec, kernel)
    before = np.sqrt(np.mean((rec.voltage.numpy() - membrane) ** 2))
    after = np.sqrt(np.mean((fixed.voltage.numpy() - membrane)[:, 300:] ** 2))
    assert after < 0.05 * before and after < 0.2e-3
    assert torch.equal(rec.voltage, original)  # the recording given is left as it was


def test_a_step_current_cannot_calibrate():
    rec = ts.datasets.Recording(torch.zeros(1, 5000), DT, torch.full((1, 5000), 1e-10), name="flat")
    with pytest.raises(ts.datasets.AECError, match="does not fluctuate"):
        ts.datasets.electrode_kernel(rec)
