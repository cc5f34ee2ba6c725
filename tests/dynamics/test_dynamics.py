"""tidesim.dynamics: fixed points, stability, nullclines, phase plane, rheobase, f-I, bifurcation scan.

Expected values come from closed forms written out here, not from the code under test:

- AdEx (Brette & Gerstner 2005) at a fixed point: ``(gL + a)(v - EL) - I = gL DeltaT exp((v - VT)/DeltaT)``,
  solved with Lambert's W: ``v = EL + I/(gL + a) - DeltaT W_k(-gL/(gL + a) exp((EL + I/(gL + a) - VT)/DeltaT))``
  (branch k = 0: the rest state, k = -1: the saddle), ``w = a (v - EL)``.
- AdEx rheobase (Touboul & Brette 2008, Biol. Cybern. 99:319, derived again below): the steady-state
  I-V curve is ``I_ss(v) = (gL + a)(v - EL) - gL DeltaT exp((v - VT)/DeltaT)``. The Jacobian is
  ``[[gL (e - 1)/C, -1/C], [a/tau_w, -1/tau_w]]`` with ``e = exp((v - VT)/DeltaT)``. Saddle-node:
  ``det = 0`` <=> ``gL (e - 1) = a`` <=> ``v = VT + DeltaT ln(1 + a/gL)``, giving
  ``I_SN = (gL + a)(VT - EL - DeltaT + DeltaT ln(1 + a/gL))``; the trace there is ``a/C - 1/tau_w``, so the
  rest state is lost through the saddle-node when ``a < C/tau_w``. Otherwise the trace vanishes first, at
  ``gL (e - 1) = C/tau_w`` (Andronov-Hopf): ``I_H = (gL + a)(VT - EL + DeltaT ln(1 + tau_m/tau_w))
  - gL DeltaT (1 + tau_m/tau_w)``, ``tau_m = C/gL``.
- Izhikevich (2003), in mV and ms: fixed points solve ``0.04 v^2 + (5 - b) v + 140 + I = 0``, ``u = b v``;
  the saddle-node is where the discriminant vanishes, ``(5 - b)^2 = 0.16 (140 + I)``, which loses the rest
  state when ``b < a`` (Izhikevich 2007, Dynamical Systems in Neuroscience, ch. 8); for ``b > a`` the trace
  ``0.08 v + 5 - a`` vanishes first (Hopf) at ``v = (a - 5)/0.08``.
- LIF: fixed point ``E_L + R I``, eigenvalue ``-1/tau_m``; rheobase ``(V_th - E_L)/R``; rate
  ``1/(t_ref + tau_m ln((R I + E_L - V_reset)/(R I + E_L - V_th)))``.
- Hodgkin-Huxley (standard model, 6.3 degC): sustained repetitive firing from rest begins at ~6.26 uA/cm^2
  (the saddle-node of limit cycles); the rest state loses stability by a subcritical Hopf bifurcation at
  ~9.78 uA/cm^2 (Rinzel & Miller 1980, Math. Biosci. 49:27).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from brian2 import mV, nA, nS, pA
from scipy.special import lambertw

import tidesim as ts
from tidesim import dynamics as dyn
from tidesim.core.errors import ModelError, UnknownIdentifierError

ADEX = dict(C=281e-12, gL=30e-9, EL=-70.6e-3, VT=-50.4e-3, DeltaT=2e-3, tau_w=0.144)


# ---------------------------------------------------------------------- helpers written for the tests
def adex_rhs(v: float, w: float, I: float, a: float) -> np.ndarray:
    p = ADEX
    dv = (p["gL"] * (p["EL"] - v) + p["gL"] * p["DeltaT"] * np.exp((v - p["VT"]) / p["DeltaT"]) + I - w) / p["C"]
    dw = (a * (v - p["EL"]) - w) / p["tau_w"]
    return np.array([dv, dw])


def izh_rhs(v: float, u: float, I: float, a: float, b: float) -> np.ndarray:
    """Izhikevich in SI: v, u in volts, I in amperes through R = 1 Mohm, a in 1/s."""
    vm, um, im = v * 1e3, u * 1e3, I * 1e6 * 1e3  # mV; R*I in mV
    dv = 0.04 * vm**2 + 5 * vm + 140 - um + im  # mV/ms, the same number in V/s
    du = a * (b * v - u)
    return np.array([dv, du])


def fd_jacobian(f, x: np.ndarray, rel: float = 1e-6) -> np.ndarray:
    """Central finite differences, step relative to each coordinate's scale."""
    x = np.asarray(x, dtype=float)
    jac = np.zeros((len(x), len(x)))
    for j in range(len(x)):
        h = rel * max(abs(x[j]), 1e-3 if j == 0 else 1e-12)
        e = np.zeros_like(x)
        e[j] = h
        jac[:, j] = (np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h)
    return jac


