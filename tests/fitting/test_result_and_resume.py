"""FitResult: predict, score, save/load, Brian2 cross-check; resuming a killed fit."""

import numpy as np
import pytest
import torch

import tidesim as ts

BOUNDS = {"tau_m": (5e-3, 40e-3), "R": (30e6, 300e6)}


@pytest.fixture(scope="module")
def rec():
    model = ts.models.get("lif")
    return ts.datasets.synthetic(model, {"tau_m": 15e-3, "R": 120e6}, protocol=[0.1e-9, 0.2e-9, 0.3e-9],
                                 duration=0.2, noise=0.3e-3, seed=2)


def _fit(rec, **kw):
    return ts.fit(ts.models.get("lif"), rec, params=BOUNDS, loss="trace", method="adam", n_starts=4, max_iter=20,
                  patience=100, seed=5, **kw)


def test_killed_fit_resumed_ends_like_an_uninterrupted_one(rec, tmp_path):
    whole = _fit(rec)
    path = tmp_path / "fit.ckpt"

    class Killed(Exception):
        pass

    def kill_at_13(state):
        if state.iteration == 13:
            raise Killed

    with pytest.raises(Killed):
        _fit(rec, checkpoint=path, checkpoint_every=5, callback=kill_at_13)
    assert path.exists()  # the checkpoint of iteration 10 survived the kill
    resumed = _fit(rec, checkpoint=path, resume=path)
    for k in BOUNDS:
        assert resumed.best_params[k] == pytest.approx(whole.best_params[k], rel=1e-12)
    assert np.allclose(resumed.start_losses, whole.start_losses, rtol=1e-12)
    with pytest.raises(ts.fitting.FitError, match="another fit(.|\n)*n_starts: checkpoint '4', this fit '8'"):
        ts.fit(ts.models.get("lif"), rec, params=BOUNDS, loss="trace", method="adam", n_starts=8, resume=path)


def test_result_predict_score_save_load_and_brian2(rec, tmp_path):
    fit = _fit(rec)
    assert set(fit.best_params) == set(BOUNDS)
    assert fit.best_params["R"] == pytest.approx(120e6, rel=0.1)
    assert {"iteration", "start", "loss", "tau_m", "R"} <= set(fit.history.columns)
    assert len(fit.history) == 4 * 20
    res = fit.predict(rec)
    assert res.n == 3 and res["v"].shape == (2000, 3)
    table = fit.score(rec)
    assert list(table.columns[:1]) == ["sweep"] and {"spikes_data", "spikes_model", "gamma", "rmse"} <= set(table)
    assert (table["rmse"] < 5e-3).all() and table["rmse"].iloc[0] < 1e-3  # sub-threshold sweep: near the noise
    assert table["spikes_data"].tolist() == rec.spike_counts.tolist()
    fig = fit.plot(rec)
    assert len(fig.axes) == 4 and fig.axes[0].get_ylabel() == "V (mV)"
    path = fit.save(tmp_path / "out")
    back = ts.FitResult.load(path)
    assert back.best_params == fit.best_params and np.allclose(back.start_losses, fit.start_losses)
    assert back.history.equals(fit.history) or np.allclose(back.history["loss"], fit.history["loss"])
    assert back.model.parameters["R"] == pytest.approx(fit.best_params["R"])
    assert back.score(rec)["rmse"].tolist() == pytest.approx(table["rmse"].tolist(), rel=1e-9)
    report = fit.crossvalidate()
    assert report.passed, str(report)


def test_data_at_a_coarser_step(rec):
    data = ts.fitting.prepare(rec, dt=2e-4, window=(0.0, 0.1))
    assert data.n_steps == 500 and data.dt == pytest.approx(2e-4)
    assert torch.allclose(data.voltage[0], rec.voltage[:, :2].mean(1))
    with pytest.raises(ValueError, match="whole multiple"):
        ts.fitting.prepare(rec, dt=1.5e-4)
