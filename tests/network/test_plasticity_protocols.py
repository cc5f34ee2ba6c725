"""Plasticity studies: the STDP window and the triplet rule's frequency dependence from the pairing
protocol helper (figures written to the test artefacts), gradients to rule parameters against
finite differences, and a fit of the triplet rule to published pairing data:

Sjöström, Turrigiano & Nelson (2001) Neuron 32:1149 (visual cortex L5, Δt = ±10 ms, 0.1-50 Hz),
as tabulated in sPyNNaker examples/stdp_triplet.py (datasets/data/plasticity/PROVENANCE.md);
compared with Pfister & Gerstner (2006) J Neurosci 26:9673, Table 4 (all-to-all minimal model).
"""

import brian2 as b2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

import tidesim as ts
from tidesim.core.errors import ModelError
from tidesim.fitting.errors import FitError
from tidesim.fitting.plasticity import predict_rule
from tidesim.models import plasticity as rules
from tidesim.network.plasticity import pairing, pairing_times, run_pairs

# Pfister & Gerstner (2006) Table 4, visual cortex, all-to-all, minimal model
PUBLISHED = {"A2_plus": 0.0, "A3_plus": 6.5e-3, "A2_minus": 7.1e-3, "A3_minus": 0.0, "tau_y": 0.114}


def _chi2(dw, table):
    return float(np.mean(((np.asarray(dw) - table["dw_rel"].to_numpy()) / table["dw_sem"].to_numpy()) ** 2))


def test_stdp_window_of_the_pair_rule(artefacts):
    """60 pairings at 1 Hz: the additive all-to-all rule gives n A+ exp(-Δt/τ+) for Δt > 0 and
    -n A- exp(Δt/τ-) for Δt < 0 (pairs 1 s apart do not interact: exp(-50))."""
    a_plus, a_minus, tau_p, tau_m = 0.01, 0.012, 0.0168, 0.0337
    rule = rules.stdp_pair(A_plus=a_plus, A_minus=a_minus, tau_plus=tau_p, tau_minus=tau_m, w_max=100.0)
    delta = np.arange(-100, 101, 5) * 1e-3
    delta = delta[delta != 0]
    dw = pairing(rule, delta, frequency=1.0, n_pairs=60, w0=1.0).numpy()
    expected = np.where(delta > 0, 60 * a_plus * np.exp(-delta / tau_p), -60 * a_minus * np.exp(delta / tau_m))
    np.testing.assert_allclose(dw, expected, rtol=1e-8)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.axhline(0, color="0.7", lw=0.8)
    ax.plot(delta * 1e3, dw * 100, "o-", ms=3, label="tidesim (pairing protocol)")
    ax.set(xlabel="Δt = t_post - t_pre (ms)", ylabel="weight change (% of w0)",
           title="STDP window, additive pair rule, 60 pairings at 1 Hz")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(artefacts / "stdp_window.png", dpi=120)
    plt.close(fig)
    assert (artefacts / "stdp_window.png").stat().st_size > 10_000


def test_triplet_rule_frequency_dependence_reproduces_sjostrom(artefacts):
    """With the published minimal parameters the rule reproduces the data within their errors,
    and shows the signature: post-before-pre (Δt = -10 ms) depresses at low frequency and
    potentiates at 50 Hz; pre-before-post potentiation grows with frequency."""
    table = ts.datasets.plasticity_table("sjostrom2001_frequency")
    rule = rules.stdp_triplet(w_max=100.0)
    dw = predict_rule(rule, table, PUBLISHED).numpy()
    assert _chi2(dw, table) < 1.0  # reduced chi-square: within the SEMs on average
    assert _chi2(np.zeros(len(table)), table) > 5.0  # no change at all is far off
    freqs = np.array([0.1, 1, 2, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50])
    curves = {}
    for d in (10.0, -10.0):
        curves[d] = pairing(rule, d * 1e-3, freqs, n_pairs=60, w0=1.0, params=PUBLISHED, relative=True).numpy()
    assert np.all(np.diff(curves[10.0]) > 0)
    assert curves[-10.0][0] < -0.2 and curves[-10.0][-1] > 0.5
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for d, color in ((10.0, "C3"), (-10.0, "C0")):
        rows = table[table["delta_t_ms"] == d]
        ax.errorbar(rows["frequency_hz"], rows["dw_rel"] * 100, rows["dw_sem"] * 100, fmt="o", color=color,
                    label=f"Sjöström et al. 2001, Δt = {d:+.0f} ms")
        ax.plot(freqs, curves[d] * 100, "-", color=color, label=f"triplet rule (P&G 2006), Δt = {d:+.0f} ms")
    ax.axhline(0, color="0.7", lw=0.8)
    ax.set(xlabel="pairing frequency (Hz)", ylabel="weight change (%)",
           title="Triplet STDP: frequency dependence, 60 pairings")
    ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    fig.savefig(artefacts / "triplet_frequency.png", dpi=120)
    plt.close(fig)


