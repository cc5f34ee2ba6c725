"""Generated C: the kernels' source, and the one loader that compiles and caches it."""

import ctypes
import os
import time

import pytest

import tidesim as ts
from tidesim.codegen import build
from tidesim.codegen.c_forward import generate


def test_forward_and_adjoint_sources_of_a_zoo_model():
    model = ts.models.get("adex")
    modes = {p: "scalar" for p in model.parameter_names}
    src = generate(model, {**modes, "I": "time_neuron"}, "double", adjoint=True, grad_params=("b",))
    assert "int64_t tidesim_forward(" in src.source and "void tidesim_backward(" in src.source
    assert "GP_b" in src.source and "GP_a" not in src.source  # only the derivatives asked for
    assert "const double P_I = PA_I[i*n + k];" in src.source


def test_loop_invariant_parts_are_computed_once_per_run_or_step():
    """With scalar constants, AdEx's exp(-VT/DeltaT) and exp(-dt/tau_w) leave the neuron loop; with a
    per-neuron VT, exp(-VT/DeltaT) stays in it; with a time-varying VT it is computed once per step."""
    model = ts.models.get("adex")
    modes = {p: "scalar" for p in model.parameter_names}

    def neuron_loop(source):
        return source.split("for (int64_t k = k0; k < k1; k++) {")[1].split("if (nonfinite)")[0]

    scalar = generate(model, modes, "double", adjoint=False).source
    assert neuron_loop(scalar).count("exp(") == 1 and "exp(((-P_VT) / P_DeltaT))" not in neuron_loop(scalar)
    assert "exp(((-P_VT) / P_DeltaT))" in scalar
    per_neuron = generate(model, {**modes, "VT": "neuron"}, "double", adjoint=False).source
    assert "exp(((-P_VT) / P_DeltaT))" in neuron_loop(per_neuron)
    per_step = generate(model, {**modes, "VT": "time"}, "double", adjoint=False).source
    step_part = per_step.split("for (int64_t i = i0; i < i1; i++) {")[1].split("for (int64_t k")[0]
    assert "exp(((-P_VT) / P_DeltaT))" in step_part and neuron_loop(per_step).count("exp(") == 1


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


def test_kernel_cache_is_bounded_least_recently_used_first(tmp_path, monkeypatch):
    monkeypatch.setenv("TIDESIM_CACHE", str(tmp_path))
    sources = [f"double f{k}(double x) {{ return x * {k}.0; }}\n" for k in range(4)]
    build.load(sources[0], prefix="t")
    size = next((tmp_path / "kernels").glob("*.so")).stat().st_size
    monkeypatch.setenv("TIDESIM_CACHE_MAX_MB", str(2.5 * size / 1e6))  # room for two kernels
    build.load(sources[1], prefix="t")
    first = sorted((tmp_path / "kernels").glob("*.so"), key=lambda p: p.stat().st_mtime)[0]
    os.utime(first, (time.time() + 5, time.time() + 5))  # the first kernel was used again most recently
    build.load(sources[2], prefix="t")
    left = list((tmp_path / "kernels").glob("*.so"))
    assert len(left) == 2 and first in left  # the second, least recently used, went
    assert build.load(sources[3], prefix="t").f3 is not None
    monkeypatch.setenv("TIDESIM_CACHE_MAX_MB", "lots")
    with pytest.raises(ValueError, match="TIDESIM_CACHE_MAX_MB must be a number"):
        build.cache_limit()
