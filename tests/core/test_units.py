"""The one unit converter (``to_si``) and the display units, tested directly."""

import brian2 as b2
import numpy as np
import pytest
import quantities as pq
import torch

from tidesim.core.errors import UnitMismatchError
from tidesim.core.units import display_unit, fmt, lab_unit, si_float, to_si, unit_name


def test_brian2_quantities_become_si_and_wrong_units_are_named():
    assert to_si(-70 * b2.mV, "E_L", b2.volt.dim) == pytest.approx(-0.07, rel=1e-15)
    np.testing.assert_allclose(to_si(np.array([1.0, 2.0]) * b2.nS, "g", b2.siemens.dim), [1e-9, 2e-9])
    with pytest.raises(UnitMismatchError, match=r"'tau_m'.*unit A.*must have unit s"):
        to_si(5 * b2.nA, "tau_m", b2.second.dim)


def test_neo_quantities_are_checked_like_brian2_ones():
    assert to_si(-65.0 * pq.mV, "v", b2.volt.dim) == pytest.approx(-0.065, rel=1e-12)
    assert to_si(2.0 * pq.nA, "I", b2.amp.dim) == pytest.approx(2e-9, rel=1e-12)
    with pytest.raises(UnitMismatchError, match="'I'"):
        to_si(2.0 * pq.mV, "I", b2.amp.dim)


def test_plain_values_are_taken_as_si():
    assert to_si(0.5, "x", b2.volt.dim) == 0.5
    assert isinstance(to_si([1, 2], "x"), np.ndarray)
    t = torch.ones(3, requires_grad=True)
    assert to_si(t, "x", b2.volt.dim) is t  # tensors keep their graph


def test_si_float_refuses_what_is_not_one_finite_number():
    assert si_float(3 * b2.ms, "dt", b2.second.dim) == pytest.approx(3e-3)
    for bad in ("1ms", float("nan"), float("inf"), None):
        with pytest.raises(ValueError, match="'dt'"):
            si_float(bad, "dt", b2.second.dim)
    with pytest.raises(ValueError, match="one number"):
        si_float(torch.ones(2), "dt")


def test_display_units():
    assert lab_unit(b2.volt.dim) == (1e-3, "mV")
    assert lab_unit(b2.amp.dim) == (1e-12, "pA")
    assert lab_unit(b2.metre.dim) == (1.0, "")
    scale, unit = display_unit(b2.volt.dim, 0.07)
    assert (scale, unit) == (pytest.approx(1e-3), "mV")
    assert unit_name(b2.volt.dim) == "V" and unit_name((b2.siemens / b2.metre**2).dim) == "S/m^2"
    assert fmt(-0.07, b2.volt.dim) == "-70. mV"
