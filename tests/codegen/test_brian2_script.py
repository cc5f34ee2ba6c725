"""A model leaves tidesim as a standalone Brian2 script: run in a fresh Python with Brian2 alone, it
spikes as tidesim does."""

import subprocess
import sys

import brian2 as b2
import numpy as np
import pytest

import tidesim as ts
from tidesim.codegen.brian2_script import unit_text


def _run(script_path, tmp_path):
    out = tmp_path / "run.npz"
    proc = subprocess.run([sys.executable, str(script_path), str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return np.load(out)


@pytest.mark.brian2
@pytest.mark.parametrize("name, current", [("adex", [0.5e-9, 0.8e-9, 1.2e-9]), ("gif_threshold", [0.1e-9, 0.3e-9]),
                                           ("lif", [0.15e-9, 0.4e-9])])
def test_exported_script_spikes_as_tidesim(name, current, tmp_path):
    model = ts.models.get(name)
    params = {"I": np.array(current)}
    path = tmp_path / f"{name}.py"
    ts.export_brian2(model, n=len(current), duration=0.4, params=params, record=["v"], path=path)
    there = _run(path, tmp_path)
    here = ts.simulate(model, 0.4, n=len(current), params=params)
    for k, train in enumerate(here.spike_trains):
        theirs = np.sort(there["spike_t"][there["spike_i"] == k])
        assert len(theirs) == len(train) and np.allclose(theirs, train, atol=1.01e-4), (name, k)
    assert sum(len(t) for t in here.spike_trains) > 3
    assert np.abs(there["v"] - here["v"].numpy()).max() < 1e-3  # numpy's exp may differ in the last bit
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ts.export_brian2(model, path=path)


@pytest.mark.brian2
def test_a_fit_exports_its_fitted_values(tmp_path):
    lif = ts.models.get("lif")
    rec = ts.datasets.synthetic(lif, {"tau_m": 15e-3, "R": 120e6}, protocol=[0.2e-9, 0.3e-9], duration=0.2,
                                noise=0.3e-3, seed=2)
    fit = ts.fit(lif, rec, params={"tau_m": (5e-3, 40e-3), "R": (30e6, 300e6)}, loss="trace", method="adam",
                 n_starts=2, max_iter=3)
    text = fit.export_brian2(tmp_path / "fitted.py", n=1, duration=0.2, params={"I": 0.3e-9})
    assert f"group.tau_m = {fit.best_params['tau_m']!r} * second" in text
    there = _run(tmp_path / "fitted.py", tmp_path)
    here = ts.simulate(fit.model, 0.2, params={"I": 0.3e-9})
    assert len(there["spike_t"]) == len(here.spike_trains[0])
    tau_pf = fit.best_params["tau_m"] / fit.best_params["R"] * 1e12
    assert f'C="{tau_pf:.12g}pF"' in fit.export_neuroml()  # the fitted values in the NeuroML cell too


def test_units_are_written_as_brian2_reads_them():
    assert unit_text((b2.volt).dim) == "volt" and unit_text((b2.siemens / b2.second).dim) == "siemens / second"
    assert unit_text(b2.get_dimensions(1.0)) == "1"
    for q in (b2.volt ** 2, b2.siemens / b2.metre ** 2, b2.amp / b2.second ** 3):
        eqs = b2.Equations(f"x : {unit_text(q.dim)}")
        assert eqs["x"].dim is q.dim
    with pytest.raises(ValueError, match="no state or subexpression 'zz'"):
        ts.export_brian2(ts.models.get("lif"), record=["zz"])
