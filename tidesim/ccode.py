"""C kernels generated from a model: the whole time loop in compiled code, forward and adjoint.

The forward kernel runs Brian2's schedule (refractoriness, update, threshold, reset) for all
steps of a segment without returning to Python. The adjoint kernel runs the same steps backwards
in time, using derivative code that sympy generates from the update, threshold and reset by
forward-mode differentiation of the statement lists (no tape: memory is the state trajectory,
or only its segment starts with checkpointing).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy
from sympy.printing.c import C99CodePrinter

from .codegen import NumberPrinting, Statement, _eliminate_common
from .model import NeuronModel

__all__ = ["KernelSource", "generate", "NoDerivative", "PARAM_MODES"]

#: How a parameter is laid out: one value, one per neuron, one per step, one per step and neuron.
PARAM_MODES = ("scalar", "neuron", "time", "time_neuron")


class NoDerivative(NotImplementedError):
    """The model uses a function without a derivative the adjoint kernel can print."""


class _Exprel(sympy.Function):
    """exprel(x) = (exp(x) - 1)/x, with a derivative that stays finite at 0."""

    nargs = 1

    def fdiff(self, argindex=1):
        return _DExprel(self.args[0])


_Exprel.__name__ = "exprel"


class _DExprel(sympy.Function):
    nargs = 1


_DExprel.__name__ = "dexprel"

_ZERO_DERIVATIVE = ("int_", "floor", "ceiling", "sign")
_C_FUNCTIONS = {
    "exp": "exp", "log": "log", "log10": "log10", "expm1": "expm1", "log1p": "log1p", "sin": "sin",
    "cos": "cos", "tan": "tan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "asin": "asin",
    "acos": "acos", "atan": "atan", "Abs": "fabs", "sign": "_sign", "ceiling": "ceil", "floor": "floor",
    "sqrt": "sqrt", "exprel": "_exprel", "dexprel": "_dexprel", "int_": "_int", "clip": "_clip",
}


class CPrinter(NumberPrinting, C99CodePrinter):
    """Prints sympy expressions as C over the kernel's local names."""

    def __init__(self, names: dict[str, str]):
        super().__init__({"strict": False})
        self.names = names

    def _print_Symbol(self, expr):
        try:
            return self.names[expr.name]
        except KeyError:
            raise KeyError(f"no C name for symbol '{expr.name}'") from None

    def _print_Function(self, expr):
        name = expr.func.__name__
        if name not in _C_FUNCTIONS:
            raise NoDerivative(f"function '{name}' has no C implementation in tidesim")
        return f"{_C_FUNCTIONS[name]}({', '.join(self._print(a) for a in expr.args)})"

    _print_exp = _print_log = _print_sin = _print_cos = _print_tanh = _print_Function
    _print_Abs = _print_sign = _print_floor = _print_ceiling = _print_Function

    def _print_Pow(self, expr):
        base, exp = expr.args
        b = f"({self._print(base)})"
        if exp == sympy.Rational(1, 2) or exp == sympy.Float(0.5):
            return f"sqrt({self._print(base)})"
        if exp.is_Integer:
            e = int(exp)
            if 1 <= e <= 4:
                return "(" + "*".join([b] * e) + ")"
            if -4 <= e <= -1:
                return "(1.0/(" + "*".join([b] * -e) + "))"
        return f"pow({self._print(base)}, {self._print(exp)})"

    def _print_Integer(self, expr):
        return f"{int(expr)}.0"

    def _print_Infinity(self, expr):
        return "INFINITY"

    def _print_NegativeInfinity(self, expr):
        return "(-INFINITY)"

    def _print_BooleanTrue(self, expr):
        return "1"

    def _print_BooleanFalse(self, expr):
        return "0"


def _prepare(expr: sympy.Expr) -> sympy.Expr:
    return expr.replace(lambda e: getattr(e.func, "__name__", "") == "exprel" and e.func is not _Exprel,
                        lambda e: _Exprel(e.args[0]))


