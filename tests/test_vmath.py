"""The vectorisable exp and expm1 of kernels/vmath.py against libm (NumPy)."""
import numpy as np
import pytest
from numba import njit

from fastnn.kernels import vmath


# Through exp_like and expm1_like, as the kernels call them: vexp and vexpm1 for float64
# arrays, vexp32 and vexpm1_32 for float32 ones.
@njit
def _apply_exp(x, out):
    for i in range(x.size):
        out[i] = vmath.exp_like(x[i])


@njit
def _apply_expm1(x, out):
    for i in range(x.size):
        out[i] = vmath.expm1_like(x[i])


@njit
def _integers_of(kf, out):
    for i in range(kf.size):
        out[i] = vmath._integer_of(kf[i])


def test_integer_of_an_integral_float_by_its_bits():
    # exp's k: the int64 of an integral float64 |k| < 2^51, read from the bits of k + 1.5 * 2^52
    kf = np.concatenate([np.arange(-1100.0, 1100.0), [-0.0, 2.0**51 - 1, -(2.0**51), 12345678901.0]])
    out = np.empty(kf.size, np.int64)
    _integers_of(kf, out)
    np.testing.assert_array_equal(out, kf.astype(np.int64))


def _ulps(got, want):
    finite = np.isfinite(want) & (want != 0)
    return np.abs(got[finite] - want[finite]) / np.spacing(np.abs(want[finite]))


@pytest.mark.parametrize("fn, ref, max_ulp", [(_apply_exp, np.exp, 1.0), (_apply_expm1, np.expm1, 4.0)],
                         ids=["exp", "expm1"])
def test_within_a_few_ulps_of_libm_over_the_whole_range(fn, ref, max_ulp):
    rng = np.random.default_rng(0)
    x = np.concatenate([
        rng.uniform(-745, 709.7, 200_000),  # everything that is neither 0 nor inf
        rng.uniform(-1, 1, 50_000),  # around 0, where expm1 must not cancel
        rng.uniform(-1e-8, 1e-8, 1000),
        rng.uniform(-745.1, -708, 10_000),  # subnormal results
        np.arange(-30, 31) * np.log(2),  # reduction boundaries
    ])
    out = np.empty_like(x)
    fn(x, out)
    assert _ulps(out, ref(x)).max() <= max_ulp


@pytest.mark.parametrize("fn, ref", [(_apply_exp, np.exp), (_apply_expm1, np.expm1)], ids=["exp", "expm1"])
def test_special_values(fn, ref):
    x = np.array([0.0, -0.0, 710.0, 1e300, np.inf, -746.0, -1e300, -np.inf, np.nan])
    out = np.empty_like(x)
    fn(x, out)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out, ref(x))


@njit
def _exp_ratios(x, out):
    for i in range(x.size):
        M, D = vmath.vexp_ratio(x[i])
        out[i] = M / D


def test_exp_ratio_is_exp():
    # exp(x) = M / D, the division left to the caller (the float64 sigmoid): M / D, one
    # rounding more than vexp, is within 2 ulps of libm, and keeps exp's special values (M
    # itself, about 2 exp(x), overflows from 709.08 on).
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(-745, 709.0, 200_000), rng.uniform(-1, 1, 50_000),
                        rng.uniform(-745.1, -708, 10_000), np.arange(-30, 31) * np.log(2)])
    out = np.empty_like(x)
    _exp_ratios(x, out)
    assert _ulps(out, np.exp(x)).max() <= 2.0
    special = np.array([0.0, -0.0, 710.0, 1e300, np.inf, -746.0, -1e300, -np.inf, np.nan])
    out = np.empty_like(special)
    _exp_ratios(special, out)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out, np.exp(special))


# -- float32: vexp32 and vexpm1_32, against libm in float64 rounded to float32 --------------
@pytest.mark.parametrize("fn, ref, max_ulp", [(_apply_exp, np.exp, 1.0), (_apply_expm1, np.expm1, 3.0)],
                         ids=["exp", "expm1"])
def test_float32_within_a_few_ulps_of_libm_rounded_to_float32(fn, ref, max_ulp):
    rng = np.random.default_rng(1)
    x = np.concatenate([
        rng.uniform(-103.9, 88.7, 200_000),  # everything that is neither 0 nor inf in float32
        rng.uniform(-1, 1, 50_000),  # around 0, where expm1 must not cancel
        rng.uniform(-1e-6, 1e-6, 1000),
        rng.uniform(-103.9, -87.3, 10_000),  # subnormal results
        np.arange(-30, 31) * np.log(2),  # reduction boundaries
    ]).astype(np.float32)
    out = np.empty_like(x)
    fn(x, out)
    assert out.dtype == np.float32
    with np.errstate(over="ignore"):
        want = ref(x.astype(np.float64)).astype(np.float32)
    assert _ulps(out, want).max() <= max_ulp
    assert (out != want).any()  # float32 arithmetic (vexp32, vexpm1_32), not float64 rounded once


@pytest.mark.parametrize("fn, ref", [(_apply_exp, np.exp), (_apply_expm1, np.expm1)], ids=["exp", "expm1"])
def test_float32_special_values(fn, ref):
    x = np.array([0.0, -0.0, 89.0, 1e30, np.inf, -104.0, -1e30, -np.inf, np.nan], dtype=np.float32)
    out = np.empty_like(x)
    fn(x, out)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out, ref(x.astype(np.float64)).astype(np.float32))
