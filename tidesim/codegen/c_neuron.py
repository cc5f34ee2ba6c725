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

from tidesim.codegen.brian2_code import c_expression, c_expression_level, needed, update_plan
from tidesim.codegen.c_hoist import Invariants, SymbolicInvariants
from tidesim.codegen.torch_source import NumberPrinting, Statement, _eliminate_common
from tidesim.core.model import NeuronModel

__all__ = ["KernelSource", "adjoint_lines", "NoDerivative", "PARAM_MODES", "HEADER", "CPrinter", "prepare"]

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

class _Clip(sympy.Function):
    """clip(x, low, high), with its derivative (1 inside the range, 0 outside) for the adjoint kernel."""

    nargs = 3

    def fdiff(self, argindex=1):
        x, low, high = self.args
        inside = sympy.And(x > low, x < high)
        if argindex == 1:
            return sympy.Piecewise((1.0, inside), (0.0, True))
        if argindex == 2:
            return sympy.Piecewise((1.0, x <= low), (0.0, True))
        return sympy.Piecewise((1.0, x >= high), (0.0, True))


_Clip.__name__ = "clip"

_ZERO_DERIVATIVE = ("int_", "floor", "ceiling", "sign")
_C_FUNCTIONS = {
    "exp": "exp", "log": "log", "log10": "log10", "expm1": "expm1", "log1p": "log1p", "sin": "sin",
    "cos": "cos", "tan": "tan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "asin": "asin",
    "acos": "acos", "atan": "atan", "Abs": "fabs", "sign": "_sign", "ceiling": "ceil", "floor": "floor",
    "sqrt": "sqrt", "exprel": "_exprel", "dexprel": "_dexprel", "int_": "_int", "clip": "_clip",
}


class CPrinter(NumberPrinting, C99CodePrinter):
    """Prints sympy expressions as C over the kernel's local names."""

    def __init__(self, names: dict[str, str], suffix: str = ""):
        super().__init__({"strict": False})
        self.names, self.suffix = names, suffix  # suffix "f": float literals and float exp

    def _print_Symbol(self, expr):
        try:
            return self.names[expr.name]
        except KeyError:
            raise KeyError(f"no C name for symbol '{expr.name}'") from None

    def _print_Function(self, expr):
        name = expr.func.__name__
        if name not in _C_FUNCTIONS:
            raise NoDerivative(f"function '{name}' has no C implementation in tidesim")
        function = "_expf32" if name == "exp" and self.suffix == "f" else _C_FUNCTIONS[name]
        return f"{function}({', '.join(self._print(a) for a in expr.args)})"

    def _print_Float(self, expr):
        return super()._print_Float(expr) + self.suffix

    def _print_Rational(self, expr):
        return super()._print_Rational(expr) + self.suffix

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
                return f"(1.0{self.suffix}/(" + "*".join([b] * -e) + "))"
        return f"pow({self._print(base)}, {self._print(exp)})"

    def _print_Integer(self, expr):
        return f"{int(expr)}.0{self.suffix}"

    def _print_Infinity(self, expr):
        return "INFINITY"

    def _print_NegativeInfinity(self, expr):
        return "(-INFINITY)"

    def _print_BooleanTrue(self, expr):
        return "1"

    def _print_BooleanFalse(self, expr):
        return "0"


def prepare(expr: sympy.Expr) -> sympy.Expr:
    expr = expr.replace(lambda e: getattr(e.func, "__name__", "") == "exprel" and e.func is not _Exprel,
                        lambda e: _Exprel(e.args[0]))
    return expr.replace(lambda e: getattr(e.func, "__name__", "") == "clip" and e.func is not _Clip,
                        lambda e: _Clip(*e.args))


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
           local_prefix: str, lifter: SymbolicInvariants | None = None, real: str = "double") -> list[str]:
    lines = []
    for target, expr in statements:
        cname = names.get(target) or f"{local_prefix}{target}"
        names[target] = cname
        if lifter is not None:
            if lifter.statement(target, cname, expr, printer):
                continue
            expr = lifter.parts(expr, names, printer)
        lines.append(f"const {real} {cname} = {printer.doprint(expr)};")
    return lines


