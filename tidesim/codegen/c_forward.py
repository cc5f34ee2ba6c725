"""The forward kernel of a neuron group in C: Brian2's schedule for a range of neurons over a range of
steps, written so that the compiler can vectorise the neuron loop.

What makes the loop vectorisable: values computed in the kernel's precision (``float`` kernels print
float literals and use a branch-free ``exp``); no branch or early return inside it (the reset is a
select, a non-finite state raises a flag checked once per step, which then names the neuron and
variable); restrict pointers loaded once; loop-invariant parts lifted out of it
(:mod:`tidesim.codegen.c_hoist`); only the recorded variables written (the source is generated per
record set). Spikes leave either as a raster (``[T, n]`` of 0/1, which gradients need) or as events
(the neurons of each step and their number, 4 bytes per spike), collected once per step from a byte
row, so a run without gradients allocates nothing per step but its recorded variables.

Float64 kernels call libm's ``exp`` and do Brian2's operations in Brian2's order, so they stay
spike-exact against Brian2; float32 kernels trade that for speed (see :data:`EXPF`).
"""

from __future__ import annotations

from tidesim.codegen.c_hoist import RUN, STEP, Invariants, name_levels
from tidesim.codegen.c_neuron import (
    HEADER,
    CPrinter,
    KernelSource,
    _c_names,
    _param_loads,
    adjoint_lines,
    prepare,
    refractory_condition,
    reset_lines,
    spike_condition,
    update_lines,
)
from tidesim.core.model import NeuronModel

__all__ = ["generate", "forward_source", "EXPF", "FORWARD_ARGS"]

#: exp in float32 without a call, so that loops with it vectorise (Cephes' expf: Cody-Waite reduction
#: and a degree-6 polynomial, about 1 ulp); overflow gives inf, results below 2.6e-38 are flushed to 0.
EXPF = r"""
static inline float _expf32(float x) {
    float xc = x < -86.5f ? -86.5f : (x > 88.72283f ? 88.72283f : x);
    float kf = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * (r * r) + r + 1.0f;
    union { int32_t i; float f; } u;
    u.i = ((int32_t)kf + 126) << 23;
    float res = (y * u.f) * 2.0f;
    res = x > 88.72283f ? INFINITY : res;
    res = x < -86.5f ? 0.0f : res;
    return x != x ? x : res;
}
"""

#: The kernel's arguments (ctypes binds them in this order).
FORWARD_ARGS = ("n", "k0", "k1", "i0", "i1", "dt", "S", "last", "nrs", "ref_steps", "ref_stride", "P", "R",
                "spikes", "row_buf", "step_counts", "ev_idx", "ev_count", "ev_cap", "traj", "nr_traj", "bad")

_SIGNATURE = """int64_t tidesim_forward(int64_t n, int64_t k0, int64_t k1, int64_t i0, int64_t i1, double dt,
    real** S, int64_t* last, uint8_t* nrs, const int64_t* ref_steps, int64_t ref_stride, real** P,
    real** R, real* spikes, uint8_t* row_buf, int64_t* step_counts, int32_t* ev_idx, int64_t* ev_count,
    int64_t ev_cap, real* traj, uint8_t* nr_traj, double* bad) {"""

_EVENTS = """if (ev_count) {  /* this step's spiking neurons, 8 at a time where none spiked; and their number */
  int64_t c = *ev_count, k = k0;
  for (; k < k1; k++) {
    if (k + 8 <= k1) { uint64_t w; memcpy(&w, row_buf + k, 8); if (!w) { k += 7; continue; } }
    if (row_buf[k]) { ev_idx[c] = (int32_t)k; c++; }
  }
  step_counts[i] = c - *ev_count;
  *ev_count = c;
}"""


def generate(model: NeuronModel, modes: dict[str, str], real: str, adjoint: bool,
             grad_params: tuple[str, ...] = (), records: tuple[int, ...] = (), surrogate: int = 0) -> KernelSource:
    """The C source of a neuron group's kernels: the forward kernel (with a spike raster and trajectory
    when ``adjoint``, else spike events) and, when ``adjoint``, the adjoint kernel for ``grad_params``
    and the surrogate of kind ``surrogate``."""
    lines = ["#include <string.h>", HEADER.format(real=real)]
    if real == "float":  # float kernels (forward and adjoint) call it
        lines.append(EXPF)
    lines.append(forward_source(model, modes, real, tuple(records), grad=adjoint))
    if adjoint:  # the same with the trajectory stored (a separate loop: no branch inside it)
        lines.append(forward_source(model, modes, real, tuple(records), grad=True, trajectory=True))
        lines += adjoint_lines(model, modes, grad_params, real, tuple(records), surrogate)
    return KernelSource("\n".join(lines), tuple(model.state_names), tuple(model.parameter_names),
                        tuple(modes[p] for p in model.parameter_names), tuple(model.subexpression_names), adjoint)


