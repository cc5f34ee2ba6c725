"""Shared test settings: one torch thread (the other core may be busy), float64 comparisons."""

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
torch.set_num_threads(1)


@pytest.fixture
def lif_equations():
    return """dv/dt = (E_L - v + R*I)/tau_m : volt (unless refractory)
              I : amp"""


@pytest.fixture
def lif_model(lif_equations):
    import brian2 as b2

    import tidesim as ts

    return ts.NeuronModel(
        equations=lif_equations, threshold="v > V_th", reset="v = V_reset", refractory=2 * b2.ms,
        parameters={"E_L": -70 * b2.mV, "R": 100 * b2.Mohm, "tau_m": 10 * b2.ms, "V_th": -50 * b2.mV,
                    "V_reset": -65 * b2.mV},
        initial={"v": -70 * b2.mV}, method="exponential_euler", name="test-lif")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """`tidesim demo` (the README's main job) run once: a GIF fitted (staged) to the shipped
    regular-spiking cell, Brian2 on its numpy target. Returns (exit code, printed text, output folder)."""
    import contextlib
    import io

    from tidesim import cli

    out = tmp_path_factory.mktemp("demo")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main(["demo", "--out", str(out), "--target", "numpy"])
    return code, buf.getvalue(), out


@pytest.fixture(scope="session")
def artefacts():
    """Folder for figures the tests draw for people to look at ($TIDESIM_ARTEFACTS, else
    test-artefacts/ beside tests/)."""
    import os
    from pathlib import Path

    folder = Path(os.environ.get("TIDESIM_ARTEFACTS", Path(__file__).resolve().parent.parent / "test-artefacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