def stable_by_fd(jac: np.ndarray) -> bool:
    return bool(np.all(np.linalg.eigvals(jac).real < 0))


def adex_fixed_points_lambert(I: float, a: float) -> list[tuple[float, float]]:
    p = ADEX
    g = p["gL"] + a
    c = (p["EL"] + I / g - p["VT"]) / p["DeltaT"]
    k = p["gL"] / g * np.exp(c)
    out = []
    for branch in (0, -1):
        W = lambertw(-k, branch)
        if abs(W.imag) > 1e-12:
            continue
        v = p["EL"] + I / g - p["DeltaT"] * W.real
        out.append((v, a * (v - p["EL"])))
    return sorted(out)


# ---------------------------------------------------------------------- vector field
def test_vector_field_matches_the_equations_and_jacobian():
    adex = ts.models.get("adex", a=4 * nS)
    vf = dyn.vector_field(adex, I=300 * pA)
    assert vf.states == ["v", "w"] and vf.units == {"v": "V", "w": "A"}
    rng = np.random.default_rng(0)
    v = rng.uniform(-0.08, -0.045, 20)
    w = rng.uniform(-1e-10, 3e-10, 20)
    dv, dw = vf(v, w)
    want = adex_rhs(v, w, 300e-12, 4e-9)
    np.testing.assert_allclose(dv, want[0], rtol=1e-12)
    np.testing.assert_allclose(dw, want[1], rtol=1e-12)
    point = np.array([-0.06, 5e-11])
    np.testing.assert_allclose(vf.jacobian(point), fd_jacobian(lambda x: adex_rhs(*x, 300e-12, 4e-9), point),
                               rtol=1e-6)
    X, Y, U, V = vf.grid((-0.08, -0.04), (0.0, 2e-10), n=5)
    assert X.shape == Y.shape == U.shape == V.shape == (5, 5)


def test_vector_field_rejects_four_states_and_names_them():
    hh = ts.models.get("hodgkin_huxley")
    for call in (lambda: dyn.vector_field(hh), lambda: dyn.nullclines(hh), lambda: dyn.phase_plane(hh)):
        with pytest.raises(ModelError) as err:
            call()
        msg = str(err.value)
        assert "4" in msg and all(s in msg for s in ("v", "m", "h", "n")) and "fixed=" in msg
    # holding two states fixed leaves a plane
    vf = dyn.vector_field(hh, fixed={"m": "alpha_m/(alpha_m + beta_m)", "h": 0.6})
    assert vf.states == ["v", "n"]


def test_bad_names_give_clear_errors():
    adex = ts.models.get("adex")
    with pytest.raises(UnknownIdentifierError, match="no parameter 'Iext'"):
        dyn.fixed_points(adex, Iext=1e-9)
    with pytest.raises(UnknownIdentifierError, match="'q' is not a state"):
        dyn.vector_field(adex, fixed={"q": 0.0})
    with pytest.raises(ModelError, match="no parameter 'J'"):
        dyn.rheobase(adex, input="J")
    with pytest.raises(ModelError, match="takes 2 arrays"):
        dyn.vector_field(adex)(np.zeros(3))
    with pytest.raises(ValueError, match="method"):
        dyn.rheobase(adex, method="guess")


