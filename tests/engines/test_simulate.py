"""ts.simulate: shapes, inputs, records, result API, error paths, dtype and memory options."""

import brian2 as b2
import numpy as np
import pytest
import torch

import tidesim as ts


def test_result_shapes_and_record(lif_model):
    res = ts.simulate(lif_model, duration=0.05, n=4, inputs={"I": 0.4e-9})
    assert res.t.shape == (500,) and res["v"].shape == (500, 4) and res.spikes.shape == (500, 4)
    assert res.states["v"] is res["v"]
    assert torch.allclose(res.t[:3], torch.tensor([0.0, 1e-4, 2e-4], dtype=torch.float64))
    assert res["v"][0, 0].item() == pytest.approx(-0.07)  # recorded at the start of the step
    assert len(res.spike_trains) == 4
    spikes_only = ts.simulate(lif_model, duration=0.05, n=4, inputs={"I": 0.4e-9}, record=[])
    assert spikes_only.states == {}
    assert torch.equal(spikes_only.spikes, res.spikes)
    with pytest.raises(KeyError, match="not recorded"):
        spikes_only["v"]


def test_duration_and_dt_accept_quantities(lif_model):
    res = ts.simulate(lif_model, duration=20 * b2.ms, dt=0.05 * b2.ms, n=1, inputs={"I": 0.0})
    assert res.t.shape == (400,) and res.dt == pytest.approx(5e-5)


def test_lif_spike_times_match_analytic_isi(lif_model):
    # v relaxes to E_L + R*I = -30 mV from V_reset = -65 mV; it crosses -50 mV after
    # tau*ln(35/20); add the refractory 2 ms. Exponential Euler is exact for this ODE.
    res = ts.simulate(lif_model, duration=0.2, n=1, inputs={"I": 0.4e-9}, dt=1e-5)
    isi = np.diff(res.spike_trains[0])
    expected = 0.01 * np.log(35 / 20) + 0.002
    assert np.allclose(isi, expected, atol=1e-5 + 1e-12)


def test_input_forms_agree(lif_model):
    T, n = 300, 3
    amps = torch.tensor([0.2e-9, 0.35e-9, 0.5e-9], dtype=torch.float64)
    full = ts.simulate(lif_model, duration=T * 1e-4, n=n, inputs={"I": amps.expand(T, n)})
    per_neuron_param = ts.simulate(lif_model, duration=T * 1e-4, params={"I": amps})
    assert per_neuron_param.n == n
    assert torch.equal(full["v"], per_neuron_param["v"])
    ramp = torch.linspace(0, 0.6e-9, T, dtype=torch.float64)
    from_series = ts.simulate(lif_model, duration=T * 1e-4, n=n, inputs={"I": ramp})
    def ramp_of_time(t):
        return t / ((T - 1) * 1e-4) * 0.6e-9

    from_callable = ts.simulate(lif_model, duration=T * 1e-4, n=n, inputs={"I": ramp_of_time})
    assert torch.allclose(from_series["v"], from_callable["v"], atol=1e-12)
    scalar_callable = ts.simulate(lif_model, duration=T * 1e-4, n=1,
                                  inputs={"I": lambda t: 0.5e-9 if t >= 0.01 else 0.0})
    assert scalar_callable["v"][99, 0] == pytest.approx(-0.07)
    assert scalar_callable["v"][150, 0] > -0.069
    with_units = ts.simulate(lif_model, duration=T * 1e-4, n=1, inputs={"I": 0.5 * b2.nA})
    plain = ts.simulate(lif_model, duration=T * 1e-4, n=1, inputs={"I": 0.5e-9})
    assert torch.equal(with_units["v"], plain["v"])


def test_wrong_shaped_parameter_names_it_and_expected_shape(lif_model):
    with pytest.raises(ts.ShapeError) as err:
        ts.simulate(lif_model, duration=0.01, n=4, params={"tau_m": torch.ones(3) * 0.01, "I": 0.0})
    assert "'tau_m'" in str(err.value) and "(3,)" in str(err.value) and "[4]" in str(err.value)


def test_wrong_shaped_input_names_it_and_expected_shape(lif_model):
    with pytest.raises(ts.ShapeError) as err:
        ts.simulate(lif_model, duration=0.01, n=2, inputs={"I": torch.zeros(50, 2)})
    msg = str(err.value)
    assert "'I'" in msg and "(50, 2)" in msg and "[100, 2]" in msg


def test_missing_parameter_value():
    model = ts.NeuronModel("dv/dt = (E_L - v)/tau : volt\nE_L : volt", parameters={"tau": 10 * b2.ms})
    with pytest.raises(ts.MissingParameterError) as err:
        ts.simulate(model, duration=0.01)
    assert "'E_L'" in str(err.value) and "params" in str(err.value)
    res = ts.simulate(model, duration=0.01, params={"E_L": -0.07})
    assert res["v"][-1, 0] < 0


