"""Network parameters from population statistics: a Brunel network simulated by Brian2 is the recording;
sbi trained on tidesim simulations must find its (g, eta)."""

import numpy as np
import pandas as pd
import pytest

from tidesim.analysis import population_statistics
from tidesim.datasets.spikes import SpikeData
from tidesim.fitting import BoundsError, FitError, fit_network
from tidesim.network.examples import brunel

TRUTH = {"g": 6.0, "eta": 1.2}
WARMUP, DURATION = 0.2, 0.6


def build(g, eta):
    return brunel(g=g, eta=eta, seed=7)


@pytest.fixture(scope="module")
def recorded():
    """100 excitatory units of the Brunel network run by Brian2 (numpy target), after the warm-up."""
    net = build(**TRUTH)
    res = net.run(WARMUP + DURATION, dt=1e-4, record={p: [] for p in net.populations}, seed=11,
                  backend="brian2", target="numpy")
    trains = [[np.asarray(t, dtype=float)] for t in res["exc"].spike_trains[:100]]
    return SpikeData(trains, 0.0, WARMUP + DURATION)


@pytest.mark.slow
def test_brunel_parameters_recovered_from_brian2_statistics(recorded):
    observed = population_statistics(recorded, t_start=WARMUP)
    fit = fit_network(build, observed, {"g": (3.0, 8.0), "eta": (0.8, 3.0)}, duration=DURATION, warmup=WARMUP,
                      n_simulations=250, n_samples=1000, seed=0)
    assert fit.info["failed_simulations"] == 0
    for name, value in TRUTH.items():
        assert fit.best_params[name] == pytest.approx(value, rel=0.2), fit.intervals()
    assert all(fit.covers(TRUTH, level=0.95).values()), fit.intervals(0.95)
    width = fit.intervals(0.9)
    assert (width.high - width.low).loc["eta"] < 0.5 * (3.0 - 0.8)  # the statistics narrow the prior
    assert isinstance(fit.simulations, pd.DataFrame) and len(fit.simulations) == 250


def test_bad_bounds_and_statistics_are_refused(recorded):
    with pytest.raises(BoundsError, match="low < high"):
        fit_network(build, recorded, {"g": (5.0, 4.0)}, n_simulations=50)
    with pytest.raises(FitError, match="at least 50"):
        fit_network(build, recorded, {"g": (3.0, 8.0)}, n_simulations=10)
    with pytest.raises(FitError, match="lack"):
        fit_network(build, pd.Series({"rate_mean": 5.0}), {"g": (3.0, 8.0)}, n_simulations=50)
