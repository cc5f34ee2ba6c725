"""C source of a whole :class:`~tidesim.Network`'s time loop (forward only).

One generated function runs every step of every population and projection in Brian2's schedule,
as the eager engine (:mod:`tidesim.engines.network_eager`) does in torch: per population record,
refractoriness, state update and threshold; then each projection delivers the spikes of ``delay``
steps ago through its ``on_pre`` statements (event-driven: CSR by pre-synaptic neuron, spikes kept
in a ring buffer of per-step spike lists); then spiking neurons are reset (only they are visited).

The neuron code is printed with :mod:`tidesim.codegen.c_neuron`'s printer and helpers, the synaptic statements
with the same :class:`~tidesim.codegen.c_neuron.CPrinter`. The source depends on the network's structure only
(models, parameter layouts, statements, which population feeds which); sizes, delays, synaptic
values and constants are run-time arguments, so one compiled kernel serves every network of the
same shape. The neuron loop is written without branches (new states to a second buffer, a spike flag
per neuron, spikes collected in a second pass) so that the compiler vectorises it; with FMA
contraction off, every operation rounds as the eager engine's does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from tidesim.codegen.c_hoist import RUN, STEP, Invariants, name_levels
from tidesim.codegen.c_neuron import (
    HEADER,
    CPrinter,
    NoDerivative,
    _c_names,
    _param_loads,
    prepare,
    refractory_condition,
    reset_lines,
    spike_condition,
    update_lines,
)
from tidesim.core.equations import parse_statements
from tidesim.core.errors import Unsupported
from tidesim.core.model import NeuronModel
from tidesim.core.network import Projection

__all__ = ["NetworkSource", "PopSpec", "ProjSpec", "SynStatement", "generate_network"]


@dataclass
class PopSpec:
    """A population as the generator sees it: its model and each parameter's layout
    (``"scalar"``, ``"neuron"``, ``"time"``, ``"time_neuron"``, see
    :data:`tidesim.codegen.c_neuron.PARAM_MODES`)."""

    name: str
    model: NeuronModel
    modes: dict[str, str]


@dataclass
class SynStatement:
    """``target op expr`` on the post-synaptic neuron; ``expr`` over qualified names (``w``, ``v_post``,
    ``x_pre``, constants, ``t``, ``dt``). ``two_pass``: the expression reads what the statement writes,
    so all values are computed before any is added (as the vectorised eager engine does)."""

    target: str
    op: str
    expr: sympy.Expr
    two_pass: bool


@dataclass
class ProjSpec:
    """A projection: pre (population or spike source), post population, statements, and the
    synaptic variables and constants the statements read."""

    name: str
    pre: str
    pre_is_source: bool
    post: str
    statements: list[SynStatement]
    variables: list[str]
    constants: list[str]


@dataclass
class NetworkSource:
    """Generated C source and the layout of its argument tables (pointers, integers, constants)."""

    source: str
    pointers: tuple[str, ...]
    ints: tuple[str, ...]
    constants: tuple[str, ...]


@dataclass
class _Tables:
    pointers: list[str] = field(default_factory=list)
    ints: list[str] = field(default_factory=list)
    constants: list[str] = field(default_factory=list)

    @staticmethod
    def _slot(table: list[str], name: str) -> int:
        if name not in table:
            table.append(name)
        return table.index(name)

    def ptr(self, ctype: str, local: str, name: str) -> str:
        """``ctype local = (ctype)A[slot];`` for the pointer table entry ``name``."""
        return f"{ctype} {local} = ({ctype})A[{self._slot(self.pointers, name)}];"

    def int(self, name: str) -> str:
        return f"I[{self._slot(self.ints, name)}]"

    def const(self, name: str) -> str:
        return f"C[{self._slot(self.constants, name)}]"


def synaptic_statements(proj: Projection) -> list[SynStatement]:
    """The ``on_pre`` statements of ``proj`` as sympy, names qualified as the eager engine binds them."""
    bound = proj.bound
    where = f"synapse {proj.synapse.name!r} on_pre"
    parsed = parse_statements(proj.synapse.on_pre, where) if proj.synapse.on_pre.strip() else []
    out = []
    for st, b in zip(parsed, bound.on_pre):
        if b.kind != "post":
            raise Unsupported(f"{proj.name}: on_pre statement '{b.code}' writes the synaptic variable "
                              f"'{b.target}' (plasticity); the compiled engine only writes post-synaptic "
                              "neuron variables")
        expr = st.expr.xreplace({s: sympy.Symbol(bound.qualified(s.name)) for s in st.expr.free_symbols})
        reads = {s.name for s in expr.free_symbols}
        # a statement that reads the variable it writes sees other synapses' effects when run synapse by
        # synapse; the eager engine evaluates all synapses first, and so must we
        hazard = f"{b.target}_post" in reads or (proj.pre == proj.post and f"{b.target}_pre" in reads)
        out.append(SynStatement(b.target, b.op, prepare(expr), hazard))
    return out


def _pop_pointers(tb: _Tables, p: int, kind: str | None) -> list[str]:
    lines = [tb.ptr("real**", "S", f"S{p}"), tb.ptr("real**", "P", f"P{p}"),
             tb.ptr("int32_t*", "ring", f"ring{p}"), tb.ptr("int64_t*", "ring_n", f"ring_n{p}"),
             f"const int64_t n = {tb.int(f'n{p}')}; const int64_t slot = i % {tb.int(f'ring{p}')};"]
    if kind in ("time", "time_expr"):
        lines += [tb.ptr("int64_t* restrict", "last", f"last{p}"),
                  tb.ptr("const int64_t* restrict", "ref_steps", f"ref{p}")]
    elif kind == "condition":
        lines.append(tb.ptr("uint8_t* restrict", "nrs", f"nrs{p}"))
    return lines


def _not_refractory(kind: str | None, index: str, last: str = "last", ref: str = "ref_steps",
                    nrs: str = "nrs") -> str:
    """After this step's threshold: whether neuron ``index`` is not refractory (the integrator's rule)."""
    if kind == "time":  # one period for all: a scalar, so the loop stays vectorisable
        return f"((i - {last}[{index}]) >= {ref}[0])"
    if kind == "time_expr":
        return f"((i - {last}[{index}]) >= {ref}[{index}])"
    return f"{nrs}[{index}]"


def _update_block(tb: _Tables, p: int, spec: PopSpec) -> list[str]:
    """Record, refractoriness, update and threshold of one population: ccode's forward kernel, with the
    reset left for after the synapses. The update loop has no branch and no early exit, so that the
    compiler vectorises it: it writes the new states to a second buffer (the old ones stay for an error
    message) and a spike flag per neuron; a second pass collects the spikes into this step's ring slot."""
    model, modes = spec.model, spec.modes
    S = model.state_names
    NS = len(S)
    kind = model.refractory_kind
    names = _c_names(model, modes)
    pr = CPrinter(names)
    out = [f"{{ /* {spec.name}: record, refractoriness, update, threshold */"]
    out += ["  " + x for x in _pop_pointers(tb, p, kind)]
    out += ["  " + tb.ptr("real**", "R", f"R{p}"), "  " + tb.ptr("real**", "Sn", f"Sn{p}"),
            "  " + tb.ptr("int32_t*", "ev", f"ev{p}"), "  " + tb.ptr("int64_t*", "evc", f"evc{p}"),
            "  " + tb.ptr("int64_t*", "evn", f"evn{p}"),
            "  " + tb.ptr("uint8_t* restrict", "flag", f"flag{p}"),
            "  const int64_t row = i*n;"]
    out += [f"  const real* restrict X{j} = S[{j}]; real* restrict W{j} = Sn[{j}];" for j in range(NS)]
    out += ["  " + x for x in _param_loads(model, modes, "outer") + _param_loads(model, modes, "step")]
    hoisted = len(out)  # the loop-invariant lines go here, once per step (see c_hoist)
    # records at the start of the step, as a StateMonitor
    out += [f"  if (R[{j}]) {{ real* restrict r = R[{j}] + row; for (int64_t k = 0; k < n; k++) r[k] = X{j}[k]; }}"
            for j in range(NS)]
    loads = [f"const double S_{s} = X{j}[k];" for j, s in enumerate(S)]
    for m, name in enumerate(model.subexpression_names):
        expr = pr.doprint(prepare(model.subexpression_values[name]))
        out.append(f"  if (R[{NS + m}]) for (int64_t k = 0; k < n; k++) {{")
        out += ["    " + x for x in _param_loads(model, modes, "neuron") + loads]
        out += [f"    R[{NS + m}][row + k] = {expr};", "  }"]
    inner = _param_loads(model, modes, "neuron") + loads
    if kind == "condition":
        inner.append(f"const int nr = nrs[k] | !({refractory_condition(model, names)});")
    elif kind in ("time", "time_expr"):
        inner.append(f"const int nr = {_not_refractory(kind, 'k')};")
    else:
        inner.append("const int nr = 1;")
    hoist = Invariants(name_levels(modes, model.brian2_code.constants))
    inner += update_lines(model, names, hoist)
    cond = spike_condition(model, names, hoist)
    out[hoisted:hoisted] = ["  " + x for x in hoist.lines[RUN] + hoist.lines[STEP]]
    inner.append(f"const int spk = ({cond}) & nr;" if cond is not None else "const int spk = 0;")
    inner.append("flag[k] = (uint8_t)spk;")
    if kind == "condition":
        inner.append("nrs[k] = (uint8_t)(nr & !spk);")
    # a spiking neuron may pass through infinity (AdEx): it is checked after its reset
    # bitwise operators, not && and ||: no branch, so the loop vectorises
    finite = " & ".join(f"isfinite(Y_{s})" for s in S)
    inner.append(f"bad_any |= !spk & !({finite});")
    inner += [f"W{j}[k] = (real)Y_{s};" for j, s in enumerate(S)]
    out.append("  int bad_any = 0;")
    out.append("#pragma GCC ivdep")  # the state, flag and refractoriness arrays never overlap
    out.append("  for (int64_t k = 0; k < n; k++) {")
    out += ["    " + x for x in inner]
    out.append("  }")
    out.append("  if (bad_any) for (int64_t k = 0; k < n; k++) {")
    for j in range(NS):
        out.append(f"    if (!flag[k] && !isfinite(W{j}[k])) {{ bad[0] = i; bad[1] = k; bad[2] = {j}; "
                   f"bad[3] = W{j}[k]; bad[4] = X{j}[k]; bad[5] = {p}; return 1; }}")
    out.append("  }")
    # the new states become the current ones (the tables are shared with the synapses and the reset)
    out += [f"  S[{j}] = W{j}; Sn[{j}] = (real*)X{j};" for j in range(NS)]
    last = " last[k] = i;" if kind in ("time", "time_expr") else ""
    out += ["  int32_t* fired = ring + slot*n; int64_t nf = 0;",
            "  for (int64_t k0 = 0; k0 < n; k0 += 8) {  /* spikes are rare: skip 8 flags at a time */",
            "    uint64_t word = 0;",
            "    if (k0 + 8 <= n) { memcpy(&word, flag + k0, 8); if (!word) continue; }",
            "    for (int64_t k = k0; k < k0 + 8 && k < n; k++)",
            f"      if (flag[k]) {{ fired[nf++] = (int32_t)k;{last} }}",
            "  }",
            "  ring_n[slot] = nf;",
            "  memcpy(ev + evc[0], fired, nf*sizeof(int32_t)); evn[i] = nf; evc[0] += nf;  /* spike events */",
            "}"]
    return out