def _diff(expr: sympy.Expr, sym: sympy.Symbol) -> sympy.Expr:
    # piecewise-constant functions (int, floor, ...) have derivative 0: hold them as constants
    held = {}
    for e in expr.atoms(sympy.Function):
        if getattr(e.func, "__name__", "") in _ZERO_DERIVATIVE:
            held[e] = sympy.Dummy()
    d = sympy.diff(expr.xreplace(held), sym).xreplace({v: k for k, v in held.items()})
    bad = d.atoms(sympy.Derivative, sympy.Subs)
    if bad:
        raise NoDerivative(f"no derivative for {', '.join(sorted(str(b) for b in bad))}")
    return d


def forward_ad(statements: list[tuple[str, sympy.Expr]], independents: list[str], prefix: str
               ) -> tuple[list[tuple[str, sympy.Expr]], dict[tuple[str, str], sympy.Expr]]:
    """Forward-mode derivatives of a statement list with respect to ``independents``.

    Returns derivative statements (``D_<prefix>_<target>__<z>``) in an order that can follow each
    statement, and a map (target, z) -> derivative symbol or 0.
    """
    known: dict[tuple[str, str], sympy.Expr] = {}
    out = []
    indep = set(independents)
    for target, expr in statements:
        for z in independents:
            total = sympy.Integer(0)
            for a in expr.free_symbols:
                if a.name == z:
                    da = sympy.Integer(1)
                elif a.name in indep:
                    continue
                else:
                    da = known.get((a.name, z), sympy.Integer(0))
                if da == 0:
                    continue
                total = total + _diff(expr, a) * da
            if total == 0:
                known[(target, z)] = sympy.Integer(0)
            else:
                sym = sympy.Symbol(f"D{prefix}_{target}__{z}")
                out.append((sym.name, total))
                known[(target, z)] = sym
    return out, known


@dataclass
class KernelSource:
    """Generated C source with what the caller needs to know about its arguments."""

    source: str
    states: tuple[str, ...]
    params: tuple[str, ...]
    modes: tuple[str, ...]
    subexpressions: tuple[str, ...]
    with_adjoint: bool


def _c_names(model: NeuronModel, modes: dict[str, str], state_prefix: str = "S_") -> dict[str, str]:
    names = {s: f"{state_prefix}{s}" for s in model.state_names}
    names.update({p: f"P_{p}" for p in model.parameter_names})
    names.update({"t": "t", "dt": "dt", "i": "((double)k)", "N": "((double)n)", "not_refractory": "nr",
                  "_s": "s_"})
    return names


def _block(printer: CPrinter, statements: list[tuple[str, sympy.Expr]], names: dict[str, str],
           local_prefix: str) -> list[str]:
    lines = []
    for target, expr in statements:
        cname = names.get(target) or f"{local_prefix}{target}"
        names[target] = cname
        lines.append(f"const double {cname} = {printer.doprint(expr)};")
    return lines


def _with_cse(statements: list[tuple[str, sympy.Expr]], tag: str) -> list[tuple[str, sympy.Expr]]:
    renamed = _eliminate_common([Statement(t, "=", e) for t, e in statements])
    # CSE symbols are block-local: give each block its own names
    mapping = {sympy.Symbol(t): sympy.Symbol(f"{t}{tag}") for t, _ in renamed if t.startswith("_cse")}
    return [(mapping.get(sympy.Symbol(t), sympy.Symbol(t)).name, e.xreplace(mapping)) for t, e in renamed]


def _kernel(signature: list[str], model: NeuronModel, modes: dict[str, str], loop: str,
            inner: list[str]) -> list[str]:
    """A kernel: parameters loaded where they vary (once, per step, per neuron), time loop outside."""
    out = list(signature)
    out += ["  " + x for x in _param_loads(model, modes, "outer")]
    out.append(f"  for ({loop}) {{")
    out.append("    const double t = i*dt; const int64_t row = (i - i0)*n;")
    out += ["    " + x for x in _param_loads(model, modes, "step")]
    out.append("    for (int64_t k = 0; k < n; k++) {")
    out += ["      " + x for x in _param_loads(model, modes, "neuron") + inner]
    out += ["    }", "  }"]
    return out


def _param_loads(model: NeuronModel, modes: dict[str, str], where: str) -> list[str]:
    lines = []
    for j, p in enumerate(model.parameter_names):
        mode = modes[p]
        if where == "outer" and mode == "scalar":
            lines.append(f"const double P_{p} = P[{j}][0];")
        elif where == "step" and mode == "time":
            lines.append(f"const double P_{p} = P[{j}][i];")
        elif where == "neuron" and mode == "neuron":
            lines.append(f"const double P_{p} = P[{j}][k];")
        elif where == "neuron" and mode == "time_neuron":
            lines.append(f"const double P_{p} = P[{j}][i*n + k];")
    return lines


