"""Saving, checkpointing and resuming fits: no file runs code, another fit's checkpoint is refused,
every search method resumes to the uninterrupted result, nothing is overwritten unasked."""

import json
import pathlib

import numpy as np
import pytest
import torch

import tidesim as ts
from tidesim.fitting import FitError

BOUNDS = {"tau_m": (5e-3, 40e-3), "R": (30e6, 300e6)}


class _Payload:
    """What an attacker pickles: unpickling it creates ``marker`` (stands in for any command)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.fixture(scope="module")
def rec():
    return ts.datasets.synthetic(ts.models.get("lif"), {"tau_m": 15e-3, "R": 120e6},
                                 protocol=[0.1e-9, 0.2e-9, 0.3e-9], duration=0.2, noise=0.3e-3, seed=2)


def _fit(rec, method="de", **kw):
    kw = {"n_starts": 8, "max_iter": 6, "seed": 3, **kw}
    return ts.fit(ts.models.get("lif"), rec, params=BOUNDS, loss="trace", method=method, **kw)


class Killed(Exception):
    pass


def _kill_at(n):
    def callback(state):
        if state.iteration == n:
            raise Killed
    return callback


@pytest.mark.parametrize("method", ["de", "auto"])
def test_killed_evolution_resumes_to_the_uninterrupted_result(rec, tmp_path, method):
    kw = {"refine": 3} if method == "auto" else {}
    whole = _fit(rec, method, **kw)
    path = tmp_path / "de.ckpt"
    with pytest.raises(Killed):
        _fit(rec, method, checkpoint=path, checkpoint_every=2, callback=_kill_at(5), **kw)
    assert path.exists()  # generation 4's checkpoint survived
    resumed = _fit(rec, method, checkpoint=path, resume=path, **kw)
    assert resumed.best_params == whole.best_params  # bit for bit
    assert np.array_equal(resumed.start_losses, whole.start_losses)
    assert len(resumed.history) == len(whole.history)  # the replayed population is not counted twice
    again = _fit(rec, method, checkpoint=path, resume=path, **kw)  # a finished search is not rerun
    assert again.best_params == whole.best_params and len(again.history) == len(whole.history)


def test_another_fits_checkpoint_is_refused_with_what_differs(rec, tmp_path):
    path = tmp_path / "a.ckpt"
    _fit(rec, checkpoint=path, max_iter=2)
    other = {"tau_m": (5e-3, 40e-3), "R": (30e6, 200e6)}
    with pytest.raises(FitError, match=r"another fit(.|\n)*parameters: .*300\. Mohm.*200\. Mohm"):
        ts.fit(ts.models.get("lif"), rec, params=other, loss="trace", method="de", n_starts=8, max_iter=6, seed=3,
               resume=path)
    with pytest.raises(FitError, match=r"another fit(.|\n)*seed: checkpoint '3', this fit '4'"):
        _fit(rec, seed=4, resume=path)
    shifted = rec.select([0, 1])
    with pytest.raises(FitError, match=r"another fit(.|\n)*data: .*2 sweeps"):
        _fit(shifted, resume=path)
    with pytest.raises(FitError, match=r"another fit(.|\n)*model"):
        ts.fit(ts.models.get("lif", V_reset=-0.06), rec, params=BOUNDS, loss="trace", method="de", n_starts=8,
               max_iter=6, seed=3, resume=path)


def test_a_new_fit_never_overwrites_a_checkpoint(rec, tmp_path):
    path = tmp_path / "keep.ckpt"
    _fit(rec, checkpoint=path, max_iter=2)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="resume="):
        _fit(rec, checkpoint=path)
    assert path.read_bytes() == before
    with pytest.raises(FitError, match="does not write or resume checkpoints"):
        ts.fit(ts.models.get("gif"), rec, checkpoint=tmp_path / "staged.ckpt")


def test_crafted_checkpoint_runs_nothing(rec, tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"format": "tidesim-checkpoint/2", "fingerprint": {}, "state": _Payload(marker)}, path)
    with pytest.raises(FitError, match="cannot be read"):
        _fit(rec, method="adam", resume=path)
    assert not marker.exists()


def test_damaged_checkpoint_is_a_named_error(rec, tmp_path):
    path = tmp_path / "fit.ckpt"
    _fit(rec, method="adam", n_starts=2, max_iter=3, checkpoint=path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(FitError, match=f"checkpoint {path} cannot be read"):
        _fit(rec, method="adam", n_starts=2, max_iter=3, resume=path)
    with pytest.raises(FitError, match="no checkpoint to resume from"):
        _fit(rec, method="adam", resume=tmp_path / "missing.ckpt")


def test_saved_fit_is_plain_json_and_a_pickled_model_is_refused(rec, tmp_path):
    fit = _fit(rec, max_iter=2)
    folder = fit.save(tmp_path / "fit")
    assert sorted(p.name for p in folder.iterdir()) == ["fit.json"]
    doc = json.loads((folder / "fit.json").read_text())
    assert doc["model"]["format"] == "tidesim-model-spec/1"
    back = ts.FitResult.load(folder)
    assert back.best_params == fit.best_params
    assert back.base_model.parameters == fit.base_model.parameters
    # an older tidesim's layout, crafted: fit.json without the model, and a model.pt that runs code
    marker = tmp_path / "ran"
    del doc["model"]
    (folder / "fit.json").write_text(json.dumps(doc))
    torch.save({"model_spec": _Payload(marker)}, folder / "model.pt")
    with pytest.raises(FitError, match="pickled model(.|\n)*allow_pickle=True"):
        ts.FitResult.load(folder)
    assert not marker.exists()


def test_saved_fit_is_never_replaced_unasked_and_damage_is_named(rec, tmp_path):
    fit = _fit(rec, max_iter=2)
    folder = fit.save(tmp_path / "fit")
    before = (folder / "fit.json").read_text()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        fit.save(folder)
    assert (folder / "fit.json").read_text() == before
    fit.save(folder, overwrite=True)
    (folder / "fit.json").write_text(before[: len(before) // 2])
    with pytest.raises(FitError, match="not a readable saved fit"):
        ts.FitResult.load(folder)
    with pytest.raises(FitError, match="no saved fit"):
        ts.FitResult.load(tmp_path / "nothing")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    with pytest.raises(ts.TidesimError, match="is a file, not a folder"):
        fit.save(a_file)
    assert a_file.read_text() == "mine"