def _with_cse(statements: list[tuple[str, sympy.Expr]], tag: str) -> list[tuple[str, sympy.Expr]]:
    renamed = _eliminate_common([Statement(t, "=", e) for t, e in statements])
    # CSE symbols are block-local: give each block its own names
    mapping = {sympy.Symbol(t): sympy.Symbol(f"{t}{tag}") for t, _ in renamed if t.startswith("_cse")}
    return [(mapping.get(sympy.Symbol(t), sympy.Symbol(t)).name, e.xreplace(mapping)) for t, e in renamed]


def _kernel(signature: list[str], model: NeuronModel, modes: dict[str, str], loop: str,
            inner: list[str], lifted: dict[int, list[str]] | None = None, step: list[str] = (),
            after: list[str] = (), real: str = "double") -> list[str]:
    """A kernel: parameters loaded where they vary (once, per step, per neuron), time loop outside;
    ``lifted`` lines computed once per run (0) and once per step (1); ``step`` lines before and ``after``
    lines after each step's neuron loop; values in ``real``."""
    lifted = lifted or {0: [], 1: []}

    def loads(where):
        return _param_loads(model, modes, where, real, pointers=True)

    out = list(signature)
    out += ["  " + x for x in loads("outer") + lifted[0]]
    out.append(f"  for ({loop}) {{")
    out.append(f"    const {real} t = ({real})(i*dt); const int64_t row = (i - i0)*n;")
    out += ["    " + x for x in loads("step") + lifted[1] + list(step)]
    out.append("#pragma GCC ivdep")  # the arrays written (adjoints, gradients) overlap none of those read
    out.append("    for (int64_t k = 0; k < n; k++) {")
    out += ["      " + x for x in loads("neuron") + inner]
    out += ["    }"] + ["    " + x for x in after] + ["  }"]
    return out


def _param_loads(model: NeuronModel, modes: dict[str, str], where: str, real: str = "double",
                 pointers: bool = False) -> list[str]:
    """Parameter loads for the ``"outer"`` part of a kernel, each ``"step"`` or each ``"neuron"``. With
    ``pointers``, arrays are read through restrict pointers ``PA_<name>`` set in the outer part (a loop
    that reads ``P[j][k]`` reloads ``P[j]`` after every store and does not vectorise)."""
    lines = []
    for j, p in enumerate(model.parameter_names):
        mode, src = modes[p], (f"PA_{p}" if pointers else f"P[{j}]")
        if where == "outer" and mode == "scalar":
            lines.append(f"const {real} P_{p} = P[{j}][0];")
        elif where == "outer" and pointers:
            lines.append(f"const real* restrict PA_{p} = P[{j}];")
        elif where == "step" and mode == "time":
            lines.append(f"const {real} P_{p} = {src}[i];")
        elif where == "neuron" and mode == "neuron":
            lines.append(f"const {real} P_{p} = {src}[k];")
        elif where == "neuron" and mode == "time_neuron":
            lines.append(f"const {real} P_{p} = {src}[i*n + k];")
    return lines


HEADER = r"""
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
"""


