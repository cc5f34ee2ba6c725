"""The synapse zoo: current- and conductance-based synapses, and :func:`with_synapses` to give a
neuron model their post-synaptic equations.

A synapse has two halves. The neuron side holds the synaptic state (a current ``I_e`` in A or a
conductance ``g_e`` in S) with its decay equations and the current it adds to the membrane; the
synapse side (:attr:`SynapticKind.synapse`, a :class:`tidesim.SynapseModel`) holds the weight and
what a pre-synaptic spike does (``g_e_post += weight``). One neuron can receive several kinds, each
with its own ``name`` suffix (``name="e"``, ``name="i"``): the symbols of a kind end in ``_<name>``.

>>> from tidesim.models import synapses as zs
>>> exc, inh = zs.exp_conductance("e", tau=5*ms, E=0*mV), zs.exp_conductance("i", tau=10*ms, E=-80*mV)
>>> lif = zs.with_synapses(ts.models.get("lif"), exc, inh)   # I = I_ext + g_e*(E_e - v) + g_i*(E_i - v)
>>> net.connect("inp", "exc_pop", exc.synapse, params={"weight": 1*nS}, delay=1*ms)

The exponential and bi-exponential states decay exactly under exponential Euler (each is a single
linear decay); the alpha kinds couple two states (see :func:`alpha_current` on accuracy).
:meth:`SynapticKind.transmit` gives the ``on_pre`` code for synapses of one's own (plastic ones).

Kinds (``available()``): ``delta`` (a voltage jump ``v_post += weight``, no equations),
``exp_current``/``exp_conductance`` (jump by ``weight``, exponential decay), ``alpha_current``/
``alpha_conductance`` and ``biexp_current``/``biexp_conductance``; the alpha and bi-exponential
kernels are normalised so that a single spike's post-synaptic current/conductance peaks at
exactly ``weight`` (at ``t = tau`` for alpha, at ``t_peak = tau_r tau_d / (tau_d - tau_r) ln(tau_d / tau_r)``
for the bi-exponential). Weights are the synaptic variable ``weight`` (not ``w``, which the zoo
AdEx uses for adaptation): volt (delta), amp (current-based), siemens (conductance-based).

References: Roth A. & van Rossum M. C. W. (2009), "Modeling synapses", in De Schutter (ed.),
*Computational Modeling Methods for Neuroscientists*, MIT Press, ch. 6 (exponential, alpha and
difference-of-exponentials synapses, the peak normalisation); Rall W. (1967), J. Neurophysiol.
30:1138 (the alpha function); Brunel N. (2000), J. Comput. Neurosci. 8:183 (delta synapses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from brian2 import Equations, ms, mV
from brian2.equations.codestrings import Expression
from brian2.equations.equations import DIFFERENTIAL_EQUATION, PARAMETER, SUBEXPRESSION, SingleEquation

from tidesim.core.errors import ModelError, UnknownIdentifierError
from tidesim.core.model import NeuronModel
from tidesim.core.synapses import SynapseModel

__all__ = ["SynapticKind", "available", "get", "with_synapses", "delta", "exp_current", "exp_conductance",
           "alpha_current", "alpha_conductance", "biexp_current", "biexp_conductance"]

REF_ROTH = ("Roth & van Rossum (2009), 'Modeling synapses', in Computational Modeling Methods for "
            "Neuroscientists, MIT Press, ch. 6")
REF_RALL = "Rall (1967), J. Neurophysiol. 30:1138"
REF_BRUNEL = "Brunel (2000), J. Comput. Neurosci. 8:183"


@dataclass(frozen=True)
class SynapticKind:
    """One synapse type of the zoo, named ``name`` (the suffix of its symbols).

    Attributes
    ----------
    kind
        Zoo key, e.g. ``"exp_conductance"``.
    name
        Suffix of the kind's symbols (``"e"`` gives ``g_e``, ``tau_e``, ``E_e``).
    conductance
        True for conductance-based kinds (state in siemens, current ``g*(E - v)`` in amp).
    equations
        Neuron-side Brian2 equations (``"dg_e/dt = -g_e/tau_e : siemens"``); empty for ``delta``.
    current
        Expression (amp) this kind adds to the neuron's input current; empty for ``delta``.
    parameters
        Neuron-side default parameters with Brian2 units (time constants, reversal potentials).
    reference
        Literature reference.
    synapse
        The synapse side: a :class:`tidesim.SynapseModel` with the weight ``weight`` and ``on_pre``.
    voltage
        Name of the membrane-potential state the kind reads (conductance) or jumps (delta).
    """

    kind: str
    name: str
    conductance: bool
    equations: str
    current: str
    parameters: dict[str, Any]
    reference: str
    synapse: SynapseModel
    voltage: str = "v"
    symbols: tuple[str, ...] = field(default=())

    def transmit(self, weight: str = "weight") -> str:
        """The ``on_pre`` statements with the weight given by the Brian2 expression ``weight``,
        for synapses of one's own, e.g. a plastic one:
        ``stdp_pair(transmit=exc.transmit("w*g_max"), constants={"g_max": 1*nS})``."""
        return re.sub(r"\bweight\b", weight if weight == "weight" else f"({weight})", self.synapse.on_pre)

    def __repr__(self) -> str:
        return f"SynapticKind({self.kind!r}, name={self.name!r}, current={self.current!r})"


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ModelError(f"a synapse name must be an identifier suffix such as 'e' or 'i', got {name!r}")


def _positive_time(value: Any, what: str) -> float:
    seconds = float(value)  # Brian2 quantities convert to their SI value
    if not seconds > 0:
        raise ModelError(f"{what} must be a positive time, got {value!r}")
    return seconds


def delta(name: str = "syn", voltage: str = "v") -> SynapticKind:
    """Delta synapse: each pre-synaptic spike makes ``voltage`` jump by ``weight`` (volt) at once.

    No neuron-side equations. ``on_pre``: ``v_post += weight``. Reference: Brunel (2000).
    """
    _check_name(name)
    syn = SynapseModel("weight : volt", on_pre=f"{voltage}_post += weight", name=f"delta_{name}")
    return SynapticKind("delta", name, False, "", "", {}, REF_BRUNEL, syn, voltage, ())


def _driving_force(eqs: str, params: dict[str, Any], x: str, name: str, E: Any, voltage: str,
                   conductance: bool) -> tuple[str, str]:
    """The current of variable ``x``: ``x`` itself (current-based) or ``x*(E_name - v)`` with the
    reversal potential ``E_name`` (V) added to the equations and parameters (conductance-based)."""
    if not conductance:
        return eqs, x
    params[f"E_{name}"] = E
    return eqs + f"\nE_{name} : volt", f"{x}*(E_{name} - {voltage})"


def _exp(name: str, tau: Any, E: Any, voltage: str, conductance: bool) -> SynapticKind:
    _check_name(name)
    _positive_time(tau, f"tau of synapse {name!r}")
    s, unit = ("g", "siemens") if conductance else ("I", "amp")
    x, tau_n = f"{s}_{name}", f"tau_{name}"
    eqs = f"d{x}/dt = -{x}/{tau_n} : {unit}\n{tau_n} : second"
    params: dict[str, Any] = {tau_n: tau}
    eqs, current = _driving_force(eqs, params, x, name, E, voltage, conductance)
    kind = "exp_conductance" if conductance else "exp_current"
    syn = SynapseModel(f"weight : {unit}", on_pre=f"{x}_post += weight", name=f"{kind}_{name}")
    return SynapticKind(kind, name, conductance, eqs, current, params, REF_ROTH, syn, voltage,
                        (x, *params))


def exp_current(name: str = "syn", tau: Any = 5 * ms) -> SynapticKind:
    """Exponential current synapse: ``dI_<name>/dt = -I_<name>/tau_<name>``; a spike adds ``weight`` (amp).

    The post-synaptic current is ``weight exp(-t/tau)``; ``tau`` (s) defaults to 5 ms.
    Reference: Roth & van Rossum (2009).
    """
    return _exp(name, tau, None, "v", False)


def exp_conductance(name: str = "syn", tau: Any = 5 * ms, E: Any = 0 * mV, voltage: str = "v") -> SynapticKind:
    """Exponential conductance synapse: ``dg_<name>/dt = -g_<name>/tau_<name>``; a spike adds ``weight``
    (siemens); the current is ``g_<name>*(E_<name> - v)`` (amp).

    ``tau`` (s) defaults to 5 ms, the reversal potential ``E`` (V) to 0 mV (excitatory; use about
    -80 mV for inhibition). Reference: Roth & van Rossum (2009).
    """
    return _exp(name, tau, E, voltage, True)


def _alpha(name: str, tau: Any, E: Any, voltage: str, conductance: bool) -> SynapticKind:
    _check_name(name)
    _positive_time(tau, f"tau of synapse {name!r}")
    s, unit = ("g", "siemens") if conductance else ("I", "amp")
    x, aux, tau_n = f"{s}_{name}", f"{s}_x_{name}", f"tau_{name}"
    # x(t) = e*w*(t/tau)*exp(-t/tau) after a spike at t = 0: the peak, at t = tau, is w
    eqs = f"""d{aux}/dt = -{aux}/{tau_n} : {unit}
              d{x}/dt = (exp(1)*{aux} - {x})/{tau_n} : {unit}
              {tau_n} : second"""
    params: dict[str, Any] = {tau_n: tau}
    eqs, current = _driving_force(eqs, params, x, name, E, voltage, conductance)
    kind = "alpha_conductance" if conductance else "alpha_current"
    syn = SynapseModel(f"weight : {unit}", on_pre=f"{aux}_post += weight", name=f"{kind}_{name}")
    return SynapticKind(kind, name, conductance, eqs, current, params, f"{REF_RALL}; {REF_ROTH}", syn, voltage,
                        (x, aux, *params))


def alpha_current(name: str = "syn", tau: Any = 2 * ms) -> SynapticKind:
    """Alpha current synapse, normalised so that the peak equals the weight: a spike at 0 gives
    ``I_<name>(t) = weight e (t/tau) exp(-t/tau)``, which peaks at ``weight`` (amp) at ``t = tau``.

    Two states: ``I_x_<name>`` (the spike adds ``weight``) drives ``I_<name>``. ``tau`` (s) defaults
    to 2 ms. The shape is exact with ``method="exact"`` (linear neurons, e.g. the zoo LIF); exponential
    Euler (the zoo's default) freezes ``I_x`` within a step, an O(dt/tau) error (the peak 2.5 % high
    at dt = tau/20), the same in Brian2. Reference: Rall (1967); Roth & van Rossum (2009).
    """
    return _alpha(name, tau, None, "v", False)


def alpha_conductance(name: str = "syn", tau: Any = 2 * ms, E: Any = 0 * mV, voltage: str = "v") -> SynapticKind:
    """Alpha conductance synapse, normalised so that the peak equals the weight: a spike at 0
    gives ``g_<name>(t) = weight e (t/tau) exp(-t/tau)``, peak ``weight`` (siemens) at ``t = tau``; the
    current is ``g_<name>*(E_<name> - v)``.

    ``tau`` (s) defaults to 2 ms, ``E`` (V) to 0 mV. The membrane equation is non-linear in ``g``, so no
    exact integrator applies: with exponential Euler the shape carries an O(dt/tau) error (see
    :func:`alpha_current`). Reference: Rall (1967); Roth & van Rossum (2009).
    """
    return _alpha(name, tau, E, voltage, True)


def _biexp(name: str, tau_rise: Any, tau_decay: Any, E: Any, voltage: str, conductance: bool) -> SynapticKind:
    _check_name(name)
    r = _positive_time(tau_rise, f"tau_rise of synapse {name!r}")
    d = _positive_time(tau_decay, f"tau_decay of synapse {name!r}")
    if not r < d:
        raise ModelError(f"synapse {name!r}: tau_rise ({r * 1e3:g} ms) must be shorter than tau_decay "
                         f"({d * 1e3:g} ms)")
    s, unit = ("g", "siemens") if conductance else ("I", "amp")
    x, xr, xd = f"{s}_{name}", f"{s}_rise_{name}", f"{s}_decay_{name}"
    tr, td, tp, norm = f"tau_rise_{name}", f"tau_decay_{name}", f"t_peak_{name}", f"norm_{name}"
    # both states jump by w and decay independently; their normalised difference peaks at w
    eqs = f"""d{xr}/dt = -{xr}/{tr} : {unit}
              d{xd}/dt = -{xd}/{td} : {unit}
              {x} = {norm}*({xd} - {xr}) : {unit}
              {tp} = {tr}*{td}/({td} - {tr})*log({td}/{tr}) : second
              {norm} = 1/(exp(-{tp}/{td}) - exp(-{tp}/{tr})) : 1
              {tr} : second
              {td} : second"""
    params: dict[str, Any] = {tr: tau_rise, td: tau_decay}
    eqs, current = _driving_force(eqs, params, x, name, E, voltage, conductance)
    kind = "biexp_conductance" if conductance else "biexp_current"
    syn = SynapseModel(f"weight : {unit}", on_pre=f"{xr}_post += weight; {xd}_post += weight",
                       name=f"{kind}_{name}")
    return SynapticKind(kind, name, conductance, eqs, current, params, REF_ROTH, syn, voltage,
                        (x, xr, xd, tp, norm, *params))


def biexp_current(name: str = "syn", tau_rise: Any = 1 * ms, tau_decay: Any = 5 * ms) -> SynapticKind:
    """Bi-exponential (difference of exponentials) current synapse, normalised so that the peak
    equals the weight: a spike at 0 gives
    ``I_<name>(t) = weight norm (exp(-t/tau_decay) - exp(-t/tau_rise))``, which peaks at ``weight``
    (amp) at ``t_peak = tau_rise tau_decay/(tau_decay - tau_rise) ln(tau_decay/tau_rise)``.

    ``tau_rise`` < ``tau_decay`` (s), defaults 1 ms and 5 ms. ``t_peak_<name>`` and ``norm_<name>``
    are subexpressions of the neuron. Reference: Roth & van Rossum (2009), eqs. 6.4-6.5.
    """
    return _biexp(name, tau_rise, tau_decay, None, "v", False)


def biexp_conductance(name: str = "syn", tau_rise: Any = 1 * ms, tau_decay: Any = 5 * ms, E: Any = 0 * mV,
                      voltage: str = "v") -> SynapticKind:
    """Bi-exponential conductance synapse, normalised so that the peak equals the weight ``weight``
    (siemens) at ``t_peak`` (see :func:`biexp_current`); the current is ``g_<name>*(E_<name> - v)``.

    ``tau_rise`` < ``tau_decay`` (s), defaults 1 ms and 5 ms; ``E`` (V) defaults to 0 mV.
    Reference: Roth & van Rossum (2009).
    """
    return _biexp(name, tau_rise, tau_decay, E, voltage, True)


_KINDS: dict[str, Callable[..., SynapticKind]] = {
    "delta": delta,
    "exp_current": exp_current, "exp_conductance": exp_conductance,
    "alpha_current": alpha_current, "alpha_conductance": alpha_conductance,
    "biexp_current": biexp_current, "biexp_conductance": biexp_conductance,
}


def available() -> list[str]:
    """Names of the zoo's synapse kinds, sorted."""
    return sorted(_KINDS)