_HEADER = r"""
#include <math.h>
#include <stdint.h>
#include <stddef.h>
typedef {real} real;
static inline double _exprel(double x) {{ return fabs(x) < 1e-8 ? 1.0 + 0.5*x : expm1(x)/x; }}
static inline double _dexprel(double x) {{
    return fabs(x) < 1e-5 ? 0.5 + x/3.0 : (x*exp(x) - expm1(x))/(x*x); }}
static inline double _clip(double x, double lo, double hi) {{ return x < lo ? lo : (x > hi ? hi : x); }}
static inline double _int(double x) {{ return trunc(x); }}
static inline double _sign(double x) {{ return (double)((x > 0) - (x < 0)); }}
static inline double _surrogate(int kind, double a, double x) {{
    switch (kind) {{
    case 0: {{ double d = a*fabs(x) + 1.0; return 1.0/(d*d); }}
    case 1: {{ double s = 1.0/(1.0 + exp(-a*x)); return a*s*(1.0 - s); }}
    case 2: {{ double z = 1.5707963267948966*a*x; return 0.5*a/(1.0 + z*z); }}
    case 3: {{ double z = 1.0 - fabs(x)/a; return z > 0 ? z/a : 0.0; }}
    default: return 1.0;
    }}
}}
"""


def generate(model: NeuronModel, modes: dict[str, str], real: str, adjoint: bool,
             grad_params: tuple[str, ...] = ()) -> KernelSource:
    """C source of the forward kernel, and of the adjoint kernel when ``adjoint``.

    The adjoint differentiates with respect to the states and ``grad_params`` only: derivatives
    nobody asked for are not computed.
    """
    S, Ps = model.state_names, model.parameter_names
    NS = len(S)
    body, finals = model.update_statements
    upd = [(st.target, _prepare(st.expr)) for st in body]
    thr = model._threshold_stmts
    cond = _prepare(thr[0].expr) if thr else None
    margin = _prepare(thr[1].expr) if thr else None
    reset_body, reset_finals = model.reset_statements if model._reset_stmts else ([], {})
    reset = [(st.target, _prepare(st.expr)) for st in reset_body]
    subs = [(name, _prepare(model._subexpression_values[name])) for name in model.subexpression_names]
    kind = model._refractory_kind
    lines = [_HEADER.format(real=real)]

    # ---------------------------------------------------------------- forward kernel
    names = _c_names(model, modes)
    pr = CPrinter(names)
    signature = [
        "int64_t tidesim_forward(int64_t n, int64_t i0, int64_t i1, double dt, real** S, int64_t* last,",
        "    uint8_t* nrs, const int64_t* ref_steps, int64_t ref_stride, real** P, real** R, real* spikes,",
        "    real* traj, uint8_t* nr_traj, double* bad) {"]
    inner = [f"double S_{s} = S[{j}][k];" for j, s in enumerate(S)]
    inner += [f"if (traj) traj[((i - i0)*{NS} + {j})*n + k] = S_{s};" for j, s in enumerate(S)]
    inner += [f"if (R[{j}]) R[{j}][row + k] = S_{s};" for j, s in enumerate(S)]
    for m, (_name, expr) in enumerate(subs):
        inner.append(f"if (R[{NS + m}]) R[{NS + m}][row + k] = {pr.doprint(expr)};")
    inner.append("int nr = 1;")
    if kind in ("time", "time_expr"):
        inner.append("nr = (i - last[k]) >= ref_steps[k*ref_stride];")
    elif kind == "condition":
        ref_cond = model.substituted(model.refractory)
        inner.append(f"nr = nrs[k] || !({pr.doprint(_prepare(ref_cond))});")
    inner.append("if (nr_traj) nr_traj[row + k] = (uint8_t)nr;")
    inner += _block(pr, _with_cse(upd, "_u"), names, "T")
    for s_name, fin in zip(S, finals):
        keep = f"nr ? {names[fin]} : S_{s_name}" if s_name in model.flagged else names[fin]
        inner.append(f"double Y_{s_name} = {keep};")
    ynames = {**names, **{s: f"Y_{s}" for s in S}}
    ypr = CPrinter(ynames)
    if cond is not None:
        inner.append(f"const int spk = ({ypr.doprint(cond)}) && nr;")
        inner.append("spikes[row + k] = (real)spk;")
        inner.append("if (spk) {")
        if kind in ("time", "time_expr"):
            inner.append("  last[k] = i;")
        rnames = dict(ynames)
        spiking = [(t, e.subs(sympy.Symbol("_s"), 1)) for t, e in reset]
        inner += ["  " + x for x in _block(CPrinter(rnames), _with_cse(spiking, "_r"), rnames, "Z")]
        inner += [f"  Y_{s} = {rnames[reset_finals[s]]};" for s in S if s in reset_finals]
        inner.append("}")
        if kind == "condition":
            inner.append("nrs[k] = (uint8_t)(nr && !spk);")
    elif kind == "condition":
        inner.append("nrs[k] = (uint8_t)nr;")
    else:
        inner.append("spikes[row + k] = 0;")
    for j, s in enumerate(S):
        inner.append(f"if (!isfinite(Y_{s})) {{ bad[0] = i; bad[1] = k; bad[2] = {j}; bad[3] = Y_{s}; "
                     f"bad[4] = S_{s}; return 1; }}")
    inner += [f"S[{j}][k] = (real)Y_{s};" for j, s in enumerate(S)]
    lines += _kernel(signature, model, modes, "int64_t i = i0; i < i1; i++", inner) + ["  return 0;", "}"]
    if adjoint:
        lines += _adjoint(model, modes, upd, finals, margin, reset, reset_finals, subs, grad_params)
    return KernelSource("\n".join(lines), tuple(S), tuple(Ps), tuple(modes[p] for p in Ps),
                        tuple(model.subexpression_names), adjoint)