def update_lines(model: NeuronModel, names: dict[str, str], hoist: Invariants | None = None,
                 real: str = "double") -> list[str]:
    """The state update of one neuron in C (the schedule's first part, shared by the neuron and network
    kernels): Brian2's statements in Brian2's order (``B<name>`` temporaries), then ``Y_<state>``, the
    new value (a state marked ``(unless refractory)`` keeps ``S_<state>`` while ``nr`` is 0).
    ``names`` gains the temporaries' C names. With ``hoist``, loop-invariant statements and parts of
    statements go to its lines instead (same operations, same bits); ``real`` is the type computed in."""
    code = model.brian2_code
    body, finals, free = update_plan(code, model.state_names, model.flagged)
    suffix = "f" if real == "float" else ""
    written = [st.target for st in body]
    lines, declared = [], set()
    for st in body:
        once = written.count(st.target) == 1 and st.op == "="
        if hoist is not None and once and c_expression_level(st.expr, hoist, st.target in free) < 2:
            level = c_expression_level(st.expr, hoist, st.target in free)
            names[st.target] = f"B{st.target}"
            hoist.statement(level, st.target, f"B{st.target}",
                            c_expression(st.expr, names, code.constants, st.target in free, suffix=suffix))
            continue
        expr = c_expression(st.expr, names, code.constants, st.target in free, hoist, suffix)
        if st.op == "=" and st.target not in declared:
            declared.add(st.target)
            names[st.target] = f"B{st.target}"
            lines.append(f"{real} B{st.target} = {expr};")
        else:
            target = names[st.target]
            lines.append(f"{target} = {expr};" if st.op == "=" else f"{target} = {target} {st.op[0]} ({expr});")
    for s_name in model.state_names:
        new = names[finals[s_name]]
        keep = f"nr ? {new} : S_{s_name}" if s_name in model.flagged else new
        lines.append(f"{real} Y_{s_name} = {keep};")
    return lines


def spike_condition(model: NeuronModel, names: dict[str, str], hoist: Invariants | None = None,
                    suffix: str = "") -> str | None:
    """The threshold condition over the updated states ``Y_<state>``, as Brian2 evaluates it (its
    subexpressions inlined in parentheses, which keeps their order); ``None``: the model never spikes."""
    if model.threshold_statements is None:
        return None
    local = {**names, **{s: f"Y_{s}" for s in model.state_names}}
    code = model.brian2_code
    for st in needed(code.threshold, {"_cond"}):
        if st.op != "=":
            raise NotImplementedError(f"Brian2's threshold writes {st.target} {st.op} ...")
        local[st.target] = f"({c_expression(st.expr, local, code.constants, hoist=hoist, suffix=suffix)})"
    return local["_cond"]


def refractory_condition(model: NeuronModel, names: dict[str, str]) -> str:
    """A refractory condition (``refractory="v > 0*mV"``) in C over the states ``S_<state>``."""
    return CPrinter(names).doprint(prepare(model.substituted(model.refractory)))


def reset_lines(model: NeuronModel, names: dict[str, str], hoist: Invariants | None = None,
                real: str = "double", select: str | None = None) -> list[str]:
    """The reset of a spiking neuron in C: Brian2's reset statements in Brian2's order over ``Y_<state>``
    (the schedule's last part, shared by the neuron and network kernels). With ``select`` (a C
    condition), every neuron computes the reset and keeps it where ``select`` holds (no branch: the
    loop can be vectorised)."""
    if not model.reset_assignments:
        return []
    code = model.brian2_code
    rnames = {**names, **{s: f"Y_{s}" for s in model.state_names}}
    suffix = "f" if real == "float" else ""
    lines = []
    for st in code.reset:
        expr = c_expression(st.expr, rnames, code.constants, hoist=hoist, suffix=suffix)
        if st.target not in model.state_names:  # a subexpression the reset reads
            rnames[st.target] = f"R{st.target}"
            lines.append(f"const {real} R{st.target} = {expr};")
            continue
        new = expr if st.op == "=" else f"Y_{st.target} {st.op[0]} ({expr})"
        kept = f"{select} ? ({new}) : Y_{st.target}" if select else new
        lines.append(f"Y_{st.target} = {kept};")
    return lines


def adjoint_lines(model: NeuronModel, modes: dict[str, str], grad_params: tuple[str, ...] = (),
                  real: str = "double", records: tuple[int, ...] = (), surrogate: int = 0) -> list[str]:
    """C source of the adjoint kernel ``tidesim_backward``, in the run's precision, for the recorded slots
    ``records`` and the surrogate of kind ``surrogate`` (see :data:`SURROGATE_C`). It differentiates with
    respect to the states and ``grad_params`` only: derivatives nobody asked for are not computed."""
    body, finals = model.update_statements
    upd = [(st.target, prepare(st.expr)) for st in body]
    thr = model.threshold_statements
    margin = prepare(thr[1].expr) if thr else None
    reset_body, reset_finals = model.reset_statements if model.reset_assignments else ([], {})
    reset = [(st.target, prepare(st.expr)) for st in reset_body]
    subs = [(name, prepare(model.subexpression_values[name])) for name in model.subexpression_names]
    return _adjoint(model, modes, upd, finals, margin, reset, reset_finals, subs, grad_params, real, records,
                    surrogate)


