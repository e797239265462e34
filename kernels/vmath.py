"""exp and expm1 that LLVM can vectorise.

Numba turns ``np.exp`` into a call to the scalar libm function (the llvmlite wheels
carry no vector math library), which keeps every loop around it scalar: a sigmoid
over 1437 x 64 values took 13x NumPy's time. These are branch-free: argument
reduction x = k ln2 + r (Cody-Waite, |r| <= ln2/2), then exp(r) and 2^k built from
its IEEE bits. exp uses fdlibm's rational form exp(r) = 1 + 2r / (2 - c(r)), c a
degree-5 polynomial in r^2 (25% faster than the degree-13 Taylor series expm1 keeps,
where r near 0 must not cancel). Accuracy: <= 1 ulp (exp) and <= 4 ulps (expm1)
against libm (tests/test_vmath.py), in float64.

``vexp32`` and ``vexpm1_32`` do the same in float32 arithmetic for float32 kernels (the
same reduction with float32 constants, a degree-7 Taylor polynomial for expm1(r), whose
truncation is below 0.2 ulp on |r| <= ln2/2): twice the SIMD lanes of float64 and no
conversions, <= 1 ulp (exp) and <= 3 ulps (expm1) against libm rounded to float32.
``exp_like`` and ``expm1_like`` pick the one of their argument's precision.

``vexp_ratio`` is exp as a ratio M / D, for a caller that folds the division into its
own (the float64 sigmoid).
"""
import numpy as np
from numba import types
from numba.extending import intrinsic, overload

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
def _float_from_bits(typingctx, bits):
    """Reinterpret a 64-bit (32-bit) integer as the float64 (float32) with the same bits
    (an LLVM bitcast)."""
    if not isinstance(bits, types.Integer) or bits.bitwidth not in (32, 64):
        return None
    sig = (types.float64 if bits.bitwidth == 64 else types.float32)(bits)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(signature.return_type))

    return sig, codegen


