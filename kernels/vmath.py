"""exp and expm1 that LLVM can vectorise.

Numba turns ``np.exp`` into a call to the scalar libm function (the llvmlite wheels
carry no vector math library), which keeps every loop around it scalar: a sigmoid
over 1437 x 64 values took 13x NumPy's time. These are branch-free: argument
reduction x = k ln2 + r (Cody-Waite, |r| <= ln2/2), then exp(r) and 2^k built from
its IEEE bits. exp uses fdlibm's rational form exp(r) = 1 + 2r / (2 - c(r)), c a
degree-5 polynomial in r^2 (25% faster than the degree-13 Taylor series expm1 keeps,
where r near 0 must not cancel). Accuracy: <= 1 ulp (exp) and <= 4 ulps (expm1)
against libm (tests/test_vmath.py), in float64; float32 callers get a float64 result.
"""
import numpy as np
from numba import types
from numba.extending import intrinsic

from ._jit import jit

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # high part: k * _LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
# fdlibm e_exp.c: c(r) = r - r^2 (P1 + r^2 (P2 + ... + r^2 P5)), |error| < 2^-59 on |r| <= ln2/2.
_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08


@intrinsic
def _float64_from_bits(typingctx, bits):
    """Reinterpret an int64 as the float64 with the same bits (an LLVM bitcast)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


@jit
def _pow2(k):
    """2.0**k for integer k in [-1022, 1023]."""
    return _float64_from_bits((k + 1023) << 52)


@jit
def _reduce(x):
    """(k, expm1(r)) with x = k ln2 + r; x already clamped to [-746, 710]."""
    kf = np.floor(x * _LOG2E + 0.5)
    r = (x - kf * _LN2_HI) - kf * _LN2_LO
    # expm1(r) = r + r^2/2! + ... + r^13/13!, Horner from the top.
    q = 1.0 / 6227020800.0
    q = q * r + 1.0 / 479001600.0
    q = q * r + 1.0 / 39916800.0
    q = q * r + 1.0 / 3628800.0
    q = q * r + 1.0 / 362880.0
    q = q * r + 1.0 / 40320.0
    q = q * r + 1.0 / 5040.0
    q = q * r + 1.0 / 720.0
    q = q * r + 1.0 / 120.0
    q = q * r + 1.0 / 24.0
    q = q * r + 1.0 / 6.0
    q = q * r + 0.5
    q = (q * r) * r + r
    return np.int64(kf), q


@jit
def vexp(x):
    """exp(x), float64. Underflows to 0 below -745, overflows to inf above 709.8."""
    xc = min(max(x, -746.0), 710.0)
    kf = np.floor(xc * _LOG2E + 0.5)
    hi = xc - kf * _LN2_HI
    lo = kf * _LN2_LO
    r = hi - lo
    z = r * r
    c = r - z * (_P1 + z * (_P2 + z * (_P3 + z * (_P4 + z * _P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    # 2^k as two factors so that k down to -1076 (subnormal results) and up to 1024 work.
    k = np.int64(kf)
    k1 = k >> 1
    y = (y * _pow2(k1)) * _pow2(k - k1)
    return x if x != x else y  # NaN stays NaN (divergence checks rely on it)


@jit
def vexpm1(x):
    """exp(x) - 1, float64, accurate near 0."""
    xc = min(max(x, -746.0), 710.0)
    k, q = _reduce(xc)
    k1 = k >> 1
    y = ((1.0 + q) * _pow2(k1)) * _pow2(k - k1) - 1.0
    y = q if k == 0 else y  # no cancellation when there is no scaling
    return x if x != x else y


@jit
def flush(x, tiny):
    """x, or 0 when |x| is below ``tiny`` (a subnormal number). A select, so loops stay
    vectorised. Arithmetic on subnormals is about a hundred times slower: an Adam step
    slowed down 8x with a few subnormal moments (docs/performance.md), and a converged
    classifier's softmax outputs (exp(-100) is subnormal in float32) made epochs 1.5x
    slower. Flushing changes a value by less than ``tiny`` (1.2e-38 in float32)."""
    return x if abs(x) >= tiny else x * 0
