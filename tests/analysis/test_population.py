"""Population statistics against what theory says for processes whose statistics are known."""

import numpy as np
import pytest

from tidesim.analysis import POPULATION_STATISTICS, population_statistics
from tidesim.datasets.spikes import SpikeData


def _poisson(rng, n, rate, t_stop):
    return [[np.sort(rng.uniform(0, t_stop, rng.poisson(rate * t_stop)))] for _ in range(n)]


def test_independent_poisson_units():
    rng = np.random.default_rng(0)
    n, rate, t_stop = 40, 20.0, 50.0
    stats = population_statistics(SpikeData(_poisson(rng, n, rate, t_stop), 0.0, t_stop))
    assert list(stats.index) == list(POPULATION_STATISTICS)
    assert stats.rate_mean == pytest.approx(rate, rel=0.03)
    assert stats.rate_sd == pytest.approx(np.sqrt(rate / t_stop), rel=0.3)  # Poisson count noise only
    assert stats.cv_mean == pytest.approx(1.0, abs=0.03)
    assert stats.fano_mean == pytest.approx(1.0, abs=0.05)
    assert abs(stats.corr_mean) < 0.01
    assert stats.sync_chi == pytest.approx(1 / np.sqrt(n), rel=0.15)
    # a flat spectrum: each band's share is its width's share of 1-400 Hz
    assert stats.power_low == pytest.approx(29 / 399, abs=0.02)
    assert stats.power_gamma == pytest.approx(120 / 399, abs=0.03)
    assert stats.power_fast == pytest.approx(250 / 399, abs=0.03)


def test_synchronous_and_regular_units():
    times = np.arange(0.0125, 20, 0.025)  # 40 Hz clock, every unit on it
    stats = population_statistics(SpikeData([[times] for _ in range(10)], 0.0, 20.0))
    assert stats.cv_mean == pytest.approx(0.0, abs=1e-9)
    assert stats.corr_mean == pytest.approx(1.0)
    assert stats.sync_chi == pytest.approx(1.0)
    # a comb of equal harmonics at 40, 80, ... Hz: none below 30 Hz, 3 of the 10 up to 400 Hz in 30-150 Hz
    assert stats.power_low < 1e-6
    assert stats.power_gamma == pytest.approx(0.3, abs=0.02)


def test_a_window_cuts_the_warm_up():
    rng = np.random.default_rng(1)
    trains = [[np.sort(np.concatenate([rng.uniform(0, 1, 100), rng.uniform(1, 11, 50)]))] for _ in range(5)]
    later = population_statistics(SpikeData(trains, 0.0, 11.0), t_start=1.0)
    assert later.rate_mean == pytest.approx(5.0)