# ---------------------------------------------------------------------- fixed points and stability
@pytest.mark.parametrize("I", [0.0, 0.2e-9, 0.5e-9])
def test_adex_fixed_points_match_lambert_w(I):
    a = 4e-9
    fps = dyn.fixed_points(ts.models.get("adex", a=a * 1e9 * nS), I=I)
    want = adex_fixed_points_lambert(I, a)
    assert len(fps) == len(want) == 2
    for fp, (v, w) in zip(fps, want):
        assert fp["v"] == pytest.approx(v, rel=1e-9, abs=1e-12)
        assert fp["w"] == pytest.approx(w, rel=1e-7, abs=1e-18)
        jac = fd_jacobian(lambda x: adex_rhs(*x, I, a), np.array([v, w]))
        assert fp.stable == stable_by_fd(jac)
        np.testing.assert_allclose(np.sort_complex(fp.eigenvalues), np.sort_complex(np.linalg.eigvals(jac)),
                                   rtol=1e-5)
    assert fps[0].stable and fps[0].stability == "stable node"
    assert fps[1].stability == "saddle" and np.linalg.det(fps[1].jacobian) < 0


@pytest.mark.parametrize("preset,I_paper", [("RS", 0.0), ("RS", 3.0), ("FS", 2.0), ("TC", -5.0)])
def test_izhikevich_fixed_points_solve_the_quadratic(preset, I_paper):
    model = ts.models.get("izhikevich", preset=preset)
    a_ms, b, _, _ = ts.models.module("izhikevich").PRESETS[preset]
    fps = dyn.fixed_points(model, I=I_paper * nA)  # R = 1 Mohm: 1 nA is the paper's I = 1
    disc = (5 - b) ** 2 - 4 * 0.04 * (140 + I_paper)
    roots = sorted([(-(5 - b) - np.sqrt(disc)) / 0.08, (-(5 - b) + np.sqrt(disc)) / 0.08])
    assert [fp["v"] for fp in fps] == pytest.approx([r * 1e-3 for r in roots], rel=1e-10)
    assert [fp["u"] for fp in fps] == pytest.approx([b * r * 1e-3 for r in roots], rel=1e-10)
    for fp in fps:
        jac = fd_jacobian(lambda x: izh_rhs(*x, I_paper * 1e-9, a_ms * 1e3, b), np.array([fp["v"], fp["u"]]))
        assert fp.stable == stable_by_fd(jac)
    assert fps[1].stability == "saddle"


def test_lif_fixed_point_is_rest_plus_ri():
    lif = ts.models.get("lif")
    for I in (-0.1e-9, 0.0, 0.15e-9, 0.3e-9):
        (fp,) = dyn.fixed_points(lif, I=I)
        assert fp["v"] == pytest.approx(-70e-3 + 100e6 * I, abs=1e-15)
        assert fp.eigenvalues[0].real == pytest.approx(-1 / 10e-3) and fp.stability == "stable node"


def test_hodgkin_huxley_fixed_point_stability_against_finite_differences():
    hh = ts.models.get("hodgkin_huxley")
    per = float(hh.parameters["area"]) * 1e4 * 1e-6  # amperes per uA/cm^2 (area in m^2 -> cm^2)
    for density, stable, kind in ((0.0, True, "stable focus"), (12.0, False, "saddle-focus")):
        (fp,) = dyn.fixed_points(hh, I=density * per)
        x = np.array([fp[s] for s in ("v", "m", "h", "n")])
        rhs = _hh_rhs(density)
        assert np.max(np.abs(rhs(x) / np.array([1.0, 1e3, 1e3, 1e3]))) < 1e-6  # really a fixed point
        jac = fd_jacobian(rhs, x, rel=1e-6)
        assert fp.stable is stable is stable_by_fd(jac)
        assert fp.stability == kind  # above the Hopf: an unstable complex pair, two stable directions
    assert dyn.fixed_points(hh)[0]["v"] == pytest.approx(-65e-3, abs=0.05e-3)


def _hh_rhs(density: float):
    """The standard HH equations in mV, ms, uA/cm^2 (Dayan & Abbott), returned in SI per second."""
    def f(x):
        v, m, h, n = x[0] * 1e3, x[1], x[2], x[3]
        am = 0.1 * (v + 40) / (1 - np.exp(-(v + 40) / 10))
        bm = 4 * np.exp(-(v + 65) / 18)
        ah = 0.07 * np.exp(-(v + 65) / 20)
        bh = 1 / (1 + np.exp(-(v + 35) / 10))
        an = 0.01 * (v + 55) / (1 - np.exp(-(v + 55) / 10))
        bn = 0.125 * np.exp(-(v + 65) / 80)
        dv = density - 120 * m**3 * h * (v - 50) - 36 * n**4 * (v + 77) - 0.3 * (v + 54.387)  # mV/ms
        return np.array([dv, (am * (1 - m) - bm * m) * 1e3, (ah * (1 - h) - bh * h) * 1e3,
                         (an * (1 - n) - bn * n) * 1e3])
    return f


