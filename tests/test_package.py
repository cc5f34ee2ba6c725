"""The package as installed: folders mapped into the tidesim namespace, CLI entry points."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import tidesim as ts
from tidesim import cli


def test_namespace_packages_import_through_tidesim():
    import tidesim.datasets
    import tidesim.fitting
    import tidesim.models

    assert tidesim.models.__name__ == "tidesim.models"
    assert ts.models.available() == ["adex", "gif", "glif", "hodgkin_huxley", "izhikevich", "lif", "mat"]
    assert tidesim.fitting.__name__ == "tidesim.fitting" and tidesim.datasets.__name__ == "tidesim.datasets"


def test_every_sub_package_is_listed_for_the_wheel():
    """A sub-package missing from pyproject's list is silently absent from the wheel, yet imports in an
    editable install: every folder with an __init__.py must be listed."""
    root = Path(__file__).resolve().parents[1]
    block = re.search(r"^packages = \[(.*?)\]", (root / "pyproject.toml").read_text(), re.S | re.M).group(1)
    listed = set(re.findall(r'"([\w.]+)"', block))
    mapping = {"tidesim": "tidesim", "models": "tidesim.models", "fitting": "tidesim.fitting",
               "datasets": "tidesim.datasets"}
    found = set()
    for folder, name in mapping.items():
        for init in (root / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(root / folder).parts
            found.add(".".join([name, *parts]))
    assert found <= listed, f"not listed in pyproject.toml [tool.setuptools] packages: {sorted(found - listed)}"


def test_public_names():
    for name in ("NeuronModel", "simulate", "crossvalidate", "CrossValidationReport", "SimulationResult",
                 "surrogate", "TidesimError"):
        assert hasattr(ts, name), name
    with pytest.raises(AttributeError):
        ts.no_such_thing  # noqa: B018


def test_cli_models_lists_parameters_with_units(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert "adex" in out and "Brette & Gerstner" in out
    assert "tau_w" in out and "144. ms" in out and "presets: RS" in out
    assert "0.2" in out  # dimensionless parameters too (izhikevich b)


def test_cli_validate_passes_and_writes_report(tmp_path, capsys):
    code = cli.main(["validate", "lif", "--n", "2", "--duration", "0.3", "--target", "numpy",
                     "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "PASSED" in out
    assert (tmp_path / "lif_crossvalidation.csv").exists() and (tmp_path / "lif_crossvalidation.png").exists()


def test_cli_validate_exit_code_1_on_failure(monkeypatch, capsys):
    real = ts.crossvalidate

    def impossible_tolerance(*args, **kwargs):  # no difference is within a negative tolerance
        return real(*args, trace_rtol=-1.0, spike_tol=-1.0, **kwargs)

    monkeypatch.setattr(ts, "crossvalidate", impossible_tolerance)
    assert cli.main(["validate", "lif", "--n", "2", "--duration", "0.2", "--target", "numpy"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_cli_bad_model_name_is_a_clear_error(capsys):
    assert cli.main(["validate", "nosuchmodel"]) == 2
    assert "available" in capsys.readouterr().err


def test_console_script_runs():
    # the entry point pip installed next to this Python
    script = Path(sys.executable).parent / "tidesim"
    assert script.exists(), f"console script missing: {script}"
    out = subprocess.run([str(script), "models"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "hodgkin_huxley" in out.stdout
