"""Parameter inversion: fit models to recordings with gradients through the simulator.

>>> fit = ts.fit(ts.models.get("adex"), rec, params={"a": (0, 10e-9), "b": (0, 200e-12)})
>>> fit.best_params, fit.score(rec)
"""

from .api import fit
from .baseline import poisson_baseline
from .data import FitData, prepare
from .errors import BoundsError, FitDiverged, FitError
from .losses import (
    Feature,
    FirstSpikeLatency,
    GammaFactor,
    Loss,
    ModelOutput,
    SpikeCount,
    TraceMSE,
    UserLoss,
    VanRossum,
    default_loss,
)
from .many import fit_many
from .parameters import ParameterSpace
from .report import parameter_table, write_report
from .result import FitResult

__all__ = ["fit", "fit_many", "FitResult", "FitData", "prepare", "ParameterSpace", "Loss", "ModelOutput",
           "TraceMSE", "VanRossum", "SpikeCount", "FirstSpikeLatency", "GammaFactor", "Feature", "UserLoss",
           "default_loss",
           "FitError", "BoundsError", "FitDiverged", "poisson_baseline", "parameter_table", "write_report"]