def _reset_block(tb: _Tables, p: int, spec: PopSpec) -> list[str]:
    """Reset of this step's spiking neurons only (after the synapses, as in Brian2's schedule)."""
    model, modes = spec.model, spec.modes
    if not model.reset_assignments or model.threshold_statements is None:
        return []
    S = model.state_names
    _, reset_finals = model.reset_statements
    out = [f"{{ /* {spec.name}: reset */"]
    out += ["  " + x for x in _pop_pointers(tb, p, model.refractory_kind)]
    out += ["  " + x for x in _param_loads(model, modes, "outer") + _param_loads(model, modes, "step")]
    inner = _param_loads(model, modes, "neuron")
    inner += [f"double Y_{s} = S[{j}][k];" for j, s in enumerate(S)]
    inner += reset_lines(model, _c_names(model, modes))
    for j, s in enumerate(S):
        if s in reset_finals:
            inner.append(f"if (!isfinite(Y_{s})) {{ bad[0] = i; bad[1] = k; bad[2] = {j}; bad[3] = Y_{s}; "
                         f"bad[4] = S[{j}][k]; bad[5] = {p}; return 1; }}")
            inner.append(f"S[{j}][k] = (real)Y_{s};")
    out.append("  const int32_t* fired = ring + slot*n;")
    out.append("  for (int64_t a = 0; a < ring_n[slot]; a++) {")
    out.append("    const int64_t k = fired[a];")
    out += ["    " + x for x in inner]
    out += ["  }", "}"]
    return out


