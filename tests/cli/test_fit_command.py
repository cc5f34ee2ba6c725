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


def test_unit_strings_are_read_without_eval_and_checked():
    with pytest.raises(ValueError, match="--dt: '0.2mV' is in V, but --dt takes s"):
        parse_quantity("0.2mV", "--dt", b2.second.dim)
    with pytest.raises(ValueError, match="out of range|cannot read the unit"):
        parse_quantity("1ms^9^9^9", "--dt", b2.second.dim)  # ran until killed when it was eval'd
    with pytest.raises(ValueError, match="power 99 in '1ms\\^99' is out of range"):
        parse_quantity("1ms^99", "--dt")
    for bad in ("1__import__('os')", "1ms.__class__", "1(ms)", "1ms**", "1 ms ms", "1e999ms", "1" + "m" * 100):
        with pytest.raises(ValueError):
            parse_quantity(bad, "--dt")
    assert float(parse_quantity("2 nS/um^2", "g")) == pytest.approx(2e-9 / 1e-12)
    assert float(parse_quantity("1 ms**-1", "rate")) == pytest.approx(1000.0)


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_fit_command_refuses_a_pickle_and_runs_nothing(tmp_path, capsys):
    import pickle

    marker, path = tmp_path / "ran", tmp_path / "cell.pkl"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    assert cli.main(["fit", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "pickles" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra, message", [
    (["--dt", "0.2mV"], "--dt: '0.2mV' is in V, but --dt takes s"),
    (["--dt", "1ms^9^9^9"], "--dt"),
    (["--resume"], "--resume goes on from --checkpoint"),
    (["--window", "0.1:2mV"], "--window: '2mV' is in V"),
])
def test_fit_command_bad_values_refused_before_any_work(extra, message, tmp_path, capsys):
    assert cli.main(["fit", "axon_steps", "--out", str(tmp_path / "out"), *extra]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "fitting" not in captured.out
    assert not (tmp_path / "out").exists()


def test_fit_command_checks_out_before_fitting_and_never_replaces_a_report(tmp_path, capsys):
    a_file = tmp_path / "results.txt"
    a_file.write_text("keep me")
    assert cli.main(["fit", "axon_steps", "--out", str(a_file)]) == 2
    captured = capsys.readouterr()
    assert "is a file, not a folder" in captured.err and "fitting" not in captured.out
    assert a_file.read_text() == "keep me"
    earlier = tmp_path / "earlier"
    (earlier / "fit").mkdir(parents=True)
    (earlier / "report.md").write_text("an earlier fit")
    assert cli.main(["fit", "axon_steps", "--out", str(earlier)]) == 2
    captured = capsys.readouterr()
    assert "--force" in captured.err and "fitting" not in captured.out
    assert (earlier / "report.md").read_text() == "an earlier fit"


def test_default_output_folder_is_the_first_free_one(tmp_path, monkeypatch):
    from tidesim.cli.fit import free_folder

    monkeypatch.chdir(tmp_path)
    assert free_folder("tidesim-fit") == tmp_path.joinpath("tidesim-fit").relative_to(tmp_path)
    (tmp_path / "tidesim-fit").mkdir()
    (tmp_path / "tidesim-fit" / "report.md").write_text("first")
    assert str(free_folder("tidesim-fit")) == "tidesim-fit-2"


@pytest.mark.parametrize("command", ["demo", "fit", "validate", "models"])
def test_every_option_is_in_the_command_line_reference(command, capsys):
    import re
    from pathlib import Path

    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    options = set(re.findall(r"(--[a-z][a-z-]+)", capsys.readouterr().out)) - {"--help"}
    page = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    section = page[page.index(f"## `tidesim {command}"):]
    section = section.split("\n## ", 1)[0]
    assert all(f"`{o}" in section for o in options), sorted(o for o in options if f"`{o}" not in section)