def test_root_scan_finds_roots_closer_than_the_grid():
    roots = dyn.roots_1d(lambda x: (x - 0.3) ** 2 - 1e-12, 0.0, 1.0, n=101)  # roots 1e-6 apart, grid 0.01
    assert roots == pytest.approx([0.3 - 1e-6, 0.3 + 1e-6], abs=1e-12)
    assert dyn.roots_1d(lambda x: 1 / (x - 0.5), 0.0, 1.0) == []  # a pole changes sign but is no root


# ---------------------------------------------------------------------- nullclines
def test_nullclines_adex_analytic_and_hh_numeric():
    adex = ts.models.get("adex")
    ncv, ncw = dyn.nullclines(adex, I=0.2e-9, xlim=(-80 * mV, -45 * mV), ylim=(-100 * pA, 300 * pA))
    assert ncv.method == ncw.method == "analytic" and ncv.state == "v" and ncw.state == "w"
    v, w = ncw.curves[0][:, 0], ncw.curves[0][:, 1]
    np.testing.assert_allclose(w, 4e-9 * (v + 70.6e-3), rtol=1e-12, atol=1e-25)
    v, w = ncv.curves[0][:, 0], ncv.curves[0][:, 1]
    np.testing.assert_allclose(adex_rhs(v, w, 0.2e-9, 4e-9)[0], 0, atol=1e-9)
    # the reduced HH plane (Rinzel): m at steady state, h = 0.89 - 1.1 n; the v-nullcline is quartic in n
    hh = ts.models.get("hodgkin_huxley")
    fixed = {"m": "alpha_m/(alpha_m + beta_m)", "h": "0.89 - 1.1*n"}
    ncv, ncn = dyn.nullclines(hh, fixed=fixed, xlim=(-80e-3, 40e-3), ylim=(0.2, 0.8), resolution=300)
    assert ncv.method == "numeric" and ncn.method == "analytic"
    vf = dyn.vector_field(hh, fixed=fixed)
    pts = np.concatenate(ncv.curves)
    dv = vf(pts[:, 0], pts[:, 1])[0]
    grid_step_error = np.abs(vf(pts[:, 0] + 0.4e-3, pts[:, 1])[0] - dv)  # what one grid cell changes
    assert np.all(np.abs(dv) <= grid_step_error + 1e-9)


# ---------------------------------------------------------------------- rheobase
def _adex_sn(a: float) -> float:
    p = ADEX
    return (p["gL"] + a) * (p["VT"] - p["EL"] - p["DeltaT"] + p["DeltaT"] * np.log(1 + a / p["gL"]))


def _adex_hopf(a: float) -> float:
    p = ADEX
    r = p["C"] / p["gL"] / p["tau_w"]
    return (p["gL"] + a) * (p["VT"] - p["EL"] + p["DeltaT"] * np.log(1 + r)) - p["gL"] * p["DeltaT"] * (1 + r)


@pytest.mark.parametrize("a", [0.0, 1e-9, 1.5e-9])
def test_adex_rheobase_is_the_saddle_node_formula(a):
    assert a < ADEX["C"] / ADEX["tau_w"]  # the saddle-node regime
    r = dyn.rheobase(ts.models.get("adex", a=a * 1e9 * nS))
    assert r.kind == "saddle-node" and r.method == "analytic" and r.unit == "A"
    assert float(r) == pytest.approx(_adex_sn(a), rel=1e-3)
    assert float(r) == pytest.approx(_adex_sn(a), rel=1e-9)  # in fact to rounding
    assert r.state["v"] == pytest.approx(ADEX["VT"] + ADEX["DeltaT"] * np.log(1 + a / ADEX["gL"]), rel=1e-6)


