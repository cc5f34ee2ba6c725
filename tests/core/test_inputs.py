"""The boundary: parameters, inputs, times and records checked once, in the user's names and units."""

import brian2 as b2
import numpy as np
import pytest
import torch

import tidesim as ts
from tidesim.core.errors import MissingParameterError, ShapeError, UnitMismatchError, UnknownIdentifierError
from tidesim.core.inputs import check_parameters, check_time, infer_n, n_steps_for, record_names, resolve

F64, CPU = torch.float64, torch.device("cpu")


def test_n_steps_as_brian2_counts_them():
    assert n_steps_for(0.3, 1e-4) == 3000  # 0.3/1e-4 is 2999.9999999999995 in floating point
    assert n_steps_for(1.0, 3e-4) == 3334  # an inexact end rounds up
    assert n_steps_for(0.1, 0.1) == 1


def test_times_must_be_positive_seconds():
    assert check_time(2 * b2.ms, "dt") == pytest.approx(2e-3)
    for bad in (0, -1e-4, float("nan")):
        with pytest.raises(ValueError, match="dt"):
            check_time(bad, "dt")
    with pytest.raises(UnitMismatchError, match="'duration'"):
        check_time(1 * b2.mV, "duration")


def test_resolve_shapes_names_and_missing_values(lif_model):
    T, n = 50, 3
    res = resolve(lif_model, n, T, 1e-4, {"tau_m": torch.tensor([0.01, 0.02, 0.03])},
                  {"I": torch.linspace(0, 1e-9, T)}, F64, CPU)
    assert res.params["tau_m"].shape == (3,) and len(res.series["I"]) == T and res.stacked["I"].shape == (T,)
    assert res.params["E_L"].ndim == 0
    res = resolve(lif_model, n, T, 1e-4, None, {"I": torch.zeros(T, n)}, F64, CPU)
    assert res.stacked["I"].shape == (T, n)
    res = resolve(lif_model, n, T, 1e-4, None, {"I": lambda t: 1e-9 * (t > 2e-3)}, F64, CPU)
    assert float(res.stacked["I"][-1]) == pytest.approx(1e-9) and float(res.stacked["I"][0]) == 0.0
    with pytest.raises(ShapeError, match=r"input 'I' has shape \(7,\); expected a scalar, \[T\] = \[50\]"):
        resolve(lif_model, n, T, 1e-4, None, {"I": torch.zeros(7)}, F64, CPU)
    with pytest.raises(ShapeError, match=r"parameter 'tau_m'.*\[n\] = \[3\]"):
        resolve(lif_model, n, T, 1e-4, {"tau_m": torch.ones(4)}, {"I": 0.0}, F64, CPU)
    with pytest.raises(UnknownIdentifierError, match="'tau_x'"):
        resolve(lif_model, n, T, 1e-4, {"tau_x": 1.0}, {"I": 0.0}, F64, CPU)
    with pytest.raises(MissingParameterError, match=r"parameter 'I'.*unit A"):
        resolve(lif_model, n, T, 1e-4, None, None, F64, CPU)
    with pytest.raises(UnitMismatchError, match="'tau_m'"):
        resolve(lif_model, n, T, 1e-4, {"tau_m": 10 * b2.mV}, {"I": 0.0}, F64, CPU)


def test_population_size_from_values():
    assert infer_n({"a": np.zeros(5)}, None) == 5
    assert infer_n(None, {"I": np.zeros((10, 4))}) == 4
    with pytest.raises(ShapeError, match="different population sizes"):
        infer_n({"a": np.zeros(5)}, {"I": np.zeros((10, 4))})


def test_check_parameters_and_records(lif_model):
    out = check_parameters(lif_model, {"tau_m": 20 * b2.ms}, 4, "population 'exc'")
    assert out["tau_m"] == pytest.approx(0.02)
    with pytest.raises(ShapeError, match="population 'exc': parameter 'R'"):
        check_parameters(lif_model, {"R": np.ones(3)}, 4, "population 'exc'")
    with pytest.raises(UnitMismatchError, match="population 'exc': parameter 'R'"):
        check_parameters(lif_model, {"R": 1 * b2.mV}, 4, "population 'exc'")
    assert record_names(lif_model, None) == ("v",)
    assert record_names(lif_model, "I") == ("I",)
    with pytest.raises(UnknownIdentifierError, match="cannot record 'w'"):
        record_names(lif_model, ["w"])


def test_simulate_refuses_a_fractional_neuron_count(lif_model):
    with pytest.raises(ValueError, match="whole number"):
        ts.simulate(lif_model, 0.01, n=2.5, inputs={"I": 0.0})
