"""Bounds, transforms and the fit's error paths."""

import brian2 as b2
import numpy as np
import pytest
import torch

import tidesim as ts
from tidesim.core.errors import UnknownIdentifierError
from tidesim.fitting import BoundsError, FitError, ParameterSpace


@pytest.fixture(scope="module")
def adex():
    return ts.models.get("adex")


def test_transform_round_trip_and_bounds(adex):
    space = ParameterSpace(adex, {"a": (0, 10 * b2.nS), "tau_w": (10e-3, 1.0), "b": (0, 200e-12, "linear")})
    assert [b.scale for b in space.bounds] == ["linear", "log", "linear"]
    x = space.starts(16, seed=3)
    lows = torch.tensor([0, 10e-3, 0], dtype=torch.float64)
    highs = torch.tensor([10e-9, 1.0, 200e-12], dtype=torch.float64)
    assert bool(((x > lows) & (x < highs)).all())
    assert torch.allclose(space.to_physical(space.to_free(x)), x, rtol=1e-9)
    # any free value maps inside the bounds
    z = torch.tensor([[-50.0, 50.0, 0.0]], dtype=torch.float64)
    y = space.to_physical(z)[0]
    assert 0 <= y[0] <= 10e-9 and 10e-3 <= y[1] <= 1.0 and y[2] == pytest.approx(100e-12)
    assert torch.equal(space.starts(16, seed=3), x) and not torch.equal(space.starts(16, seed=4), x)


def test_bad_bounds_say_what_is_wrong(adex):
    with pytest.raises(BoundsError, match=r"'b' are empty: low 200. pA >= high 100. pA"):
        ParameterSpace(adex, {"b": (200e-12, 100e-12)})
    with pytest.raises(BoundsError, match=r"'tau_w' is a s quantity that must be positive.*-10. ms"):
        ParameterSpace(adex, {"tau_w": (-10e-3, 100e-3)})
    with pytest.raises(BoundsError, match=r"'C' is a F quantity that must be positive"):
        ParameterSpace(adex, {"C": (0, 300e-12)})
    with pytest.raises(BoundsError, match=r"lower bound of 'a' is in .*V.* but adex's a is in S"):
        ParameterSpace(adex, {"a": (0 * b2.mV, 10 * b2.nS)})
    with pytest.raises(UnknownIdentifierError, match=r"no parameter 'tau_m'.*tau_w"):
        ParameterSpace(adex, {"tau_m": (1e-3, 1e-2)})


@pytest.fixture(scope="module")
def silent():
    # a sub-threshold synthetic recording: no spikes anywhere
    return ts.datasets.synthetic(ts.models.get("lif"), {}, protocol=[0.05e-9, 0.1e-9], duration=0.1, seed=0)


def test_spike_loss_on_a_recording_without_spikes(silent):
    assert silent.spike_counts.sum() == 0
    with pytest.raises(FitError, match="hold no spikes"):
        ts.fit(ts.models.get("lif"), silent, params={"R": (50e6, 200e6)}, loss="spikes", method="adam", max_iter=2)


def test_non_differentiable_loss_needs_a_gradient_free_method(silent):
    with pytest.raises(FitError, match="not differentiable; use method='de'"):
        ts.fit(ts.models.get("lif"), silent, params={"R": (50e6, 200e6)},
               loss=ts.fitting.Feature("cv_isi") + ts.fitting.TraceMSE(), method="adam", max_iter=2)
    with pytest.raises(FitError, match="unknown loss 'l2'"):
        ts.fit(ts.models.get("lif"), silent, params={"R": (50e6, 200e6)}, loss="l2")


def test_a_start_whose_loss_turns_nan_is_stopped_and_reported(silent):
    def loss(out, data):
        value = ts.fitting.TraceMSE()(out, data).clone()
        value[1] = float("nan")  # start 1's loss turns NaN (e.g. a feature undefined there)
        return value

    fit = ts.fit(ts.models.get("lif"), silent, params={"R": (50e6, 200e6)}, loss=loss, method="adam",
                 n_starts=4, max_iter=15)
    assert fit.starts.loc[1, "status"].startswith("loss became nan")
    assert (fit.starts.drop(index=1)["status"] == "ok").all()
    assert np.isinf(fit.start_losses[1]) and np.isfinite(fit.start_losses[[0, 2, 3]]).all()
    assert fit.best_params["R"] == pytest.approx(100e6, rel=0.05)  # the default R made the data


def test_every_start_failing_is_a_clear_error(silent):
    with pytest.raises(ts.fitting.FitDiverged, match="every start of the fit failed"):
        ts.fit(ts.models.get("lif"), silent, params={"R": (50e6, 200e6)}, method="adam", n_starts=2, max_iter=3,
               loss=lambda out, data: ts.fitting.TraceMSE()(out, data) * float("nan"))


def test_recording_without_current(silent):
    from tidesim.datasets import Recording

    rec = Recording(silent.voltage, silent.dt, None, silent.spike_times, name="cell 7")
    with pytest.raises(FitError, match="cell 7 holds no injected current"):
        ts.fit(ts.models.get("lif"), rec, params={"R": (50e6, 200e6)})


def test_auto_method_polishes_by_default_and_refine_zero_switches_it_off(silent):
    lif = ts.models.get("lif")
    kw = dict(params={"R": (50e6, 200e6)}, loss="trace", n_starts=4, max_iter=2, seed=0)
    polished = ts.fit(lif, silent, refine=None, **kw)
    plain = ts.fit(lif, silent, refine=0, **kw)
    assert "then 50 Adam steps" in polished.settings["method"]
    assert "no gradient polishing" in plain.settings["method"]
    assert plain.history["iteration"].max() < polished.history["iteration"].max()


def test_values_on_a_bound_are_named_with_units(adex):
    space = ParameterSpace(adex, {"a": (0, 10 * b2.nS), "tau_w": (10e-3, 1.0), "b": (0, 200e-12)})
    notes = space.on_bounds({"a": 4e-9, "tau_w": 0.999, "b": 1e-15})
    assert len(notes) == 2
    assert notes[0].startswith("tau_w = ") and "upper bound (1. s)" in notes[0]
    assert notes[1].startswith("b = ") and "lower bound (0. A)" in notes[1]
    assert space.on_bounds({"a": 4e-9, "tau_w": 0.1, "b": 100e-12}) == []
