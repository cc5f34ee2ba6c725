"""Generated C: the kernels' source, and the one loader that compiles and caches it."""

import ctypes

import pytest

import tidesim as ts
from tidesim.codegen import build
from tidesim.codegen.c_neuron import generate


def test_forward_and_adjoint_sources_of_a_zoo_model():
    model = ts.models.get("adex")
    modes = {p: "scalar" for p in model.parameter_names}
    src = generate(model, {**modes, "I": "time_neuron"}, "double", adjoint=True, grad_params=("b",))
    assert "int64_t tidesim_forward(" in src.source and "void tidesim_backward(" in src.source
    assert "GP_b" in src.source and "GP_a" not in src.source  # only the derivatives asked for
    assert "const double P_I = P[" in src.source and "[i*n + k]" in src.source


def test_the_loader_compiles_once_and_reports_compiler_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("TIDESIM_CACHE", str(tmp_path))
    source = "double tidesim_twice(double x) { return 2*x; }\n"
    lib = build.load(source, "test")
    lib.tidesim_twice.restype, lib.tidesim_twice.argtypes = ctypes.c_double, [ctypes.c_double]
    assert lib.tidesim_twice(1.5) == 3.0
    assert len(list((tmp_path / "kernels").glob("test_*.so"))) == 1
    assert build.load(source, "test") is lib  # the memo: no second compile
    with pytest.raises(build.BuildError, match="compiling a tidesim kernel failed"):
        build.load("this is not C", "test")
