"""Analysis of recorded and simulated spikes and traces: elephant and eFEL behind named functions.

``ts.analysis.torch`` holds differentiable versions for fitting.
"""

import warnings

# Importing elephant installs process-wide warning filters (a 'once' filter for every UserWarning,
# from elephant.spade), which would turn Brian2's dependencies' deprecation notices on for the rest
# of the session: import it once here with the filters restored afterwards.
with warnings.catch_warnings():
    import elephant  # noqa: F401

from tidesim.analysis import differentiable as torch
from tidesim.analysis.features import (
    adaptation_index,
    efel_features,
    fi_curve,
    first_spike_latency,
    step_window,
)
from tidesim.analysis.plots import fi_plot, isi_histogram, raster
from tidesim.analysis.population import POPULATION_STATISTICS, population_statistics
from tidesim.analysis.spiketrains import NoSpikesError, as_spiketrains
from tidesim.analysis.statistics import (
    cross_correlogram,
    cv_isi,
    fano_factor,
    firing_rate,
    gamma_factor,
    instantaneous_rate,
    isi,
    local_variation,
    spike_count_correlation,
    van_rossum_distance,
    victor_purpura_distance,
)
from tidesim.analysis.timing import (
    coincidence_factor,
    coincidences,
    intrinsic_reliability,
    md_star,
    normalized_gamma,
    psth,
    psth_explained_variance,
)

__all__ = [
    "as_spiketrains", "NoSpikesError", "firing_rate", "instantaneous_rate", "isi", "cv_isi", "local_variation",
    "fano_factor", "spike_count_correlation", "cross_correlogram", "van_rossum_distance",
    "victor_purpura_distance", "gamma_factor", "fi_curve", "first_spike_latency", "adaptation_index",
    "efel_features", "step_window", "torch", "raster", "isi_histogram", "fi_plot",
    "coincidences", "coincidence_factor", "intrinsic_reliability", "normalized_gamma", "md_star", "psth",
    "psth_explained_variance", "population_statistics", "POPULATION_STATISTICS",
]
