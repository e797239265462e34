"""Activations fused with the bias add, and their derivatives taken from the outputs.

Every derivative here is written in terms of the activation's *output* A, so the
pre-activation Z never needs storing (sigmoid: A(1-A); tanh: 1-A^2; ELU: A+alpha
for A <= 0, since A = alpha(e^Z - 1) there).
"""
import numpy as np

from ._jit import cast_like, jit, tiny_like
from .codes import ELU, EXP, IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTMAX, TANH
from .views import flat
from .vmath import by_precision, exp_like, expm1_like, flush, vexp32, vexp_ratio, vexpm1


# The precision of each activation is the reference's (fastnn.reference): the sigmoid's
# (and softmax's and ELU's) exp in the layer's dtype, float32 arithmetic for float32
# layers (twice the SIMD lanes: vmath's exp_like), a float64 sigmoid within 3 ulps as the
# reference's 1 / (1 + exp(-z)) (one division, not two), and tanh correctly rounded, computed
# in float64: near +-1 its last bit decides whether the derivative 1 - a^2 is 0 or
# 1.2e-7, which training amplifies (a float32 tanh, an ulp off in 5% of values, failed
# tests/test_robustness.py's saturated example).
#
# The sigmoid takes the exp of a non-positive number only, so it never overflows; a
# select, not a branch, so the loop vectorises.
@jit
def _sigmoid32(z):
    e = vexp32(-abs(z))
    s = np.float32(1.0) / (np.float32(1.0) + e)  # one division for both branches
    return s if z >= 0 else e * s


@jit
def _sigmoid64(z):
    # exp(-|z|) = M / D: 1 / (1 + M / D) = D / (D + M), one division (vmath.vexp_ratio)
    M, D = vexp_ratio(-abs(z))
    s = 1.0 / (D + M)
    return D * s if z >= 0 else M * s


def _sigmoid(z):
    """1 / (1 + exp(-z)) in z's precision: ``_sigmoid32`` or ``_sigmoid64``."""
    return 1.0 / (1.0 + np.exp(-z))


by_precision(_sigmoid, _sigmoid32, _sigmoid64)


@jit
def _tanh(z):
    # tanh|z| = -expm1(-2|z|) / (2 + expm1(-2|z|)): no cancellation near 0. In float64 for
    # both dtypes (above), rounded once to a float32 layer's.
    t = vexpm1(-2.0 * abs(z))
    y = -t / (2.0 + t)
    return y if z >= 0 else -y


@jit
def bias_activation(Z, b, code, alpha):
    """Z <- f(Z + b) in place. Z (n, d), b (d,); ``alpha`` for leaky ReLU and ELU."""
    n, d = Z.shape
    alpha = cast_like(alpha, Z)
    zero = cast_like(0.0, Z)
    tiny = tiny_like(Z)  # sigmoid and softmax outputs are flushed below it (see vmath.flush)
    # One loop nest per activation keeps the branch out of the inner loop.
    if code == IDENTITY:
        for i in range(n):
            for j in range(d):
                Z[i, j] = Z[i, j] + b[j]
    elif code == SIGMOID:
        for i in range(n):
            for j in range(d):
                Z[i, j] = flush(_sigmoid(Z[i, j] + b[j]), tiny)
    elif code == TANH:
        for i in range(n):
            for j in range(d):
                Z[i, j] = _tanh(Z[i, j] + b[j])
    elif code == RELU:
        for i in range(n):
            for j in range(d):
                Z[i, j] = max(Z[i, j] + b[j], zero)
    elif code == LEAKY_RELU:
        for i in range(n):
            for j in range(d):
                z = Z[i, j] + b[j]
                Z[i, j] = z if z > 0 else alpha * z
    elif code == ELU:
        for i in range(n):
            for j in range(d):
                z = Z[i, j] + b[j]
                Z[i, j] = z if z > 0 else alpha * expm1_like(z)
    elif code == EXP:
        # Output of scikit-learn's poisson loss (log link); like its inplace_exp, unclipped.
        for i in range(n):
            for j in range(d):
                Z[i, j] = np.exp(Z[i, j] + b[j])
    elif code == SOFTMAX:
        # Subtracting the row maximum keeps exp <= 1: no overflow for any logits.
        for i in range(n):
            zmax = Z[i, 0] + b[0]
            for j in range(d):
                Z[i, j] = Z[i, j] + b[j]
                zmax = max(zmax, Z[i, j])
            for j in range(d):
                Z[i, j] = Z[i, j] - zmax
        # exp over the whole block at once: rows are short (d = classes), and one
        # long loop vectorises where d-long ones would not.
        Zf = flat(Z)
        for i in range(Zf.size):
            Zf[i] = flush(exp_like(Zf[i]), tiny)
        for i in range(n):
            s = 0.0
            for j in range(d):
                s += Z[i, j]
            inv = 1.0 / s
            for j in range(d):
                Z[i, j] = flush(cast_like(Z[i, j] * inv, Z), tiny)  # flushed in Z's dtype, as the reference


@jit
def derivative_from_output(a, code, alpha, one, zero):
    """f'(Z) of one unit from its output a = f(Z), for the hidden activations; ``one``,
    ``zero`` and ``alpha`` in the dtype of the caller's arrays. For element-wise use
    where the code varies per call (dropout's gates); ``multiply_derivative`` below
    keeps one loop nest per activation so that its loops vectorise."""
    if code == SIGMOID:
        return a * (one - a)
    if code == TANH:
        return one - a * a
    if code == RELU:
        return one if a > 0 else zero
    if code == LEAKY_RELU:
        return one if a > 0 else alpha
    if code == ELU:
        return one if a > 0 else a + alpha
    return one


@jit
def multiply_derivative(D, A, code, alpha):
    """D <- D * f'(Z) in place, with f' computed from the output A = f(Z).

    D, A (n, d). Not for softmax, whose Jacobian is not diagonal (see losses).
    """
    n, d = D.shape
    one, zero, alpha = cast_like(1.0, D), cast_like(0.0, D), cast_like(alpha, D)
    if code == SIGMOID:
        for i in range(n):
            for j in range(d):
                D[i, j] = D[i, j] * (A[i, j] * (one - A[i, j]))
    elif code == TANH:
        for i in range(n):
            for j in range(d):
                D[i, j] = D[i, j] * (one - A[i, j] * A[i, j])
    elif code == RELU:
        for i in range(n):
            for j in range(d):
                D[i, j] = D[i, j] if A[i, j] > 0 else zero
    elif code == LEAKY_RELU:
        for i in range(n):
            for j in range(d):
                D[i, j] = D[i, j] if A[i, j] > 0 else D[i, j] * alpha
    elif code == ELU:
        for i in range(n):
            for j in range(d):
                D[i, j] = D[i, j] if A[i, j] > 0 else D[i, j] * (A[i, j] + alpha)
    # IDENTITY: derivative 1, nothing to do.