@pytest.mark.parametrize("kind", ["pair", "triplet"])
def test_gradients_to_rule_parameters_match_finite_differences(kind):
    if kind == "pair":
        rule = rules.stdp_pair("multiplicative", "nearest")
        values = {"A_plus": 0.01, "A_minus": 0.012, "tau_plus": 0.02, "tau_minus": 0.03}
    else:
        rule = rules.stdp_triplet(w_max=100.0)
        values = {"A3_plus": 6.5e-3, "A2_minus": 7.1e-3, "tau_y": 0.114, "tau_minus": 0.0337, "tau_x": 0.1,
                  "A3_minus": 1e-3}
    target = torch.tensor([0.1, -0.2, 0.3, 0.05], dtype=torch.float64)

    def loss(p):
        dw = pairing(rule, [0.01, -0.01, 0.005, -0.02], [1.0, 1.0, 20.0, 40.0], n_pairs=12, w0=0.5, params=p)
        return ((dw - target) ** 2).sum()

    p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in values.items()}
    loss(p).backward()
    for name, value in values.items():
        h = 1e-6 * value
        up = loss({**values, name: value + h})
        down = loss({**values, name: value - h})
        fd = float(up - down) / (2 * h)
        assert abs(fd) > 0, name
        assert float(p[name].grad) == pytest.approx(fd, rel=1e-5), name


def test_fit_triplet_rule_to_sjostrom_data():
    """ts.fit on the published table finds parameters at least as good as the published ones."""
    table = ts.datasets.plasticity_table("sjostrom2001_frequency")
    rule = rules.stdp_triplet(w_max=100.0)
    fit = ts.fit(rule, table, params={"A3_plus": (1e-4, 5e-2), "A2_minus": (1e-4, 5e-2), "tau_y": (0.01, 0.5)},
                 fixed={"A2_plus": 0.0, "A3_minus": 0.0}, n_starts=4, max_iter=60, lr=0.1, seed=0)
    published = _chi2(predict_rule(rule, table, PUBLISHED).numpy(), table)
    assert fit.loss <= published * 1.02
    pred = fit.predict()
    assert _chi2(pred["dw_model"], table) == pytest.approx(fit.loss, rel=1e-9)
    # the fitted depression amplitude is what the 0.1 Hz post-before-pre point pins down
    assert fit.best_params["A2_minus"] == pytest.approx(PUBLISHED["A2_minus"], rel=0.25)


def test_event_engine_bins_spikes_and_orders_pathways_like_brian2():
    """Coincident pre and post spikes (same step): on_pre runs first, then on_post, no time passes."""
    rule = rules.stdp_pair(A_plus=0.1, A_minus=0.2, w_max=10.0)
    out = run_pairs(rule, [[0.01]], [[0.01000004]], initial={"w": 1.0})
    # pre: y = 0 -> no depression, x = 1; post: w += A_plus * x = 0.1
    assert float(out["w"][0]) == pytest.approx(1.1, abs=1e-15)


def test_plasticity_bad_input():
    rule = rules.stdp_pair()
    with pytest.raises(ValueError, match="frequency > 0"):
        pairing_times(0.01, 0.0, 10)
    with pytest.raises(ValueError, match="has no parameter 'tau'"):
        rules.stdp_pair(tau=0.02)
    with pytest.raises(ValueError, match="rule must be one of"):
        rules.stdp_pair("hebbian")
    with pytest.raises(KeyError, match="no constant 'A_plsu'"):
        run_pairs(rule, [[0.01]], [[0.02]], params={"A_plsu": 0.1})
    with pytest.raises(ValueError, match="1 pre-synaptic trains but 2"):
        run_pairs(rule, [[0.01]], [[0.02], [0.03]])
    clock = ts.SynapseModel("dg/dt = -g/tau : 1 (clock-driven)", on_pre="g += 1", parameters={"tau": 5 * b2.ms})
    with pytest.raises(ModelError, match="clock-driven"):
        run_pairs(clock, [[0.01]], [[0.02]])
    with pytest.raises(FitError, match="lacks column dw_rel"):
        ts.fit(rule, pd.DataFrame({"delta_t_ms": [10], "frequency_hz": [1], "n_pairs": [60]}),
               params={"A_plus": (0.001, 0.1)})
    with pytest.raises(ts.UnknownIdentifierError, match="no parameter 'A_plsu'"):
        ts.fit(rule, ts.datasets.plasticity_table("sjostrom2001_frequency"), params={"A_plsu": (0.001, 0.1)})
