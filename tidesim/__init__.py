"""tidesim: Brian2 neuron models in a differentiable torch integrator, cross-validated against Brian2.

>>> import tidesim as ts
>>> model = ts.models.get("adex")
>>> res = ts.simulate(model, duration=0.5, n=10, inputs={"I": 0.6e-9})
"""

from . import surrogate
from .errors import (
    BackendError,
    EquationSyntaxError,
    MissingParameterError,
    ModelError,
    NumericalInstabilityError,
    ShapeError,
    SimulationError,
    TidesimError,
    UnitMismatchError,
    UnknownIdentifierError,
)
from .model import NeuronModel
from .network import Network
from .result import SimulationResult
from .simulation import simulate
from .synapses import SynapseModel
from .validation import CrossValidationReport, crossvalidate

__version__ = "0.1.0"

__all__ = [
    "NeuronModel", "SynapseModel", "Network",
    "SimulationResult", "simulate", "crossvalidate", "CrossValidationReport", "fit", "FitResult",
    "surrogate", "models", "datasets", "fitting", "analysis", "plasticity", "connectivity", "nn", "encode", "loss",
    "nir_io", "dynamics", "sweep", "fit_many",
    "TidesimError", "ModelError", "EquationSyntaxError",
    "UnitMismatchError", "UnknownIdentifierError", "MissingParameterError", "ShapeError",
    "SimulationError", "NumericalInstabilityError", "BackendError",
]


def __getattr__(name):
    # The zoo, datasets and fitting import lazily: `import tidesim` stays light.
    import importlib

    if name in ("models", "datasets", "fitting", "analysis", "plasticity", "connectivity", "nn", "encode",
                "loss", "nir_io", "dynamics", "sweep"):
        return importlib.import_module(f"tidesim.{name}")
    if name in ("fit", "FitResult", "fit_many"):
        return getattr(importlib.import_module("tidesim.fitting"), name)
    raise AttributeError(f"module 'tidesim' has no attribute {name!r}")