def _neuron_ref(model: NeuronModel, modes: dict[str, str], prefix: str, name: str, index: str,
                where: str) -> str:
    """C expression of neuron variable ``name`` (state or parameter) of neuron ``index``."""
    if name in model.state_names:
        return f"{prefix}S[{model.state_names.index(name)}][{index}]"
    if name in model.parameter_names:
        j = model.parameter_names.index(name)
        mode = modes[name]
        if mode == "scalar":
            return f"{prefix}P[{j}][0]"
        if mode == "neuron":
            return f"{prefix}P[{j}][{index}]"
        raise Unsupported(f"{where} reads '{name}', an input that varies in time; synaptic statements may "
                          "only read constant or per-neuron parameters")
    raise Unsupported(f"{where}: no variable '{name}'")  # pragma: no cover - checked when bound


def _projection_block(tb: _Tables, q: int, proj: ProjSpec, pops: dict[str, tuple[int, PopSpec]],
                      sources: dict[str, int]) -> list[str]:
    post_p, post = pops[proj.post]
    where = f"projection {proj.name}"
    out = [f"{{ /* {proj.name}: spikes of `delay` steps ago through on_pre */",
           "  " + tb.ptr("const int64_t*", "gdelay", f"gdelay{q}"),
           "  " + tb.ptr("const int64_t*", "indptr", f"indptr{q}"),
           "  " + tb.ptr("const int32_t*", "target", f"target{q}"),
           "  " + tb.ptr("real**", "postS", f"S{post_p}"), "  " + tb.ptr("real**", "postP", f"P{post_p}"),
           f"  const int64_t npre = {tb.int(f'npre{q}')};"]
    if any(st.two_pass for st in proj.statements):
        out.append("  " + tb.ptr("double*", "tmp", f"tmp{q}"))
    for v in proj.variables:
        out.append("  " + tb.ptr("const real*", f"V_{v}", f"values{q}_{v}"))
    pre_model = None
    if proj.pre_is_source:
        s = sources[proj.pre]
        out += ["  " + tb.ptr("const int64_t*", "sptr", f"sptr{s}"),
                "  " + tb.ptr("const int32_t*", "sidx", f"sidx{s}")]
    else:
        pre_p, pre_spec = pops[proj.pre]
        pre_model = pre_spec.model
        out += ["  " + tb.ptr("const int32_t*", "pring", f"ring{pre_p}"),
                "  " + tb.ptr("const int64_t*", "pring_n", f"ring_n{pre_p}"),
                "  " + tb.ptr("real**", "preS", f"S{pre_p}"), "  " + tb.ptr("real**", "preP", f"P{pre_p}"),
                f"  const int64_t pring_size = {tb.int(f'ring{pre_p}')};"]
    kind = post.model.refractory_kind
    masked = [st.target in post.model.flagged for st in proj.statements]
    if any(masked):
        if kind in ("time", "time_expr"):
            out += ["  " + tb.ptr("const int64_t*", "mlast", f"last{post_p}"),
                    "  " + tb.ptr("const int64_t*", "mref", f"ref{post_p}")]
        else:
            out.append("  " + tb.ptr("const uint8_t*", "mnrs", f"nrs{post_p}"))
    out.append("  for (int64_t g = 0; g < " + tb.int(f"groups{q}") + "; g++) {")
    out.append("    const int64_t d = gdelay[g]; if (i < d) continue;")
    if proj.pre_is_source:
        out.append("    const int32_t* src = sidx + sptr[i - d];")
        out.append("    const int64_t ns = sptr[i - d + 1] - sptr[i - d];")
    else:
        out.append("    const int64_t ps = (i - d) % pring_size;")
        out.append("    const int32_t* src = pring + ps*npre; const int64_t ns = pring_n[ps];")
    out.append("    const int64_t* ip = indptr + g*npre;")
    def over_synapses(body: str) -> list[str]:  # the synapses of this group's spiking sources, in CSR order
        return ["    for (int64_t a = 0; a < ns; a++) {", "      const int64_t pk = src[a];",
                "      for (int64_t s = ip[pk]; s < ip[pk + 1]; s++) {", "        const int64_t j = target[s];",
                f"        {body}", "      }", "    }"]

    for st, mask in zip(proj.statements, masked):
        names = {"t": "t", "dt": "dt"}
        for sym in st.expr.free_symbols:
            name = sym.name
            if name in proj.variables:
                names[name] = f"V_{name}[s]"
            elif name in proj.constants:
                names[name] = tb.const(f"{q}_{name}")
            elif name.endswith("_post"):
                names[name] = _neuron_ref(post.model, post.modes, "post", name[:-5], "j", where)
            elif name.endswith("_pre") and pre_model is not None:
                names[name] = _neuron_ref(pre_model, pops[proj.pre][1].modes, "pre", name[:-4], "pk", where)
            elif name not in names:
                raise Unsupported(f"{where}: on_pre uses '{name}', which the compiled engine does not provide")
        try:
            value = CPrinter(names).doprint(st.expr)
        except NoDerivative as exc:
            raise Unsupported(f"{where}: {exc}") from None
        target = f"postS[{post.model.state_names.index(st.target)}][j]"
        cond = ""
        if mask:  # Brian2 writes '(unless refractory)' variables only where not refractory
            cond = f"if ({_not_refractory(kind, 'j', 'mlast', 'mref', 'mnrs')}) "
        sign = "+" if st.op == "+=" else "-"
        out.append(f"    /* {st.target} {st.op} {st.expr} */")
        if st.two_pass:
            out.append("    { int64_t m = 0;")
            out += over_synapses(f"tmp[m++] = {value};")
            out.append("    m = 0;")
            out += over_synapses(f"{cond}{target} = (real)({target} {sign} tmp[m]); m++;")
            out.append("    }")
        else:
            out += over_synapses(f"{cond}{target} = (real)({target} {sign} ({value}));")
    out += ["  }", "}"]
    return out