@intrinsic
def _bits_of(typingctx, x):
    """The 64-bit integer with the same bits as a float64 (an LLVM bitcast)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return types.int64(x), codegen


# Adding 1.5 * 2^52 to an integral float64 of magnitude below 2^51 puts the integer in the
# low bits of the sum's mantissa, exactly.
_INT_SHIFT = 6755399441055744.0
_INT_SHIFT_BITS = np.int64(0x4338000000000000)


@jit
def _integer_of(kf):
    """int64(kf) for an integral float64 |kf| < 2^51, by its bits: AVX2 has no vector
    float64 -> int64 conversion, and LLVM converted each lane with a scalar instruction
    (docs/performance.md, "An AVX2 machine"); the results are the same."""
    return _bits_of(kf + _INT_SHIFT) - _INT_SHIFT_BITS


@jit
def _pow2(k):
    """2.0**k for integer k in [-1022, 1023]."""
    return _float_from_bits(np.int64((k + 1023) << 52))


@jit
def _scaled(y, k):
    """y 2^k, as two factors so that k from -1076 (subnormal results) to 1024 works."""
    k1 = k >> 1
    return (y * _pow2(k1)) * _pow2(k - k1)


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
    return _integer_of(kf), q


@jit
def _rational(xc):
    """fdlibm's exp(r) = 1 + 2r / (2 - c), c = r - r^2 (P1 + ... + r^2 P5), for xc = k ln2 + r
    (xc already clamped): (k, r's high and low parts hi - lo, r, c)."""
    kf = np.floor(xc * _LOG2E + 0.5)
    hi = xc - kf * _LN2_HI
    lo = kf * _LN2_LO
    r = hi - lo
    z = r * r
    c = r - z * (_P1 + z * (_P2 + z * (_P3 + z * (_P4 + z * _P5))))
    return _integer_of(kf), hi, lo, r, c


@jit
def vexp(x):
    """exp(x), float64. Underflows to 0 below -745, overflows to inf above 709.8."""
    k, hi, lo, r, c = _rational(min(max(x, -746.0), 710.0))
    y = _scaled(1.0 - ((lo - (r * c) / (2.0 - c)) - hi), k)
    return x if x != x else y  # NaN stays NaN (divergence checks rely on it)


@jit
def vexp_ratio(x):
    """(M, D) with exp(x) = M / D, float64, D in [1.99, 2.01]: exp's division left to the
    caller, to fold into one of its own (the sigmoid's 1 / (1 + exp(-z)) = D / (D + M):
    one division where there were two, the slowest instruction of the loop). M is NaN for
    a NaN x and 0 below -745, as exp; being about 2 exp(x), it overflows from x = 709.08
    on, where exp itself does from 709.78."""
    k, hi, lo, r, c = _rational(min(max(x, -746.0), 710.0))
    D = 2.0 - c
    M = _scaled(D + 2.0 * r, k)  # 1 + 2r / (2 - c) = (2 - c + 2r) / (2 - c)
    return (x if x != x else M), D


@jit
def vexpm1(x):
    """exp(x) - 1, float64, accurate near 0."""
    xc = min(max(x, -746.0), 710.0)
    k, q = _reduce(xc)
    y = _scaled(1.0 + q, k) - 1.0
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


# -- float32 ----------------------------------------------------------------------------------
_F32_LOG2E = np.float32(_LOG2E)
_F32_LN2_HI = np.float32(0.693359375)  # 9 significant bits: k * _F32_LN2_HI is exact for |k| < 2^15
_F32_LN2_LO = np.float32(-2.12194440e-4)  # ln2 - _F32_LN2_HI
_F32_HALF, _F32_ONE = np.float32(0.5), np.float32(1.0)
_F32_LOW, _F32_HIGH = np.float32(-104.0), np.float32(89.0)  # exp underflows to 0 below, overflows above
# 1/n! for expm1(r) = r + r^2/2! + ... + r^7/7!; the next term is < 6e-9 for |r| <= ln2/2.
_F32_C2, _F32_C3, _F32_C4, _F32_C5, _F32_C6, _F32_C7 = (np.float32(1.0 / f) for f in (2, 6, 24, 120, 720, 5040))


@jit
def _pow2_32(k):
    """2.0**k as a float32, for integer k in [-126, 127]."""
    return _float_from_bits(np.int32((k + 127) << 23))


@jit
def _scaled32(y, k):
    """y 2^k in float32, as two factors so that k from -150 (subnormal results) to 128 works."""
    k1 = k >> 1
    return (y * _pow2_32(k1)) * _pow2_32(k - k1)


@jit
def _reduce32(x):
    """(k, expm1(r)) with x = k ln2 + r, in float32; x already clamped to [-104, 89]."""
    kf = np.floor(x * _F32_LOG2E + _F32_HALF)
    r = (x - kf * _F32_LN2_HI) - kf * _F32_LN2_LO
    q = _F32_C7
    q = q * r + _F32_C6
    q = q * r + _F32_C5
    q = q * r + _F32_C4
    q = q * r + _F32_C3
    q = q * r + _F32_C2
    q = (q * r) * r + r
    return np.int32(kf), q


@jit
def vexp32(x):
    """exp(x) of a float32, in float32. 0 below -103.97, inf above 88.72."""
    xc = min(max(x, _F32_LOW), _F32_HIGH)
    k, q = _reduce32(xc)
    y = _scaled32(_F32_ONE + q, k)
    return x if x != x else y


@jit
def vexpm1_32(x):
    """exp(x) - 1 of a float32, in float32, accurate near 0."""
    xc = min(max(x, _F32_LOW), _F32_HIGH)
    k, q = _reduce32(xc)
    y = _scaled32(_F32_ONE + q, k) - _F32_ONE
    y = q if k == 0 else y
    return x if x != x else y


def by_precision(stub, f32, f64):
    """Give ``stub`` (the Python version, whose name and docstring it keeps) a compiled
    version that calls ``f32`` on a float32 argument and ``f64`` otherwise, inlined: one
    function for kernels of either dtype."""

    @overload(stub, inline="always")
    def _pick(x):
        return (lambda x: f32(x)) if x == types.float32 else (lambda x: f64(x))

    return stub


def exp_like(x):
    """exp(x) in x's precision: ``vexp32`` for a float32, ``vexp`` otherwise."""
    return np.exp(x)


def expm1_like(x):
    """exp(x) - 1 in x's precision: ``vexpm1_32`` for a float32, ``vexpm1`` otherwise."""
    return np.expm1(x)


by_precision(exp_like, vexp32, vexp)
by_precision(expm1_like, vexpm1_32, vexpm1)