def _adjoint(model, modes, upd, finals, margin, reset, reset_finals, subs, grad_params) -> list[str]:
    S = model.state_names
    Ps = [p for p in model.parameter_names if p in grad_params]
    NS = len(S)
    indep = list(S) + list(Ps)
    upd_d, upd_known = forward_ad(upd, indep, "u")
    margin_stmts = [("_margin", margin)] if margin is not None else []
    m_d, m_known = forward_ad(margin_stmts, indep, "m")
    reset_d, reset_known = forward_ad(reset, indep + ["_s"], "r")
    sub_d, sub_known = forward_ad(subs, indep, "x")

    names = _c_names(model, modes, state_prefix="X_")
    xpr = CPrinter(names)
    # gradients of outputs come as strided views (an expanded ones-tensor costs no memory)
    signature = [
        "void tidesim_backward(int64_t n, int64_t i0, int64_t i1, double dt, const real* traj,",
        "    const uint8_t* nr_traj, const real* spikes, real** P, real** lam, const real* gs_in,",
        "    const int64_t* gs_st, real** GR, const int64_t* gr_st, real** G, int64_t tbptt, int detach,",
        "    int sg_kind, double sg_a, double scale) {"]
    c = [f"const double X_{s} = traj[((i - i0)*{NS} + {j})*n + k];" for j, s in enumerate(S)]
    c.append("const int nr = nr_traj ? nr_traj[row + k] : 1;")
    c.append("const double s_ = spikes[row + k];")
    c.append("const int cut = tbptt > 0 && ((i + 1) % tbptt == 0);")
    c += [f"const double L_{s} = cut ? 0.0 : lam[{j}][k];" for j, s in enumerate(S)]
    # update and its derivatives (x -> y)
    c += _block(xpr, _with_cse(upd + upd_d, "_u"), names, "T")
    for s, fin in zip(S, finals):
        keep = f"nr ? {names[fin]} : X_{s}" if s in model.flagged else names[fin]
        c.append(f"const double Y_{s} = {keep};")
    ynames = {**names, **{s: f"Y_{s}" for s in S}}
    # reset (z = R(y, s)) and its derivatives
    rnames = dict(ynames)
    c += _block(CPrinter(rnames), _with_cse(reset + reset_d, "_r"), rnames, "Z")

    def dz(state, z):  # d(reset output for `state`)/dz, z in states (meaning y), params or _s
        if state in reset_finals:
            d = reset_known.get((reset_finals[state], z), sympy.Integer(0))
            return rnames[d.name] if isinstance(d, sympy.Symbol) else xpr.doprint(d)
        return "1.0" if z == state else "0.0"

    for s in S:
        terms = [f"({dz(l, s)})*L_{l}" for l in S if dz(l, s) not in ("0.0", "0")]
        c.append(f"double LY_{s} = {' + '.join(terms) if terms else '0.0'};")
    gs_terms = [f"({dz(l, '_s')})*L_{l}" for l in S if dz(l, "_s") not in ("0.0", "0")]
    c.append("double gs = gs_in ? gs_in[i*gs_st[0] + k*gs_st[1]] : 0.0;")
    if gs_terms:
        c.append(f"if (!detach) gs += {' + '.join(gs_terms)};")
    for p in Ps:
        terms = [f"({dz(l, p)})*L_{l}" for l in S if dz(l, p) not in ("0.0", "0")]
        c.append(f"double GP_{p} = {' + '.join(terms) if terms else '0.0'};")
    if margin is not None:
        mnames = dict(ynames)
        c += _block(CPrinter(mnames), _with_cse(margin_stmts + m_d, "_m"), mnames, "M")
        c.append(f"const double sgd = nr ? _surrogate(sg_kind, sg_a, {mnames['_margin']}/scale)/scale : 0.0;")
        c.append("const double gsm = gs*sgd;")
        for z in indep:
            d = m_known.get(("_margin", z), sympy.Integer(0))
            if d == 0:
                continue
            target = f"LY_{z}" if z in S else f"GP_{z}"
            c.append(f"{target} += gsm*{mnames[d.name]};")
    # update adjoint: lambda_x = J^T lambda_y (frozen flagged states pass through)
    for s in S:
        terms = []
        for l, fin in zip(S, finals):
            d = upd_known.get((fin, s), sympy.Integer(0))
            dval = names[d.name] if isinstance(d, sympy.Symbol) else (None if d == 0 else xpr.doprint(d))
            if l in model.flagged:
                ident = "1.0" if l == s else "0.0"
                expr = f"(nr ? {dval or '0.0'} : {ident})"
                if dval is None and ident == "0.0":
                    continue
                terms.append(f"{expr}*LY_{l}")
            elif dval is not None:
                terms.append(f"({dval})*LY_{l}")
        c.append(f"double LX_{s} = {' + '.join(terms) if terms else '0.0'};")
    for p in Ps:
        for l, fin in zip(S, finals):
            d = upd_known.get((fin, p), sympy.Integer(0))
            if d == 0:
                continue
            dval = names[d.name] if isinstance(d, sympy.Symbol) else xpr.doprint(d)
            mask = "nr ? " if l in model.flagged else ""
            c.append(f"GP_{p} += {mask}({dval})*LY_{l}{' : 0.0' if mask else ''};")
    # records at the start of the step: states and subexpressions of x
    c += [f"if (GR[{j}]) LX_{s} += GR[{j}][i*gr_st[{2 * j}] + k*gr_st[{2 * j + 1}]];" for j, s in enumerate(S)]
    if subs:
        snames = dict(names)
        c += _block(CPrinter(snames), _with_cse(subs + sub_d, "_x"), snames, "E")
        for m, (name, _) in enumerate(subs):
            slot = NS + m
            index = f"i*gr_st[{2 * slot}] + k*gr_st[{2 * slot + 1}]"
            c.append(f"if (GR[{slot}]) {{ const double g = GR[{slot}][{index}];")
            for z in indep:
                d = sub_known.get((name, z), sympy.Integer(0))
                if d == 0:
                    continue
                target = f"LX_{z}" if z in S else f"GP_{z}"
                c.append(f"  {target} += g*{snames[d.name]};")
            c.append("}")
    for j, p in enumerate(model.parameter_names):
        if p not in grad_params:
            continue
        index = {"scalar": "k", "neuron": "k", "time": "i", "time_neuron": "i*n + k"}[modes[p]]
        c.append(f"if (G[{j}]) G[{j}][{index}] += GP_{p};")
    c += [f"lam[{j}][k] = (real)LX_{s};" for j, s in enumerate(S)]
    return _kernel(signature, model, modes, "int64_t i = i1 - 1; i >= i0; i--", c) + ["}"]