def forward_source(model: NeuronModel, modes: dict[str, str], real: str, records: tuple[int, ...],
                   grad: bool, trajectory: bool = False) -> str:
    """C source of ``tidesim_forward`` (see :data:`FORWARD_ARGS`) for this parameter layout, precision
    (``"double"`` or ``"float"``), recorded slots (states, then subexpressions) and output: with ``grad``,
    a spike raster, without, spike events only; with ``trajectory`` (named ``tidesim_forward_traj``),
    also the states and refractoriness the adjoint kernel reads."""
    S, NS = model.state_names, len(model.state_names)
    code = model.brian2_code
    hoist = Invariants(name_levels(modes, code.constants), real)
    names = _names(model, modes, real)
    inner = _param_loads(model, modes, "neuron", real, pointers=True)
    inner += [f"{real} S_{s} = SA_{j}[k];" for j, s in enumerate(S)]
    inner += _record_lines(model, names, records, real)
    inner += _refractoriness(model, names)
    inner += update_lines(model, names, hoist, real)
    inner += _spike_lines(model, names, hoist, real, grad)
    inner.append("nonfinite |= " + " | ".join(f"!isfinite(Y_{s})" for s in S) + ";")
    inner += [f"SA_{j}[k] = Y_{s};" for j, s in enumerate(S)]
    signature = _SIGNATURE.replace("tidesim_forward(", "tidesim_forward_traj(") if trajectory else _SIGNATURE
    out = [signature, f"  const {real} DT = ({real})dt;"]
    out += [f"  real* restrict SA_{j} = S[{j}];" for j in range(NS)]
    # every array the loop writes, as restrict pointers: nothing it writes is read through another name
    out += ["  real* restrict SP = spikes; uint8_t* restrict RB = row_buf;"]
    if trajectory:
        out += ["  real* restrict TR = traj; uint8_t* restrict NT = nr_traj;"]
    out += [f"  real* restrict RA_{slot} = R[{slot}];" for slot in records]
    out += ["  " + x for x in _param_loads(model, modes, "outer", real, pointers=True) + hoist.lines[RUN]]
    out += ["  for (int64_t i = i0; i < i1; i++) {",
            "    if (ev_count && *ev_count + (k1 - k0) > ev_cap) { bad[0] = (double)i; return 2; }",
            f"    const {real} t = ({real})(i*dt); const int64_t row = (i - i0)*n; int nonfinite = 0;"]
    out += ["    " + x for x in _param_loads(model, modes, "step", real, pointers=True) + hoist.lines[STEP]]
    if trajectory:  # the states and refractoriness at the step's start, outside the loop (it stays vectorised)
        out += [f"    memcpy(TR + ((i - i0)*{NS} + {j})*n + k0, SA_{j} + k0, (k1 - k0)*sizeof(real));"
                for j in range(NS)]
        if model.refractory_kind is not None:  # else the caller's flags are all 1 already
            pre = _param_loads(model, modes, "neuron", real, pointers=True)
            pre += [f"{real} S_{s} = SA_{j}[k];" for j, s in enumerate(S)]
            pre += _refractoriness(model, names) + ["NT[row + k] = (uint8_t)nr;"]
            out += ["    for (int64_t k = k0; k < k1; k++) {"] + ["      " + x for x in pre] + ["    }"]
    out += ["#pragma GCC ivdep", "    for (int64_t k = k0; k < k1; k++) {"]
    out += ["      " + x for x in inner] + ["    }"]
    out += ["    " + x for x in _blow_up(S).splitlines()]
    if model.threshold_statements is not None and not grad:
        out += ["    " + x for x in _EVENTS.splitlines()]
    out += ["  }", "  return 0;", "}"]
    return "\n".join(out)


def _names(model: NeuronModel, modes: dict[str, str], real: str) -> dict[str, str]:
    """The schedule's C names, with ``dt``, ``i`` and ``N`` in the kernel's precision."""
    return {**_c_names(model, modes), "dt": "DT", "i": f"(({real})k)", "N": f"(({real})n)"}


def _record_lines(model: NeuronModel, names: dict[str, str], records: tuple[int, ...], real: str) -> list[str]:
    NS, lines = len(model.state_names), []
    for slot in records:
        if slot < NS:
            lines.append(f"RA_{slot}[row + k] = S_{model.state_names[slot]};")
        else:
            name = model.subexpression_names[slot - NS]
            expr = CPrinter(dict(names)).doprint(prepare(model.subexpression_values[name]))
            lines.append(f"RA_{slot}[row + k] = ({real})({expr});")
    return lines


def _refractoriness(model: NeuronModel, names: dict[str, str]) -> list[str]:
    kind = model.refractory_kind
    if kind in ("time", "time_expr"):
        return ["const int nr = (i - last[k]) >= ref_steps[k*ref_stride];"]
    if kind == "condition":
        return [f"const int nr = nrs[k] | !({refractory_condition(model, names)});"]
    return ["const int nr = 1;"]


def _spike_lines(model: NeuronModel, names: dict[str, str], hoist: Invariants, real: str, grad: bool) -> list[str]:
    cond = spike_condition(model, names, hoist, "f" if real == "float" else "")
    kind = model.refractory_kind
    out_line = "SP[row + k] = (real)spk;" if grad else "RB[k] = (uint8_t)spk;"
    if cond is None:
        return ["nrs[k] = (uint8_t)nr;"] if kind == "condition" else []
    lines = [f"const int spk = ({cond}) & nr;", out_line]
    if kind in ("time", "time_expr"):
        lines.append("last[k] = spk ? i : last[k];")
    lines += reset_lines(model, names, hoist, real, select="spk")
    if kind == "condition":
        lines.append("nrs[k] = (uint8_t)(nr & !spk);")
    return lines


def _blow_up(states: list[str] | tuple[str, ...]) -> str:
    """After a step that produced a non-finite value: the first neuron and variable, then stop."""
    checks = "\n".join(f"    if (!isfinite(SA_{j}[k])) {{ bad[0] = (double)i; bad[1] = (double)k; bad[2] = {j}; "
                       f"bad[3] = (double)SA_{j}[k]; return 1; }}" for j in range(len(states)))
    return "if (nonfinite) {\n  for (int64_t k = k0; k < k1; k++) {\n" + checks + "\n  }\n}"

