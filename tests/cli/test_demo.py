"""The README's main job: `tidesim demo` fits a GIF (staged) to the shipped real recording."""

import neo
import numpy as np
import pandas as pd

import tidesim as ts
from tidesim.cli.demo import DEMO
from tidesim.fitting import FitResult

ABF = ts.datasets.bundled_path("regular_spiking")  # 171116sh_0018.abf, wherever the package is installed


def _upward_zero_crossings(sweeps: list[int], window: tuple[float, float]) -> list[int]:
    """Spikes per sweep counted straight from the file with neo and numpy (not tidesim's loader)."""
    block = neo.AxonIO(str(ABF)).read_block()
    out = []
    for k in sweeps:
        sig = block.segments[k].analogsignals[0]
        v = np.asarray(sig.rescale("mV")).ravel()
        t = np.asarray((sig.times - sig.t_start).rescale("s"))
        v = v[(t >= window[0]) & (t < window[1])]
        out.append(int(np.count_nonzero((v[:-1] < 0) & (v[1:] >= 0))))
    return out


def test_demo_fits_scores_and_crossvalidates(demo_run):
    code, out, folder = demo_run
    assert code == 0, out
    assert "loaded regular_spiking through neo: 17 sweeps" in out
    assert "Brian2 cross-validation of the fitted model: PASSED" in out
    for name in ("parameters.csv", "starts.csv", "history.csv", "score_train.csv", "score_test.csv",
                 "fit_train.png", "fit_test.png", "crossvalidation.csv", "crossvalidation.png", "report.md"):
        assert (folder / name).stat().st_size > 0, name
    params = pd.read_csv(folder / "parameters.csv")
    assert params.parameter.tolist()[:7] == ["C", "gL", "EL", "V_reset", "T_ref", "VT_star", "DV"]
    train, test = pd.read_csv(folder / "score_train.csv"), pd.read_csv(folder / "score_test.csv")
    assert train.spikes_data.tolist() == _upward_zero_crossings(DEMO["train"], DEMO["window"])
    assert test.spikes_data.tolist() == _upward_zero_crossings(DEMO["test"], DEMO["window"])
    # PROVENANCE.md: I_k = -100 + 25 k pA
    assert test.step_pA.tolist() == [75.0, 125.0, 175.0, 225.0, 275.0]
    assert train.step_pA.tolist()[:2] == [-50.0, 50.0]
    whole = FitResult.load(folder / "fit").score(ts.datasets.load_bundled("regular_spiking").select([2]),
                                                 window=(0.0, 2.2), baseline=False)
    assert whole.step_pA.tolist() == [-50.0]  # its first step, not the -100 pA pulse that follows
    # the saved fit reloads with the same parameters as the table
    fit = FitResult.load(folder / "fit")
    assert [fit.best_params[p] for p in params.parameter] == params.value.tolist()
    report = (folder / "report.md").read_text()
    assert "## Held-out sweeps" in report and "## How each parameter was estimated" in report
    assert "a: sub-threshold" in report and "b: threshold" in report


def test_demo_says_per_sweep_whether_timing_beats_chance(demo_run):
    code, out, folder = demo_run
    test = pd.read_csv(folder / "score_test.csv")
    spiking = test[test.spikes_data > 0]
    for row in spiking.itertuples():
        verdict = "better than chance" if row.gamma > row.gamma_poisson_p95 else "not distinguishable from chance"
        assert f"{row.sweep}: " in out and f"vs Poisson 95th percentile {row.gamma_poisson_p95:.2f} -> {verdict}" \
            in out
    above = int((spiking.gamma > spiking.gamma_poisson_p95).sum())
    assert f"spike times of {above} of {len(spiking)} held-out sweeps" in out