def test_adex_rheobase_default_parameters_is_a_hopf():
    a = 4e-9  # Brette & Gerstner's value: a > C/tau_w = 1.95 nS, so the trace vanishes before the determinant
    r = dyn.rheobase(ts.models.get("adex"))
    assert r.kind == "hopf"
    assert float(r) == pytest.approx(_adex_hopf(a), rel=1e-3)
    assert float(r) < _adex_sn(a)
    assert np.max(np.abs(r.eigenvalues.imag)) > 0 and np.max(r.eigenvalues.real) == pytest.approx(0, abs=1e-6)
    # the bifurcation is where the stable fixed point disappears from the scan
    below = dyn.fixed_points(ts.models.get("adex"), I=float(r) * 0.999)
    above = dyn.fixed_points(ts.models.get("adex"), I=float(r) * 1.001)
    assert any(fp.stable for fp in below) and not any(fp.stable for fp in above)


def test_izhikevich_rheobase_exact():
    # b < a: saddle-node where the discriminant vanishes (Izhikevich's class-1 parameters a=0.02, b=-0.1)
    r = dyn.rheobase(ts.models.get("izhikevich", b=-0.1))
    b = -0.1
    assert r.kind == "saddle-node"
    assert float(r) == pytest.approx(((5 - b) ** 2 / (4 * 0.04) - 140) * 1e-9, rel=1e-10)
    assert r.state["v"] == pytest.approx(-(5 - b) / 0.08 * 1e-3, rel=1e-8)
    # b > a (regular spiking): Hopf where the trace 0.08 v + 5 - a vanishes
    r = dyn.rheobase(ts.models.get("izhikevich", preset="RS"))
    a, b = 0.02, 0.2
    v_h = (a - 5) / 0.08
    assert r.kind == "hopf"
    assert float(r) == pytest.approx(-(0.04 * v_h**2 + (5 - b) * v_h + 140) * 1e-9, rel=1e-10)


def test_lif_rheobase_analytic_and_simulated():
    lif = ts.models.get("lif")
    r = dyn.rheobase(lif)
    assert r.kind == "threshold" and float(r) == pytest.approx(20e-3 / 100e6, rel=1e-12)
    r_sim = dyn.rheobase(lif, method="simulate", duration=1.0, rtol=1e-3)
    assert r_sim.bracket[0] <= r_sim.bracket[1]
    assert float(r_sim) == pytest.approx(2e-10, rel=2e-3)


def test_izhikevich_simulated_rheobase_near_the_saddle_node():
    r = dyn.rheobase(ts.models.get("izhikevich", b=-0.1), method="simulate", duration=1.0, dt=1e-5)
    expected = ((5.1**2) / 0.16 - 140) * 1e-9
    assert float(r) == pytest.approx(expected, rel=2e-3)


# ---------------------------------------------------------------------- f-I curve and bifurcation scan
def test_lif_fi_curve_matches_the_analytic_rate():
    lif = ts.models.get("lif")
    currents = np.array([0.1e-9, 0.25e-9, 0.3e-9, 0.5e-9, 1.0e-9])
    df = dyn.fi_curve(lif, currents, duration=2.0, dt=1e-5, transient=0.5)
    assert list(df.columns) == ["current", "rate", "n_spikes", "first_spike"]
    drive = -70e-3 + 100e6 * currents
    with np.errstate(divide="ignore", invalid="ignore"):
        isi = 2e-3 + 10e-3 * np.log((drive + 65e-3) / (drive + 50e-3))
    want = np.where(drive > -50e-3, 1 / isi, 0.0)
    np.testing.assert_allclose(df["rate"], want, rtol=0.02, atol=1.0)
    assert df["rate"].iloc[0] == 0 and np.isnan(df["first_spike"].iloc[0])


def test_fi_curve_batch_equals_single_runs():
    adex = ts.models.get("adex")
    df = dyn.fi_curve(adex, [0.6e-9, 0.9e-9], duration=0.5)
    for current, count in zip(df["current"], df["n_spikes"]):
        res = ts.simulate(adex, duration=0.5, params={"I": current}, record=[])
        assert len(res.spike_trains[0]) == count > 0