def generate_network(pops: list[PopSpec], sources: list[str], projections: list[ProjSpec],
                     real: str) -> NetworkSource:
    """C source of ``tidesim_network(i0, i1, dt, A, I, C, bad)``: steps ``i0..i1`` of the whole network.

    ``A`` holds the arrays (states, parameters, records, spike rasters, ring buffers, CSR, values),
    ``I`` the sizes and strides, ``C`` the synaptic constants, in the order of the returned tables.
    Returns 1 with ``bad = (step, neuron, state, value, previous value, population)`` at the first
    non-finite state; 2 with ``bad[0] = step`` where an event buffer (``ev<p>``, with ``evc<p>`` = count,
    capacity and ``evn<p>`` the spikes per step) has no room for that step; else 0.
    """
    tb = _Tables()
    by_name = {spec.name: (p, spec) for p, spec in enumerate(pops)}
    src_index = {name: s for s, name in enumerate(sources)}
    try:
        step: list[str] = []
        for p, spec in enumerate(pops):
            step += _update_block(tb, p, spec)
        for q, proj in enumerate(projections):
            step += _projection_block(tb, q, proj, by_name, src_index)
        for p, spec in enumerate(pops):
            step += _reset_block(tb, p, spec)
    except NoDerivative as exc:  # a function with no C implementation
        raise Unsupported(str(exc)) from None
    # room for a whole population's spikes in every event buffer, checked before the step changes anything:
    # else return 2 and the caller grows the buffers and goes on from this step
    room = [f"if (((int64_t*)A[{tb._slot(tb.pointers, f'evc{p}')}])[0] + {tb.int(f'n{p}')} > "
            f"((int64_t*)A[{tb._slot(tb.pointers, f'evc{p}')}])[1]) {{ bad[0] = i; return 2; }}"
            for p in range(len(pops))]
    lines = ["#include <string.h>", HEADER.format(real=real),
             "int64_t tidesim_network(int64_t i0, int64_t i1, double dt, void** A, const int64_t* I,",
             "                        const double* C, double* bad) {",
             "  for (int64_t i = i0; i < i1; i++) {"] + ["    " + x for x in room] + [
             "    const double t = i*dt;"]
    lines += ["    " + x for x in step]
    lines += ["  }", "  return 0;", "}"]
    return NetworkSource("\n".join(lines), tuple(tb.pointers), tuple(tb.ints), tuple(tb.constants))