def test_unknown_parameter_or_record_name(lif_model):
    with pytest.raises(ts.UnknownIdentifierError, match="tau_m"):
        ts.simulate(lif_model, duration=0.01, params={"tau": 0.01, "I": 0.0})
    with pytest.raises(ts.UnknownIdentifierError, match="cannot record"):
        ts.simulate(lif_model, duration=0.01, record=["w"], params={"I": 0.0})


def test_parameter_with_wrong_unit_at_simulate(lif_model):
    with pytest.raises(ts.UnitMismatchError, match="tau_m"):
        ts.simulate(lif_model, duration=0.01, params={"tau_m": 10 * b2.mV, "I": 0.0})


def test_nan_names_variable_neuron_and_time():
    # dv/dt = v**2/(tau*mV) blows up in finite time for v > 0; neuron 2 starts highest.
    model = ts.NeuronModel("dv/dt = v**2/(tau*mV) : volt", parameters={"tau": 10 * b2.ms}, method="euler")
    with pytest.raises(ts.NumericalInstabilityError) as err:
        ts.simulate(model, duration=0.2, n=3, initial={"v": torch.tensor([0.0, 1e-3, 5e-3])})
    msg = str(err.value)
    assert "'v'" in msg and "neuron 2" in msg and "t = " in msg and "ms" in msg


def test_float32_stays_close_to_float64():
    adex = ts.models.get("adex")
    kw = dict(duration=0.5, n=3, inputs={"I": torch.tensor([0.6e-9, 0.8e-9, 1.0e-9])[None].expand(5000, 3)})
    r64 = ts.simulate(adex, dtype=torch.float64, **kw)
    r32 = ts.simulate(adex, dtype=torch.float32, **kw)
    assert r32["v"].dtype == torch.float32
    counts64, counts32 = r64.spike_counts, r32.spike_counts.double()
    assert torch.all((counts64 - counts32).abs() <= 1)
    first64 = r64.spikes.argmax(0)
    first32 = r32.spikes.argmax(0)
    assert torch.all((first64 - first32).abs() <= 2)  # first spike within 0.2 ms
    before = int(first64.min()) - 1
    err = (r64["v"][:before] - r32["v"][:before].double()).abs().max().item()
    assert err < 1e-5  # volts: 10 uV, float32 has ~7 digits


def test_checkpoint_and_tbptt_give_the_same_forward():
    adex = ts.models.get("adex")
    b = torch.full((3,), 80e-12, dtype=torch.float64, requires_grad=True)
    kw = dict(duration=0.2, n=3, params={"b": b, "I": torch.tensor([0.6e-9, 0.8e-9, 1.0e-9])})
    plain = ts.simulate(adex, **kw)
    ckpt = ts.simulate(adex, checkpoint=100, **kw)
    trunc = ts.simulate(adex, tbptt=50, **kw)
    for other in (ckpt, trunc):
        assert torch.equal(plain.spikes, other.spikes)
        assert torch.equal(plain["w"], other["w"])
    (g_plain,) = torch.autograd.grad(plain["w"][-1].sum(), b)
    (g_ckpt,) = torch.autograd.grad(ckpt["w"][-1].sum(), b)
    assert torch.allclose(g_plain, g_ckpt, rtol=1e-10, atol=0)
    (g_trunc,) = torch.autograd.grad(trunc["w"][-1].sum(), b)
    assert not torch.allclose(g_plain, g_trunc)  # truncation drops long-range terms
    assert torch.all(torch.isfinite(g_trunc))


def test_checkpoint_reproduces_noise_in_backward():
    model = ts.NeuronModel("dv/dt = -v/tau + sigma*xi*tau**-0.5 : volt",
                           parameters={"tau": 10 * b2.ms, "sigma": 2 * b2.mV}, method="euler")
    sigma = torch.tensor(2e-3, dtype=torch.float64, requires_grad=True)
    plain = ts.simulate(model, duration=0.05, n=5, params={"sigma": sigma}, seed=3)
    ckpt = ts.simulate(model, duration=0.05, n=5, params={"sigma": sigma}, seed=3, checkpoint=50)
    assert torch.equal(plain["v"], ckpt["v"])
    (g1,) = torch.autograd.grad((plain["v"] ** 2).sum(), sigma)
    (g2,) = torch.autograd.grad((ckpt["v"] ** 2).sum(), sigma)
    assert torch.allclose(g1, g2, rtol=1e-10)


def test_noise_statistics_match_ornstein_uhlenbeck():
    # stationary std of tau dv = -v dt + sigma sqrt(tau) dW is sigma/sqrt(2)
    model = ts.NeuronModel("dv/dt = -v/tau + sigma*xi*tau**-0.5 : volt",
                           parameters={"tau": 5 * b2.ms, "sigma": 2 * b2.mV}, method="euler")
    res = ts.simulate(model, duration=0.1, n=2000, seed=1, dt=1e-5)
    std = res["v"][-1].std().item()
    assert std == pytest.approx(2e-3 / np.sqrt(2), rel=0.06)
    again = ts.simulate(model, duration=0.1, n=2000, seed=1, dt=1e-5)
    assert torch.equal(res["v"], again["v"])


