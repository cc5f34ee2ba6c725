"""The README's main job: `tidesim demo` fits AdEx to the shipped real recording."""

import pandas as pd

from tidesim.fitting import FitResult


def test_demo_fits_scores_and_crossvalidates(demo_run):
    code, out, folder = demo_run
    assert code == 0, out
    assert "loaded regular_spiking through neo: 17 sweeps" in out
    assert "Brian2 cross-validation of the fitted model: PASSED" in out
    for name in ("parameters.csv", "starts.csv", "history.csv", "score_train.csv", "score_test.csv",
                 "fit_train.png", "fit_test.png", "crossvalidation.csv", "crossvalidation.png", "report.md"):
        assert (folder / name).stat().st_size > 0, name
    params = pd.read_csv(folder / "parameters.csv")
    assert params.parameter.tolist() == ["C", "gL", "EL", "VT", "DeltaT", "a", "b", "tau_w", "V_reset"]
    train, test = pd.read_csv(folder / "score_train.csv"), pd.read_csv(folder / "score_test.csv")
    # PROVENANCE.md: spikes per sweep of the file, by the file's sweep numbers
    assert train.spikes_data.tolist() == [0, 2, 6, 10, 12, 16, 18]
    assert test.spikes_data.tolist() == [3, 8, 12, 14, 16]
    assert test.step_pA.tolist() == [75.0, 125.0, 175.0, 225.0, 275.0]
    # the saved fit reloads with the same parameters as the table
    fit = FitResult.load(folder / "fit")
    assert [fit.best_params[p] for p in params.parameter] == params.value.tolist()
    assert "## Held-out sweeps" in (folder / "report.md").read_text()