#: The surrogate derivatives as C (``x``: the distance to threshold in units of the threshold scale, ``a``:
#: the surrogate's slope or width), by the kind number ``neuron_compiled.surrogate_code`` gives; written
#: into the adjoint kernel so that its loop has no call and no switch.
SURROGATE_C = {
    0: "{{ const real d = a*fabs(x) + 1; return 1/(d*d); }}",
    1: "{{ const real e = 1/(1 + exp(-a*x)); return a*e*(1 - e); }}",
    2: "{{ const real z = (real)1.5707963267948966*a*x; return (real)0.5*a/(1 + z*z); }}",
    3: "{{ const real z = 1 - fabs(x)/a; return z > 0 ? z/a : 0; }}",
    4: "{{ return 1; }}",
}


class _Adjoint:
    """The pieces of the adjoint kernel's step body, each a list of C lines (see :func:`_adjoint`). Written
    so that the neuron loop vectorises: no branch on a pointer (absent gradients read a row of zeros), the
    surrogate inlined, the trajectory and gradient rows as restrict pointers, values in the run's precision."""

    def __init__(self, model, modes, upd, finals, margin, reset, reset_finals, subs, grad_params, real, records):
        self.model, self.modes, self.finals, self.reset_finals = model, modes, finals, reset_finals
        self.S = model.state_names
        self.Ps = [p for p in model.parameter_names if p in grad_params]
        self.indep = list(self.S) + list(self.Ps)
        self.upd, self.margin, self.reset, self.subs = upd, margin, reset, subs
        self.upd_d, self.upd_known = forward_ad(upd, self.indep, "u")
        self.margin_stmts = [("_margin", margin)] if margin is not None else []
        self.m_d, self.m_known = forward_ad(self.margin_stmts, self.indep, "m")
        self.reset_d, self.reset_known = forward_ad(reset, self.indep + ["_s"], "r")
        self.sub_d, self.sub_known = forward_ad(subs, self.indep, "x")
        self.real, self.suffix, self.records = real, ("f" if real == "float" else ""), records
        self.names = _c_names(model, modes, state_prefix="X_")
        self.names.update({"dt": "DT", "i": f"(({real})k)", "N": f"(({real})n)"})
        self.xpr = CPrinter(self.names, self.suffix)
        levels = {p: {"scalar": 0, "time": 1}.get(mode, 2) for p, mode in modes.items()}
        self.lifter = SymbolicInvariants({**levels, "dt": 0, "N": 0, "t": 1}, real)

    def printer(self, names: dict[str, str]) -> CPrinter:
        return CPrinter(names, self.suffix)

    def update(self) -> list[str]:
        """The step recomputed from the trajectory: update and its derivatives (x -> y)."""
        S, names, R = self.S, self.names, self.real
        c = [f"const {R} X_{s} = TR{j}[k];" for j, s in enumerate(S)]
        c.append("const int nr = NT[k];")
        c.append(f"const {R} s_ = SP[k];")
        c += [f"const {R} L_{s} = cut ? 0 : LA{j}[k];" for j, s in enumerate(S)]
        c += _block(self.xpr, _with_cse(self.upd + self.upd_d, "_u"), names, "T", self.lifter, R)
        for s, fin in zip(S, self.finals):
            keep = f"nr ? {names[fin]} : X_{s}" if s in self.model.flagged else names[fin]
            c.append(f"const {R} Y_{s} = {keep};")
        self.ynames = {**names, **{s: f"Y_{s}" for s in S}}
        return c

    def reset_adjoint(self) -> list[str]:
        """Reset (z = R(y, s)) and its derivatives; adjoints of y (``LY_``), of the spike (``gs``) and of
        the parameters through the reset (``GP_``)."""
        S, R = self.S, self.real
        rnames = dict(self.ynames)
        c = _block(self.printer(rnames), _with_cse(self.reset + self.reset_d, "_r"), rnames, "Z", self.lifter, R)

        def dz(state, z):  # d(reset output for `state`)/dz, z in states (meaning y), params or _s
            if state in self.reset_finals:
                d = self.reset_known.get((self.reset_finals[state], z), sympy.Integer(0))
                return rnames[d.name] if isinstance(d, sympy.Symbol) else self.xpr.doprint(d)
            return "1" if z == state else "0"

        def zero(text):
            return text in ("0", "0.0", "0.0f")

        for s in S:
            terms = [f"({dz(l, s)})*L_{l}" for l in S if not zero(dz(l, s))]
            c.append(f"{R} LY_{s} = {' + '.join(terms) if terms else '0'};")
        gs_terms = [f"({dz(l, '_s')})*L_{l}" for l in S if not zero(dz(l, "_s"))]
        c.append(f"{R} gs = GS[k];")
        if gs_terms:
            c.append(f"gs += detach ? 0 : ({' + '.join(gs_terms)});")
        for p in self.Ps:
            terms = [f"({dz(l, p)})*L_{l}" for l in S if not zero(dz(l, p))]
            c.append(f"{R} GP_{p} = {' + '.join(terms) if terms else '0'};")
        return c

    def threshold_adjoint(self) -> list[str]:
        """The spike's gradient through the surrogate derivative of the distance to threshold."""
        if self.margin is None:
            return []
        R = self.real
        mnames = dict(self.ynames)
        stmts = _with_cse(self.margin_stmts + self.m_d, "_m")
        c = _block(self.printer(mnames), stmts, mnames, "M", self.lifter, R)
        c.append(f"const {R} sgd = nr ? _sg(sg_a, {mnames['_margin']}/scale)/scale : 0;")
        c.append(f"const {R} gsm = gs*sgd;")
        for z in self.indep:
            d = self.m_known.get(("_margin", z), sympy.Integer(0))
            if d == 0:
                continue
            target = f"LY_{z}" if z in self.S else f"GP_{z}"
            c.append(f"{target} += gsm*{mnames[d.name]};")
        return c

    def update_adjoint(self) -> list[str]:
        """lambda_x = J^T lambda_y (frozen flagged states pass through), and the parameters' share."""
        S, names, xpr, c, R = self.S, self.names, self.xpr, [], self.real
        for s in S:
            terms = []
            for l, fin in zip(S, self.finals):
                d = self.upd_known.get((fin, s), sympy.Integer(0))
                dval = names[d.name] if isinstance(d, sympy.Symbol) else (None if d == 0 else xpr.doprint(d))
                if l in self.model.flagged:
                    ident = "1" if l == s else "0"
                    expr = f"(nr ? {dval or '0'} : {ident})"
                    if dval is None and ident == "0":
                        continue
                    terms.append(f"{expr}*LY_{l}")
                elif dval is not None:
                    terms.append(f"({dval})*LY_{l}")
            c.append(f"{R} LX_{s} = {' + '.join(terms) if terms else '0'};")
        for p in self.Ps:
            for l, fin in zip(S, self.finals):
                d = self.upd_known.get((fin, p), sympy.Integer(0))
                if d == 0:
                    continue
                dval = names[d.name] if isinstance(d, sympy.Symbol) else xpr.doprint(d)
                mask = "nr ? " if l in self.model.flagged else ""
                c.append(f"GP_{p} += {mask}({dval})*LY_{l}{' : 0' if mask else ''};")
        return c

    def records_adjoint(self) -> list[str]:
        """Gradients of the records (states and subexpressions of x, at the start of the step), then the
        parameters' and states' adjoints written back."""
        S, NS, R = self.S, len(self.S), self.real
        c = [f"LX_{s} += GR{j}[k];" for j, s in enumerate(S) if j in self.records]
        subs = [(m, name) for m, (name, _) in enumerate(self.subs) if NS + m in self.records]
        if subs:
            snames = dict(self.names)
            c += _block(self.printer(snames), _with_cse(self.subs + self.sub_d, "_x"), snames, "E", self.lifter, R)
            for m, name in subs:
                for z in self.indep:
                    d = self.sub_known.get((name, z), sympy.Integer(0))
                    if d == 0:
                        continue
                    target = f"LX_{z}" if z in S else f"GP_{z}"
                    c.append(f"{target} += GR{NS + m}[k]*{snames[d.name]};")
        for j, p in enumerate(self.model.parameter_names):
            if p not in self.Ps:
                continue
            if self.modes[p] == "time":  # one value per step: summed over the neurons, then stored
                c.append(f"acc_{p} += GP_{p};")
            else:
                index = "i*n + k" if self.modes[p] == "time_neuron" else "k"
                c.append(f"GA{j}[{index}] += GP_{p};")
        return c + [f"LA{j}[k] = LX_{s};" for j, s in enumerate(S)]

    def step_lines(self) -> list[str]:
        """Per step, before the neuron loop: rows of the trajectory, of the gradients (a zero row where a
        gradient is absent) and of the adjoints, and the time-parameter accumulators."""
        NS, R = len(self.S), self.real
        c = [f"const {R}* restrict TR{j} = traj + ((i - i0)*{NS} + {j})*n;" for j in range(NS)]
        c += ["const uint8_t* restrict NT = nr_traj + row; const real* restrict SP = spikes + row;",
              "const real* restrict GS = gs_in ? gs_in + i*gs_rs : zrow;",
              "const int cut = tbptt > 0 && ((i + 1) % tbptt == 0);"]
        c += [f"const real* restrict GR{j} = GR[{j}] ? GR[{j}] + i*gr_rs[{j}] : zrow;" for j in self.records]
        c += [f"real* restrict LA{j} = lam[{j}];" for j in range(NS)]
        c += [f"real* restrict GA{j} = G[{j}];" for j, p in enumerate(self.model.parameter_names)
              if p in self.Ps and self.modes[p] != "time"]
        c += [f"{R} acc_{p} = 0;" for p in self.Ps if self.modes[p] == "time"]
        return c

    def after_step(self) -> list[str]:
        return [f"G[{j}][i] += acc_{p};" for j, p in enumerate(self.model.parameter_names)
                if p in self.Ps and self.modes[p] == "time"]


