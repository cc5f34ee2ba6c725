"""The model zoo: one small module per model family, each with its equations, default
parameters with units, and its literature reference. Synapse kinds (``ts.models.synapses``) and
plasticity rules (``ts.models.plasticity``) are here too.

>>> import tidesim as ts
>>> ts.models.available()
['adex', 'gif', 'glif', 'hodgkin_huxley', 'izhikevich', 'lif', 'mat']
>>> adex = ts.models.get("adex", a=4e-9, b=80e-12)
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from brian2.units.fundamentalunits import Quantity, get_dimensions

from tidesim.core.model import NeuronModel
from tidesim.models import plasticity, synapses

__all__ = ["available", "get", "module", "variants", "plasticity", "synapses"]

_MODULES = ("adex", "gif", "glif", "hodgkin_huxley", "izhikevich", "lif", "mat")


def available() -> list[str]:
    """Names of the zoo's neuron models, sorted."""
    return sorted(_MODULES)


def variants() -> dict[str, tuple[str, dict[str, Any]]]:
    """Names of the zoo's variants (a model's ``name``, e.g. ``gif_hazard``, ``glif3``) -> (family, options)."""
    return {v: (name, opts) for name in _MODULES
            for v, opts in getattr(importlib.import_module(f"tidesim.models.{name}"), "VARIANTS", {}).items()}


def module(name: str) -> ModuleType:
    """The zoo module of ``name`` (its PARAMETERS, REFERENCE, VALIDATION, build); a variant's name gives
    its family's module."""
    if name not in _MODULES:
        family = variants().get(name)
        if family is None:
            raise ValueError(f"no model {name!r} in the zoo; available: {', '.join(available())} and the "
                             f"variants {', '.join(sorted(variants()))}")
        name = family[0]
    return importlib.import_module(f"tidesim.models.{name}")


def get(name: str, preset: str | None = None, **overrides: Any) -> NeuronModel:
    """A zoo model with parameter ``overrides`` (quantities or SI floats) applied.

    ``preset`` picks a published parameter set where the model has them
    (``get("izhikevich", preset="FS")``); a module's ``OPTIONS`` choose a variant
    (``get("gif", spikes="threshold")``, ``get("glif", level=3)``, ``get("adex", adaptive_threshold=True)``),
    or its name does (``get("gif_threshold")``, ``get("glif3")``, ``get("adex_threshold")``).
    """
    mod = module(name)
    if name not in _MODULES:
        overrides = {**variants()[name][1], **overrides}
    options = {k: overrides.pop(k) for k in list(overrides) if k in getattr(mod, "OPTIONS", {})}
    known = {**mod.PARAMETERS, **getattr(mod, "THRESHOLD_PARAMETERS", {})}
    unknown = [k for k in overrides if k not in known]
    if unknown:
        opts = f" and options {', '.join(mod.OPTIONS)}" if hasattr(mod, "OPTIONS") else ""
        raise ValueError(f"{name} has no parameter {', '.join(map(repr, unknown))}; its parameters are "
                         f"{', '.join(known)}{opts}")
    # plain numbers are SI in the parameter's default unit
    overrides = {k: v if isinstance(v, Quantity) or not isinstance(known[k], Quantity)
                 else Quantity(v, dim=get_dimensions(known[k])) for k, v in overrides.items()}
    if preset is not None:
        if not hasattr(mod, "PRESETS"):
            raise ValueError(f"{name} has no presets")
        return mod.build(preset, **options, **overrides)
    return mod.build(**options, **overrides)
