"""Spike-timing measures on hand-computed cases."""

import numpy as np
import pytest

import tidesim as ts
from tidesim.analysis import (
    coincidence_factor,
    coincidences,
    intrinsic_reliability,
    md_star,
    normalized_gamma,
    psth_explained_variance,
)


def test_coincidences_are_matched_one_to_one():
    assert coincidences([0.010, 0.020], [0.011, 0.0115, 0.030], 2e-3) == 1  # one data spike, one match
    assert coincidences([0.010, 0.012], [0.011], 2e-3) == 1
    assert coincidences([], [0.1], 2e-3) == 0


def test_coincidence_factor_by_hand():
    # 10 data spikes, 10 model spikes, 8 within 2 ms, over 1 s: nu = 10 Hz, <N> = 2*10*0.002*10 = 0.4,
    # Gamma = (8 - 0.4) / 10 / (1 - 0.04)
    data = np.arange(10) * 0.1 + 0.05
    model = data + np.r_[np.full(8, 1e-3), np.full(2, 5e-3)]
    assert coincidence_factor(data, model, 1.0, 2e-3) == pytest.approx((8 - 0.4) / 10 / 0.96)
    assert coincidence_factor(data, data, 1.0, 2e-3) == pytest.approx(1.0)
    assert np.isnan(coincidence_factor([], [], 1.0))
    # above 1/(2 delta) the chance level fills the window: undefined, not a large number
    fast = np.arange(200) * 0.005
    assert np.isnan(coincidence_factor(fast, fast, 1.0, 4e-3))


def test_independent_poisson_trains_score_near_chance():
    rng = np.random.default_rng(0)
    values = [coincidence_factor(np.sort(rng.random(20)), np.sort(rng.random(20)), 1.0, 4e-3)
              for _ in range(400)]
    # one-to-one matching makes slightly fewer coincidences than the Poisson count: a small negative bias
    assert -0.04 < np.mean(values) < 0.01


def test_reliability_and_normalized_gamma():
    base = np.arange(1, 20) * 0.05
    trials = [base, base + 1e-3, base + np.r_[np.zeros(18), 0.01]]
    r = intrinsic_reliability(trials, 1.0, 2e-3)
    pairs = [coincidence_factor(a, b, 1.0, 2e-3) for i, a in enumerate(trials) for j, b in enumerate(trials)
             if i != j]
    assert r == pytest.approx(np.mean(pairs))
    out = normalized_gamma(trials, [base], 1.0, 2e-3)
    assert out["normalized"] == pytest.approx(out["gamma"] / r) and out["reliability"] == pytest.approx(r)


def test_md_star():
    base = np.arange(1, 20) * 0.05
    data = [base, base + 5e-4, base - 5e-4]
    assert md_star(data, data, 1.0, 2e-3) == pytest.approx(1.0)  # the data predicts itself
    assert md_star(data, [base + 0.02], 1.0, 2e-3) == pytest.approx(0.0)  # every spike 20 ms off
    # a model of the mean PSTH with half the spikes: <D,M> = 9.5*... ratio 2*0.5/(1+0.5) = 2/3
    assert md_star(data, [base[::2][:10]], 1.0, 2e-3) == pytest.approx(2 * 10 / (19 + 10), rel=1e-9)
    with pytest.raises(ValueError, match="two repeats"):
        md_star([base], [base], 1.0)


def test_psth_explained_variance():
    rng = np.random.default_rng(1)
    data = [np.sort(rng.random(50)) for _ in range(4)]
    assert psth_explained_variance(data, data, 1.0) == pytest.approx(1.0)
    flat = [np.linspace(0, 1, 50, endpoint=False)]
    assert psth_explained_variance(data, flat, 1.0) < 0.2


def test_gamma_factor_is_the_coincidence_factor_per_pair():
    d, m = [np.array([0.1, 0.5])], [np.array([0.101, 0.7])]
    assert ts.analysis.gamma_factor(d, m, delta=4e-3, duration=1.0)[0] == pytest.approx(
        coincidence_factor(d[0], m[0], 1.0, 4e-3))
