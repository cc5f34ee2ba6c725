"""Parameter inversion: fit models to recordings with gradients through the simulator.

>>> fit = ts.fit(ts.models.get("gif_hazard"), rec)       # staged: every parameter from the data
>>> fit = ts.fit(ts.models.get("adex"), rec, params={"a": (0, 10e-9), "b": (0, 200e-12)})
>>> fit.best_params, fit.score(rec), fit.warnings
"""

from tidesim.fitting.api import fit
from tidesim.fitting.baseline import poisson_baseline
from tidesim.fitting.connectivity import infer_connectivity
from tidesim.fitting.connectivity_many import infer_connectivity_many, infer_connectivity_windows
from tidesim.fitting.connectivity_result import ConnectivityResult
from tidesim.fitting.data import FitData, prepare
from tidesim.fitting.errors import BoundsError, FitDiverged, FitError, FitWarning
from tidesim.fitting.losses import (
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
from tidesim.fitting.many import fit_many
from tidesim.fitting.network_fit import NetworkFit, fit_network
from tidesim.fitting.parameters import ParameterSpace
from tidesim.fitting.report import check_report_folder, parameter_table, timing_summary, write_report
from tidesim.fitting.result import FitResult
from tidesim.fitting.staged import FAMILIES, family_of

__all__ = ["fit", "fit_many", "FitResult", "FitData", "prepare", "ParameterSpace", "Loss", "ModelOutput",
           "TraceMSE", "VanRossum", "SpikeCount", "FirstSpikeLatency", "GammaFactor", "Feature", "UserLoss",
           "default_loss",
           "FitError", "BoundsError", "FitDiverged", "FitWarning", "poisson_baseline", "parameter_table",
           "write_report", "check_report_folder", "timing_summary", "FAMILIES", "family_of",
           "infer_connectivity", "infer_connectivity_many", "infer_connectivity_windows", "ConnectivityResult",
           "fit_network", "NetworkFit"]
