"""tidesim: Brian2 neuron models in a differentiable torch integrator, cross-validated against Brian2.

>>> import tidesim as ts
>>> model = ts.models.get("adex")
>>> res = ts.simulate(model, duration=0.5, n=10, inputs={"I": 0.6e-9})

The face of the package: the entry points (``simulate``, ``crossvalidate``, ``fit``), the model and
network descriptions, the errors, and the sub-packages users reach for by name. The layout behind it
is described in ``docs/architecture.md``.
"""

# ruff: noqa: E402 (the checkout path below must be set before the sub-packages are imported)
import importlib
from pathlib import Path
from typing import Any

# models/, fitting/ and datasets/ sit beside tidesim/ in the source tree; pyproject's package-dir maps
# them into the package at install. Python started in a checkout finds this tidesim/ folder first
# (the current directory leads sys.path), so point the package at the checkout too, or
# `import tidesim.fitting` there fails whichever way tidesim was installed.
_HERE = Path(__file__).resolve().parent
if not (_HERE / "fitting").is_dir() and all((_HERE.parent / d / "__init__.py").is_file()
                                             for d in ("models", "fitting", "datasets")):
    __path__.append(str(_HERE.parent))  # noqa: F821 (the package's own __path__)
del _HERE

from tidesim.core import surrogate
from tidesim.core.errors import (
    BackendError,
    EquationSyntaxError,
    InputError,
    InsufficientMemoryError,
    MissingParameterError,
    ModelError,
    NetworkError,
    NumericalInstabilityError,
    ShapeError,
    SimulationError,
    TidesimError,
    UnitMismatchError,
    UnknownIdentifierError,
    Unsupported,
)
from tidesim.core.model import NeuronModel
from tidesim.core.result import SimulationResult
from tidesim.core.synapses import SynapseModel
from tidesim.engines.simulate import simulate
from tidesim.network import Network
from tidesim.validation import CrossValidationReport, crossvalidate
from tidesim.version import __version__ as __version__

__all__ = [
    "NeuronModel", "SynapseModel", "Network",
    "SimulationResult", "simulate", "crossvalidate", "CrossValidationReport", "fit", "FitResult",
    "surrogate", "models", "datasets", "fitting", "analysis", "plasticity", "connectivity", "nn", "encode", "loss",
    "nir_io", "dynamics", "sweep", "fit_many", "export_brian2", "export_neuroml", "export_nest",
    "TidesimError", "ModelError", "EquationSyntaxError",
    "UnitMismatchError", "UnknownIdentifierError", "MissingParameterError", "ShapeError",
    "SimulationError", "NumericalInstabilityError", "BackendError", "Unsupported", "NetworkError", "InputError",
    "InsufficientMemoryError",
]

# Sub-packages imported on first use (`import tidesim` stays light: elephant, sbi, dask and the zoo load
# when asked for), and the short names they are known by.
_LAZY_MODULES = {
    "models": "tidesim.models", "datasets": "tidesim.datasets", "fitting": "tidesim.fitting",
    "analysis": "tidesim.analysis", "nn": "tidesim.nn", "dynamics": "tidesim.dynamics", "sweep": "tidesim.sweep",
    "plasticity": "tidesim.network.plasticity", "connectivity": "tidesim.network.connectivity",
    "encode": "tidesim.nn.encode", "loss": "tidesim.nn.loss", "nir_io": "tidesim.nn.nir",
}
_LAZY_NAMES = {"fit": "tidesim.fitting", "FitResult": "tidesim.fitting", "fit_many": "tidesim.fitting",
               "export_brian2": "tidesim.codegen.brian2_script", "export_neuroml": "tidesim.models.neuroml_export",
               "export_nest": "tidesim.models.nest_export"}


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(_LAZY_MODULES[name])
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'tidesim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
