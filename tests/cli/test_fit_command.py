"""`tidesim fit`: command-line values with units, parameter ranges, protocols, and a small real fit."""

import brian2 as b2
import pandas as pd
import pytest

from tidesim import cli
from tidesim.cli.fit import parse_params, parse_protocol, parse_quantity


def test_quantities_read_with_units_or_as_si():
    assert float(parse_quantity("100pA", "x")) == pytest.approx(100e-12)
    assert float(parse_quantity("-70 mV", "x")) == pytest.approx(-0.07)
    assert float(parse_quantity("0.02/ms", "x")) == pytest.approx(20.0)
    assert b2.get_dimensions(parse_quantity("3nS", "x")) is b2.siemens.dim
    assert parse_quantity("1e-9", "x") == 1e-9
    with pytest.raises(ValueError, match=r"--dt: unknown unit 'parsec'"):
        parse_quantity("3parsec", "--dt")
    with pytest.raises(ValueError, match="cannot read 'fast'"):
        parse_quantity("fast", "--window")


def test_params_take_zoo_ranges_or_given_ones():
    out = parse_params("a,b=0pA:200pA,tau_w=10ms:1s:log", "adex")
    assert out["a"][0] == -5 * b2.nS and out["a"][1] == 20 * b2.nS  # models/adex.py FIT_BOUNDS
    assert float(out["b"][1]) == pytest.approx(200e-12)
    assert out["tau_w"][2] == "log"
    assert list(parse_params(None, "lif")) == ["E_L", "R", "tau_m", "V_th", "V_reset"]
    with pytest.raises(ValueError, match="give its range"):
        parse_params("gamma", "adex")
    with pytest.raises(ValueError, match="low:high"):
        parse_params("a=1nS", "adex")


def test_protocol_epochs_change_per_sweep():
    steps = parse_protocol("0.1:0.6:-100pA:25pA; 0.7:0.8:50pA", 3)
    assert len(steps) == 3
    assert steps[2][0] == pytest.approx((0.1, 0.6, -50e-12))
    assert steps[0][1] == pytest.approx((0.7, 0.8, 50e-12))
    with pytest.raises(ValueError, match="START:STOP:AMPLITUDE"):
        parse_protocol("0.1:0.6", 3)


def test_fit_command_writes_table_figures_and_report(tmp_path, capsys):
    out = tmp_path / "fit"
    code = cli.main(["fit", "axon_steps", "--model", "adex", "--params", "VT,a,b,tau_w", "--sweeps", "3,5,6,8",
                     "--test", "7", "--window", "0.15:0.8", "--dt", "0.2ms", "--n-starts", "16", "--max-iter", "5",
                     "--fixed", "C=100pF,gL=8nS,EL=-73mV", "--target", "numpy", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    table = pd.read_csv(out / "parameters.csv")
    assert table.parameter.tolist() == ["VT", "a", "b", "tau_w"]
    assert table.unit.tolist() == ["V", "S", "A", "s"]
    test = pd.read_csv(out / "score_test.csv")
    assert test.sweep.tolist() == ["axon_steps: sweep 7"] and test.spikes_data.tolist() == [2]
    for name in ("fit_train.png", "fit_test.png", "crossvalidation.png", "report.md"):
        assert (out / name).stat().st_size > 0
    assert "held-out sweeps" in text and "PASSED" in text


def test_fit_command_fits_a_gif_in_stages_by_default(tmp_path, capsys):
    out = tmp_path / "fit"
    code = cli.main(["fit", "regular_spiking", "--sweeps", "2,8,12,16", "--test", "9,13", "--window", "0.1:1.1",
                     "--dt", "0.2ms", "--no-crossvalidate", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "fitting gif_hazard (staged: every parameter from the data)" in text
    table = pd.read_csv(out / "parameters.csv")
    assert {"C", "gL", "EL", "VT_star", "DV", "a_gamma_1"} <= set(table.parameter)
    assert "b: threshold" in (out / "report.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["fit", "no_such_cell"], "neither a file nor a shipped recording"),
    (["fit", "axon_steps", "--sweeps", "3,12"],
     "--sweeps: sweep 12 does not exist (the recording has sweeps 0-8)"),
    (["fit", "axon_steps", "--model", "adex", "--params", "a=5nS:1nS"], "bounds of 'a' are empty"),
    (["fit", "axon_steps", "--model", "adex", "--params", "a=1mV:5mV"],
     "--params a: '1mV' is in V, but --params a takes S"),
    (["fit", "axon_steps", "--model", "gif_fast"], "no model 'gif_fast' in the zoo"),
    (["fit", "axon_steps", "--model", "adex", "--params", "zeta=0:1"], "adex has no parameter 'zeta' to fit"),
])
def test_fit_command_bad_input_is_one_clear_line(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