def test_refractory_condition_and_time_expression():
    # HH-like condition: refractory while v > 0; time expression per neuron.
    model = ts.NeuronModel("dv/dt = (v_inf - v)/tau : volt (unless refractory)\nref : second",
                           threshold="v > 10*mV", reset="v = 0*mV", refractory="ref",
                           parameters={"tau": 5 * b2.ms, "v_inf": 20 * b2.mV})
    res = ts.simulate(model, duration=0.1, params={"ref": torch.tensor([1e-3, 5e-3])}, dt=1e-4)
    isi = [np.diff(tr) for tr in res.spike_trains]
    base = 0.005 * np.log(2)  # from 0 to 10 mV towards 20 mV
    assert np.allclose(isi[0], base + 1e-3, atol=1.1e-4) and np.allclose(isi[1], base + 5e-3, atol=1.1e-4)


def test_to_neo_units_and_annotations(lif_model):
    import quantities as pq

    res = ts.simulate(lif_model, duration=0.05, n=2, inputs={"I": 0.5e-9})
    seg = res.to_neo()
    sig = seg.analogsignals[0]
    assert sig.name == "v" and sig.units == pq.V and sig.shape == (500, 2)
    assert float(sig.sampling_period.rescale("s")) == pytest.approx(1e-4)
    assert np.allclose(sig.magnitude, res["v"].numpy())
    assert len(seg.spiketrains) == 2
    assert np.allclose(seg.spiketrains[1].rescale("s").magnitude, res.spike_trains[1])
    assert seg.annotations["model"] == "test-lif"


def test_plot_returns_a_figure(lif_model):
    res = ts.simulate(lif_model, duration=0.05, n=2, inputs={"I": 0.5e-9})
    fig = res.plot()
    assert fig.axes[0].get_ylabel() == "v (mV)" and fig.axes[-1].get_xlabel() == "time (s)"


def test_initial_value_expressions_and_overrides(lif_model):
    res = ts.simulate(lif_model, duration=0.001, n=2, initial={"v": "V_reset"}, params={"I": 0.0})
    assert res["v"][0, 0].item() == pytest.approx(-0.065)
    res = ts.simulate(lif_model, duration=0.001, n=2, initial={"v": torch.tensor([-0.06, -0.055])},
                      params={"I": 0.0})
    assert res["v"][0].tolist() == pytest.approx([-0.06, -0.055])


def test_bad_arguments(lif_model):
    with pytest.raises(ValueError, match="backend"):
        ts.simulate(lif_model, duration=0.01, backend="nest")
    with pytest.raises(ValueError, match="dt"):
        ts.simulate(lif_model, duration=0.01, dt=-1e-4)
    with pytest.raises(ts.UnitMismatchError):
        ts.simulate(lif_model, duration=10 * b2.mV)
    with pytest.raises(ValueError, match="checkpoint"):
        ts.simulate(lif_model, duration=0.01, checkpoint=-5, params={"I": 0.0})


@pytest.mark.parametrize("kw, message", [
    ({"dtype": torch.bfloat16}, "dtype torch.bfloat16 is not supported"),
    ({"dtype": torch.float16}, "dtype torch.float16 is not supported"),
    ({"dtype": torch.int32}, "dtype torch.int32 is not supported"),
    ({"params": {"a": float("nan")}}, "parameter 'a' is nan"),
    ({"params": {"a": torch.tensor([1e-9, float("inf")])}, "n": 2}, "parameter 'a' is inf at index 1"),
    ({"params": {"a": None}}, "parameter 'a' is None"),
    ({"params": {"a": "2nS"}}, "parameter 'a' is the text '2nS'"),
    ({"params": {"a": torch.tensor(1e-9, device="meta")}}, "parameter 'a' is a tensor on the 'meta' device"),
    ({"inputs": {"I": np.array([0.5e-9, np.nan])}}, "input 'I' is nan at index 1"),
    ({"n": 2.5}, "n must be a positive whole number of neurons, got 2.5"),
    ({"dt": 0.2}, r"dt \(0.2 s\) is not shorter than the duration \(0.1 s\)"),
    ({"n": 10**9}, "1000000000 neurons x 1000 steps .* GiB"),
])
def test_unusable_values_are_refused_before_anything_runs(kw, message):
    with pytest.raises(ts.TidesimError, match=message):
        ts.simulate(ts.models.get("adex"), 0.1, **kw)


def test_symbolic_integration_too_large_is_refused_at_once():
    import time

    eqs = "\n".join([f"dx{i}/dt = -x{i}/tau : 1" for i in range(100)] + ["tau : second"])
    t0 = time.perf_counter()
    with pytest.raises(ts.ModelError, match="100 differential equations are too many .*exponential_euler"):
        ts.NeuronModel(eqs, parameters={"tau": 0.01}, method="exact")
    assert ts.NeuronModel(eqs, parameters={"tau": 0.01}).method == "euler"  # the default choice skips exact
    assert time.perf_counter() - t0 < 30
