"""Staged fits against ground truth made by Brian2: a GIF simulated in Brian2 with known parameters, its
voltage and spikes as a recording, the stages' estimates compared with the truth, and held-out sweeps
predicted."""

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

import tidesim as ts
from tidesim.fitting.data import prepare
from tidesim.fitting.subthreshold import fit_subthreshold, model_voltage
from tidesim.fitting.threshold import fit_threshold

DT = 1e-4
TAUS = tuple(t * 1e-3 for t in (3, 10, 30, 100, 300))
TRUTH = {"C": 100e-12, "gL": 6e-9, "EL": -70e-3, "V_reset": -55e-3, "T_ref": 2e-3, "VT_star": -48e-3, "DV": 1e-3}


def _ou(rng, n, mean, sd, tau=3e-3):
    a = np.exp(-DT / tau)
    return mean + sd * lfilter([np.sqrt(1 - a * a)], [1, -a], rng.normal(size=n))


def _brian2_recording(spikes: str, n_steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    current = np.stack([_ou(rng, n_steps, m, s) for m, s in ((0.15e-9, 0.15e-9), (0.25e-9, 0.1e-9),
                                                            (0.1e-9, 0.2e-9), (0.2e-9, 0.12e-9))], 1)
    model = ts.models.get("gif", spikes=spikes, T_ref=TRUTH["T_ref"])
    res = ts.simulate(model, n_steps * DT, n=4, dt=DT, inputs={"I": torch.tensor(current)}, backend="brian2",
                      target="numpy", record=["v"], seed=seed)
    # a spike of Brian2's step i is the voltage crossing at sample i + 1: the recording's convention
    return ts.datasets.Recording(res["v"].T.contiguous(), DT, torch.tensor(current.T.copy()),
                                 [np.asarray(s) + DT for s in res.spike_trains], name=f"brian2 gif ({spikes})")


def test_stage_a_recovers_the_subthreshold_parameters_exactly():
    rec = _brian2_recording("threshold", 20000)
    data = prepare(rec)
    fit = fit_subthreshold(data, eta_taus=TAUS, t_ref=TRUTH["T_ref"], electrode=())
    assert fit.C == pytest.approx(TRUTH["C"], rel=1e-6) and fit.gL == pytest.approx(TRUTH["gL"], rel=1e-6)
    assert fit.EL == pytest.approx(TRUTH["EL"], abs=1e-8)
    assert fit.V_reset == pytest.approx(TRUTH["V_reset"], abs=1e-8)
    np.testing.assert_allclose(fit.a_eta, [60e-12, 30e-12, 15e-12, 8e-12, 4e-12], rtol=1e-5)
    assert fit.variance_explained > 0.999999
    # the model's voltage with the recorded spikes fed back is Brian2's voltage
    v = model_voltage(data, fit, pre_reset=False)
    assert max(np.abs(v[s] - data.voltage[:, s].numpy()).max() for s in range(4)) < 1e-8


def test_stage_b_recovers_threshold_and_escape_noise():
    rec = _brian2_recording("escape", 60000, seed=1)
    data = prepare(rec)
    sub = fit_subthreshold(data, eta_taus=TAUS, t_ref=TRUTH["T_ref"], electrode=())
    thr = fit_threshold(data, model_voltage(data, sub), sub.T_ref, gamma_taus=TAUS, ridge=0.0)
    assert thr.VT_star == pytest.approx(TRUTH["VT_star"], abs=0.5e-3)
    assert thr.DV == pytest.approx(TRUTH["DV"], rel=0.1)
    # the threshold's total spike-triggered movement (its filter's integral), the best determined part
    total = float(np.dot(thr.a_gamma, TAUS))
    assert total == pytest.approx(float(np.dot([10e-3, 5e-3, 3e-3, 1e-3, 0.5e-3], TAUS)), rel=0.25)
    assert thr.bits_per_spike > 1


def test_ts_fit_staged_predicts_held_out_sweeps_of_a_brian2_gif():
    rec = _brian2_recording("threshold", 30000, seed=2)
    fit = ts.fit(ts.models.get("gif", spikes="threshold"), rec.select([0, 1, 2]))
    assert fit.settings["method"] == "staged" and [s["stage"][:2] for s in fit.settings["stages"]] == ["a:", "b:",
                                                                                                      "b'"]
    assert fit.best_params["C"] == pytest.approx(TRUTH["C"], rel=0.01)
    held_out = fit.score(rec.select([3]), baseline=False)
    assert held_out["gamma"].iloc[0] > 0.8, held_out
    n_data, n_model = held_out["spikes_data"].iloc[0], held_out["spikes_model"].iloc[0]
    assert abs(n_model - n_data) <= 0.1 * n_data


def test_staged_fit_errors_name_the_stage():
    rec = _brian2_recording("threshold", 3000, seed=3)
    silent = ts.datasets.Recording(rec.voltage, DT, rec.current, [np.zeros(0)] * 4, name="silent")
    with pytest.raises(ts.fitting.FitError, match="stage b.*hold 0"):
        ts.fit(ts.models.get("gif"), silent)
    blind = ts.datasets.Recording(torch.full_like(rec.voltage, float("nan")), DT, rec.current, rec.spike_times,
                                  name="no voltage")
    with pytest.raises(ts.fitting.FitError, match="stage a needs the recorded voltage"):
        ts.fit(ts.models.get("gif"), blind)
    with pytest.raises(ts.fitting.FitError, match="needs a zoo model of a family it knows"):
        ts.fit(ts.models.get("izhikevich"), rec, method="staged")
    with pytest.raises(ts.fitting.FitError, match="give the parameters to fit"):
        ts.fit(ts.models.get("izhikevich"), rec)


def test_staged_fit_bad_input_names_recording_sweep_and_stage():
    rec = _brian2_recording("threshold", 3000, seed=3)
    # always spiking: no sub-threshold stretch for stage a
    busy = ts.datasets.Recording(rec.voltage[:2], DT, rec.current[:2], [np.arange(5e-4, 0.3, 1.5e-3)] * 2,
                                 name="busy")
    with pytest.raises(ts.fitting.FitError, match=r"busy: sweep 0, busy: sweep 1: only 0 sub-threshold samples"
                                                  r".*stage a needs stretches without spikes"):
        ts.fit(ts.models.get("gif"), busy)
    # no stimulus
    no_current = ts.datasets.Recording(rec.voltage, DT, None, rec.spike_times, name="no current")
    with pytest.raises(ts.fitting.FitError, match="no current holds no injected current"):
        ts.fit(ts.models.get("gif"), no_current)
    # the model lacks the variables the fit drives and compares
    with pytest.raises(ts.fitting.FitError, match="gif has no state 'u' to use as the voltage"):
        ts.fit(ts.models.get("gif"), rec, voltage="u")
    with pytest.raises(ts.fitting.FitError, match="gif has no parameter 'I_ext' to use as the input"):
        ts.fit(ts.models.get("gif"), rec, input="I_ext")
    # a voltage that does not follow the current
    flat = ts.datasets.Recording(rec.voltage, DT, -rec.current, rec.spike_times, name="flipped")
    with pytest.raises(ts.fitting.FitError, match="flipped: sweep 0.*stage a found no positive input resistance"):
        ts.fit(ts.models.get("gif"), flat)


def test_a_stage_that_fits_poorly_is_a_warning_and_in_the_report(tmp_path):
    # the shipped fast-spiking cell over its whole stimulus: a hyperpolarising step to -100 mV (rectified),
    # rebound and delayed firing, which a GIF cannot describe
    rec = ts.datasets.load_bundled("fast_spiking")
    with pytest.warns(ts.fitting.FitWarning, match="stage b: the escape noise is .* mV wide"):
        fit = ts.fit(ts.models.get("gif_hazard"), rec, sweeps=[2, 6, 8, 10, 12, 14, 16], window=(0.1, 2.2),
                     dt=2e-4)
    assert any("escape noise" in w for w in fit.warnings)
    out = ts.fitting.write_report(fit, tmp_path / "fit", crossvalidate=False, quiet=True)
    text = out["paths"]["report"].read_text()
    assert "## Warnings" in text and "escape noise" in text


def test_repeated_trials_score_a_fitted_escape_noise_gif_near_the_cells_own_reliability():
    # frozen noise made by Brian2: one current, four repeats of the escape-noise GIF (fresh noise each)
    n = 30000
    current = _ou(np.random.default_rng(7), n, 0.18e-9, 0.15e-9)
    truth = ts.models.get("gif", T_ref=TRUTH["T_ref"])
    res = ts.simulate(truth, n * DT, n=4, dt=DT, inputs={"I": torch.tensor(np.tile(current[:, None], (1, 4)))},
                      backend="brian2", target="numpy", record=["v"], seed=11)
    frozen = ts.datasets.Recording(res["v"].T.contiguous(), DT, torch.tensor(np.tile(current, (4, 1))),
                                   [np.asarray(s) + DT for s in res.spike_trains], name="frozen").group_repeats()
    assert frozen.stimuli == [frozen.stimuli[0]] * 4
    fit = ts.fit(ts.models.get("gif"), _brian2_recording("escape", 30000, seed=5))
    trials = fit.score_trials(frozen, runs=20)
    row = trials.iloc[0]
    assert row.repeats == 4
    assert 0.2 < row.reliability_2ms < 0.95  # escape noise: repeats differ, but far from chance
    # the fitted model predicts the cell about as well as the cell predicts itself
    assert 0.8 < row.gamma_normalized_2ms < 1.2, trials
    assert abs(row.spikes_model - row.spikes_data) < 0.1 * row.spikes_data
    # fit.score reports the same measures beside each repeat
    table = fit.score(frozen)
    assert list(table.stimulus) == frozen.stimuli
    assert np.allclose(table.reliability_2ms, row.reliability_2ms)


def test_staged_mat_recovers_a_brian2_mat_and_predicts_a_held_out_sweep():
    rng = np.random.default_rng(4)
    n = 30000
    current = np.stack([_ou(rng, n, m, s) for m, s in ((0.3e-9, 0.3e-9), (0.4e-9, 0.25e-9), (0.25e-9, 0.35e-9),
                                                        (0.35e-9, 0.3e-9))], 1)
    truth = ts.models.get("mat")
    res = ts.simulate(truth, n * DT, n=4, dt=DT, inputs={"I": torch.tensor(current)}, backend="brian2",
                      target="numpy", record=["v"])
    rec = ts.datasets.Recording(res["v"].T.contiguous(), DT, torch.tensor(current.T.copy()),
                                [np.asarray(s) + DT for s in res.spike_trains], name="brian2 mat")
    fit = ts.fit(ts.models.get("mat"), rec.select([0, 1, 2]))
    # the membrane runs through spikes without after-potentials: the nuisance kernels find none
    assert fit.best_params["R"] == pytest.approx(50e6, rel=0.01)
    assert fit.best_params["tau_m"] == pytest.approx(5e-3, rel=0.01)
    held_out = fit.score(rec.select([3]), baseline=False)
    assert held_out["gamma"].iloc[0] > 0.7, held_out
    assert abs(held_out.spikes_model.iloc[0] - held_out.spikes_data.iloc[0]) <= 0.1 * held_out.spikes_data.iloc[0]