def test_adex_bifurcation_scan_fixed_points_vanish_at_the_saddle_node():
    a = 1e-9
    adex = ts.models.get("adex", a=a * 1e9 * nS)
    i_sn = _adex_sn(a)
    values = i_sn * np.array([0.5, 0.9, 0.99, 1.01, 1.05, 1.2, 1.5])
    scan = dyn.bifurcation_scan(adex, "I", values, duration=2.0)
    assert [len(f) for f in scan.fixed_points] == [2, 2, 2, 0, 0, 0, 0]
    assert list(scan.stable_state) == [True, True, True, False, False, False, False]
    # a saddle-node on an invariant circle: the rate rises continuously from zero (class 1), so just
    # above the bifurcation firing is too slow for 2 spikes in the 1-s window
    assert list(scan.repetitive[[0, 1, 2, 4, 5, 6]]) == [False, False, False, True, True, True]
    assert 0 <= scan.rate[3] < scan.rate[4] < scan.rate[5] < scan.rate[6]
    assert i_sn * 0.99 < scan.onset < i_sn * 1.05
    df = scan.to_dataframe()
    assert set(df["stability"].dropna()) == {"stable node", "saddle"}


def test_hodgkin_huxley_onset_of_repetitive_firing(artefacts):
    """Repetitive firing: a step of current from rest (the zoo's initial state) held for 2 s at dt = 25 us;
    a current fires repetitively when at least 2 spikes (v crossing -20 mV) fall in the last second. The
    zoo's patch has area 20000 um^2 = 2e-4 cm^2, so 1 uA/cm^2 is 0.2 nA."""
    hh = ts.models.get("hodgkin_huxley")
    per = float(hh.parameters["area"]) * 1e4 * 1e-6  # A per uA/cm^2
    assert per == pytest.approx(2e-10)
    density = np.round(np.arange(5.8, 7.0001, 0.02), 4)
    scan = dyn.bifurcation_scan(hh, "I", density * per, duration=2.0, dt=25e-6, min_spikes=2)
    onset = scan.onset / per
    assert abs(onset - 6.26) < 0.2, onset
    assert np.all(scan.rate[density > onset + 0.05] > 40) and np.all(scan.rate[density < onset - 0.05] == 0)
    # the rest state is still stable at the onset: firing starts at a saddle-node of limit cycles,
    # while the fixed point loses stability only at the (subcritical) Hopf bifurcation
    assert scan.stable_state.all()
    hopf = dyn.rheobase(hh)
    assert hopf.kind == "hopf" and float(hopf) / per == pytest.approx(9.78, abs=0.05)
    ax = scan.plot(scale=per, unit="uA/cm^2")
    assert "uA/cm^2" in ax.get_xlabel() and "mV" in ax.get_ylabel()
    ax.figure.savefig(artefacts / "dynamics_hh_bifurcation_scan.png", dpi=90)
    import matplotlib.pyplot as plt

    plt.close(ax.figure)


# ---------------------------------------------------------------------- phase plane
def test_phase_plane_figure_adex(artefacts):
    import matplotlib.pyplot as plt

    adex = ts.models.get("adex", a=1 * nS)
    pp = dyn.phase_plane(adex, I=0.5 * nA, trajectories=[{"v": -70 * mV, "w": 0.0}, {"v": -50e-3, "w": 200e-12}],
                         duration=0.4)
    assert pp.ax.get_xlabel() == "v (mV)" and pp.ax.get_ylabel() == "w (pA)"
    assert [fp.stability for fp in pp.fixed_points] == ["stable node", "saddle"]
    assert [nc.state for nc in pp.nullclines] == ["v", "w"]
    assert len(pp.trajectories) == 2 and np.isfinite(pp.trajectories[0]["v"]).any()
    labels = pp.ax.get_legend_handles_labels()[1]
    assert {"dv/dt = 0", "dw/dt = 0", "stable node", "saddle", "trajectory"} <= set(labels)
    path = artefacts / "dynamics_adex_phase_plane.png"
    pp.savefig(path, dpi=90)
    assert path.stat().st_size > 10_000
    plt.close(pp.figure)
    # above rheobase: the trajectory fires and is reset (the path is cut at each reset)
    pp = dyn.phase_plane(ts.models.get("adex"), I=0.8 * nA, trajectories=[{"v": -70 * mV, "w": 0.0}], duration=0.3)
    assert pp.fixed_points == [] and np.isnan(pp.trajectories[0]["v"]).sum() >= 2
    assert "threshold" in pp.ax.get_legend_handles_labels()[1]  # v > VT + 5 DeltaT, drawn at -40.4 mV
    assert np.nanmax(pp.trajectories[0]["v"]) < -40.4e-3  # the recorded path stops below it: reset
    pp.savefig(artefacts / "dynamics_adex_phase_plane_firing.png", dpi=90)
    plt.close(pp.figure)


