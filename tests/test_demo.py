"""The README's main job: `tidesim demo` on the shipped real recording."""

import pandas as pd

from tidesim import cli


def test_demo_runs_on_the_real_recording(tmp_path, capsys):
    code = cli.main(["demo", "--out", str(tmp_path), "--target", "numpy"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "loaded regular_spiking: 4 sweeps" in out and "PASSED" in out
    table = pd.read_csv(tmp_path / "sweeps.csv")
    assert table.sweep.tolist() == [4, 8, 12, 16]
    assert table.spikes_data.tolist() == [0, 6, 12, 18]  # PROVENANCE.md: spikes per sweep
    assert table.step_pA.tolist() == [0.0, 100.0, 200.0, 300.0]
    assert table.spikes_model.iloc[-1] > table.spikes_model.iloc[1] > 0  # more drive, more spikes
    for name in ("crossvalidation.csv", "recording_vs_model.png", "crossvalidation.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "spikes per nS" in out  # gradients through the simulator were computed
