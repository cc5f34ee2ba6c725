"""The digits tutorial script (tutorials/digits_snn.py) learns: a short run beats chance (10%) by a
wide margin. The full run (>= 95% test accuracy) is recorded in benchmarks/RESULTS.md."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "tutorials" / "digits_snn.py"


def test_digits_short_run_learns():
    spec = importlib.util.spec_from_file_location("digits_snn", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.train(epochs=8, progress=False)
    assert out["n_test"] == 450
    assert out["test_accuracy"] > 0.85, out["test_accuracy"]
    assert out["train_accuracy"] > 0.8