def test_phase_plane_izhikevich_lif_and_reduced_hh(artefacts):
    import matplotlib.pyplot as plt

    pp = dyn.phase_plane(ts.models.get("izhikevich", preset="RS"), I=2 * nA, trajectories=[(-60e-3, -14e-3)],
                         duration=0.2)
    assert pp.ax.get_xlabel() == "v (mV)" and pp.ax.get_ylabel() == "u (mV)"
    pp.savefig(artefacts / "dynamics_izhikevich_phase_plane.png", dpi=90)
    plt.close(pp.figure)
    pp = dyn.phase_plane(ts.models.get("lif"), I=0.15e-9, trajectories=[{"v": -0.07}], duration=0.05)
    assert pp.ax.get_xlabel() == "v (mV)" and pp.ax.get_ylabel() == "dv/dt (mV/ms)"
    assert pp.fixed_points[0]["v"] == pytest.approx(-55e-3)
    pp.savefig(artefacts / "dynamics_lif_phase_line.png", dpi=90)
    plt.close(pp.figure)
    hh = ts.models.get("hodgkin_huxley")
    pp = dyn.phase_plane(hh, fixed={"m": "alpha_m/(alpha_m + beta_m)", "h": "0.89 - 1.1*n"},
                         trajectories=[{"v": -40e-3, "n": 0.32}], duration=0.03, dt=1e-5)
    assert pp.ax.get_xlabel() == "v (mV)" and pp.ax.get_ylabel() == "n (dimensionless)"
    assert len(pp.fixed_points) == 1 and pp.fixed_points[0].stable
    assert pp.trajectories[0]["v"].max() > 20e-3  # one action potential, then back to rest
    assert abs(pp.trajectories[0]["v"][-1] - pp.fixed_points[0]["v"]) < 2e-3
    pp.savefig(artefacts / "dynamics_hh_reduced_phase_plane.png", dpi=90)
    plt.close(pp.figure)


def test_phase_plane_draws_into_given_axes():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2)
    pp = dyn.phase_plane(ts.models.get("adex"), I=torch.tensor(0.1e-9), ax=axes[1])
    assert pp.ax is axes[1] and pp.figure is fig
    plt.close(fig)


def test_two_dimensional_root_search_when_no_state_can_be_eliminated():
    """Neither equation is linear in its own state: fixed points come from the 2-D grid search.
    They solve y = x^3 - x and x = y^3, i.e. (x^3 - x)^3 = x, whose real roots numpy finds here."""
    from brian2 import ms

    toy = ts.NeuronModel("""dx/dt = (y - x**3 + x)/tau : 1
                            dy/dt = (x - y**3)/tau : 1""", parameters={"tau": 10 * ms}, name="toy")
    fps = dyn.fixed_points(toy, ranges={"x": (-2, 2), "y": (-2, 2)})
    coeffs = np.polynomial.polynomial.polypow([0, -1, 0, 1], 3)  # (x^3 - x)^3, lowest power first
    coeffs[1] -= 1
    roots = np.roots(coeffs[::-1])
    xs = np.sort(roots[np.abs(roots.imag) < 1e-9].real)
    assert [fp["x"] for fp in fps] == pytest.approx(list(xs), abs=1e-9)
    for fp in fps:
        assert fp["y"] == pytest.approx(fp["x"] ** 3 - fp["x"], abs=1e-9)
        jac = fd_jacobian(lambda z: np.array([(z[1] - z[0] ** 3 + z[0]), (z[0] - z[1] ** 3)]) / 10e-3,
                          np.array([fp["x"], fp["y"]]))
        assert fp.stable == stable_by_fd(jac)
        assert fp.stability == ("saddle" if np.linalg.det(jac) < 0 else fp.stability)
    ncx, ncy = dyn.nullclines(toy, xlim=(-2, 2), ylim=(-2, 2))
    assert (ncx.method, ncx.solved_for) == ("analytic", "y") and (ncy.method, ncy.solved_for) == ("analytic", "x")
    pts = ncy.curves[0]
    np.testing.assert_allclose(pts[:, 0], pts[:, 1] ** 3, rtol=1e-12)