def get(kind: str, name: str = "syn", **parameters: Any) -> SynapticKind:
    """The zoo synapse ``kind`` (a name from :func:`available`) named ``name``, with keyword
    ``parameters`` of its function (``tau``, ``E``, ``tau_rise``, ...)."""
    if kind not in _KINDS:
        raise UnknownIdentifierError(f"no synapse kind {kind!r} in the zoo; available: {', '.join(available())}")
    return _KINDS[kind](name, **parameters)


def with_synapses(model: NeuronModel, *kinds: SynapticKind | str, current: str = "I",
                  method: str | None = None, name: str | None = None) -> NeuronModel:
    """A copy of ``model`` that receives the synapses ``kinds``.

    The input-current parameter ``current`` (e.g. the zoo LIF's ``I : amp``) becomes the
    subexpression ``I = I_ext + <sum of the kinds' currents> : amp``, and a new parameter
    ``I_ext`` (``<current>_ext``, amp) takes over its role and its default: after this, drive the
    neuron with ``inputs={"I_ext": ...}``. The kinds' neuron-side equations and default
    parameters are added; delta synapses add no equations (their ``on_pre`` jumps the voltage).
    ``kinds``: :class:`SynapticKind` objects, or zoo names (``"exp_current"``, made with the
    default name ``"syn"``). ``method``: the integration method of the new model (default: the
    model's own). Connect with each kind's ``.synapse``.
    """
    spec = model.spec
    objs = []
    for k in kinds:
        objs.append(get(k) if isinstance(k, str) else k)
        if not isinstance(objs[-1], SynapticKind):
            raise ModelError(f"with_synapses takes zoo synapse kinds or their names, got {type(k).__name__}")
    eqs = {e.varname: e for e in model.equations.values()}
    cur = eqs.get(current)
    if cur is None or cur.type != PARAMETER:
        role = "state variable" if cur is not None and cur.type == DIFFERENTIAL_EQUATION else "subexpression"
        what = (f"{model.name} has no input-current parameter {current!r}" if cur is None
                else f"{current!r} of {model.name} is a {role}, not an input-current parameter")
        raise UnknownIdentifierError(
            f"{what} to receive synaptic currents; its parameters are {', '.join(model.parameter_names)}; "
            "name the current parameter with current=...")
    ext = f"{current}_ext"
    taken = set(eqs)
    if ext in taken:
        raise ModelError(f"{model.name} already has a name {ext!r}; with_synapses needs it for the external input")
    taken.add(ext)
    seen_names: dict[str, str] = {}
    added: list[SingleEquation] = []
    parameters = {k: v for k, v in model.parameters.items() if k != current}
    if current in model.parameters:
        parameters[ext] = model.parameters[current]
    terms = [ext]
    for k in objs:
        if k.name in seen_names:
            raise ModelError(f"two synapses are named {k.name!r} ({seen_names[k.name]} and {k.kind}); give each "
                             "its own name (name='e', name='i')")
        seen_names[k.name] = k.kind
        if (k.conductance or k.kind == "delta") and k.voltage not in model.state_names:
            raise UnknownIdentifierError(f"synapse {k.name!r} ({k.kind}) acts on the voltage {k.voltage!r}, which "
                                         f"is not a state of {model.name}; its states are "
                                         f"{', '.join(model.state_names)} (pass voltage=...)")
        clash = sorted(taken & set(k.symbols))
        if clash:
            raise ModelError(f"synapse {k.name!r} ({k.kind}) would add {', '.join(map(repr, clash))}, which "
                             f"{model.name} already has; choose another name")
        taken |= set(k.symbols)
        if k.equations:
            added.extend(Equations(k.equations).values())
        parameters.update(k.parameters)
        if k.current:
            terms.append(k.current)
    new_eqs = []
    for e in model.equations.values():
        if e.varname == current:
            total = Expression(" + ".join(terms))
            new_eqs.append(SingleEquation(SUBEXPRESSION, current, dimensions=cur.dim, expr=total))
            new_eqs.append(SingleEquation(PARAMETER, ext, dimensions=cur.dim))
        else:
            new_eqs.append(e)
    label = "+".join(f"{k.kind}[{k.name}]" for k in objs)
    refs = [model.reference] + [k.reference for k in objs if k.reference not in (model.reference,)]
    return NeuronModel(
        equations=Equations(new_eqs + added),
        threshold=spec["threshold"], reset=spec["reset"], refractory=spec["refractory"],
        parameters=parameters, initial=model.initial, method=method or spec["method"],
        threshold_scale=spec["threshold_scale"], name=name or (f"{model.name}+{label}" if objs else model.name),
        reference="; ".join(dict.fromkeys(r for r in refs if r)))