def _adjoint(model, modes, upd, finals, margin, reset, reset_finals, subs, grad_params, real: str = "double",
             records: tuple[int, ...] = (), surrogate: int = 0) -> list[str]:
    """The adjoint kernel: the steps backwards in time, each recomputed from the stored trajectory and
    differentiated with respect to the states and ``grad_params`` (forward-mode derivative statements).
    Gradients of outputs come as rows of ``n`` (``row + i*stride``, stride ``n`` or 0 for one row shared by
    every step) or absent (NULL)."""
    adj = _Adjoint(model, modes, upd, finals, margin, reset, reset_finals, subs, grad_params, real, records)
    signature = [
        "void tidesim_backward(int64_t n, int64_t i0, int64_t i1, double dt, const real* traj,",
        "    const uint8_t* nr_traj, const real* spikes, real** P, real** lam, const real* gs_in,",
        "    int64_t gs_rs, const real* zrow, real** GR, const int64_t* gr_rs, real** G, int64_t tbptt,",
        "    int detach, double sg_a_in, double scale_in) {",
        f"  const {real} DT = ({real})dt, sg_a = ({real})sg_a_in, scale = ({real})scale_in;"]
    body = adj.update() + adj.reset_adjoint() + adj.threshold_adjoint() + adj.update_adjoint() + \
        adj.records_adjoint()
    sg = SURROGATE_C[surrogate].format().replace("exp(", "_expf32(" if real == "float" else "exp(")
    helper = [f"static inline {real} _sg({real} a, {real} x) {sg}"]
    lines = _kernel(signature, model, modes, "int64_t i = i1 - 1; i >= i0; i--", body, adj.lifter.lines,
                    step=adj.step_lines(), after=adj.after_step(), real=real)
    return helper + lines + ["}"]
