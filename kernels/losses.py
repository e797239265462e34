"""Loss values and the output-layer delta dL/dZ, for each loss x output activation.

``batch_loss`` and ``batch_delta`` serve both faces, with the family of the objective's
type: the tutorial's codes (``loss_sum``, ``output_delta``) or scikit-learn's
(``sk_loss_sum``, ``sk_output_delta``), both with optional sample weights.

The tutorial's conventions (the loss is a mean over the n samples of the batch, or a
weighted mean sum w_i L_i / sum w_i with sample weights; k outputs):
    MSE                       L = 1/(n k) sum (A - Y)^2
    LOG_LOSS                  L = -1/(n k) sum Y log A + (1 - Y) log(1 - A)
    CATEGORICAL_CROSSENTROPY  L = -1/n sum Y log A
Logs take A clipped to [eps, 1 - eps] so that log(0) never happens.
"""
import numpy as np
from numba.extending import overload

from ._jit import cast_like, jit, tiny_like
from .bundles import SklearnObjective
from .vmath import flush
from .codes import CATEGORICAL_CROSSENTROPY, LOG_LOSS, MSE, SIGMOID, SK_BINARY_LOG_LOSS, SK_POISSON, SK_SQUARED_ERROR, SOFTMAX


@jit(inline="always")
def loss_sum(A, Y, sw, code, eps):
    """Sum over the batch of the per-sample loss (divide by n, or by sum(sw), for the
    mean). A, Y (n, k); sw (n,) sample weights, each sample's loss times its weight, or
    empty for unit weights (a weight of 1 multiplies exactly: the same sum as without)."""
    n, k = A.shape
    weighted = sw.size > 0
    total = 0.0
    if code == MSE:
        for i in range(n):
            w = sw[i] if weighted else 1.0
            for j in range(k):
                r = A[i, j] - Y[i, j]
                total += w * (r * r)
        return total / k
    if code == LOG_LOSS:
        for i in range(n):
            w = sw[i] if weighted else 1.0
            for j in range(k):
                a = min(max(A[i, j], eps), 1.0 - eps)
                total -= w * (Y[i, j] * np.log(a) + (1.0 - Y[i, j]) * np.log(1.0 - a))
        return total / k
    # CATEGORICAL_CROSSENTROPY
    for i in range(n):
        w = sw[i] if weighted else 1.0
        for j in range(k):
            if Y[i, j] != 0:
                total -= w * (Y[i, j] * np.log(min(max(A[i, j], eps), 1.0 - eps)))
    return total


@jit(inline="always")
def output_delta(A, Y, sw, loss_code, out_code, scale, D):
    """D <- scale * dL/dZ of the output layer, where ``scale`` is 1/n of the batch (1 /
    sum(sw) with sample weights: each row's delta is then times its weight).

    A (n, k) output activations, Y (n, k) targets, sw (n,) or empty, D (n, k) written.
    """
    n, k = A.shape
    weighted = sw.size > 0
    if (loss_code == LOG_LOSS and out_code == SIGMOID) or (
        loss_code == CATEGORICAL_CROSSENTROPY and out_code == SOFTMAX
    ):
        # dL/dZ = A - Y holds exactly for sigmoid + binary cross-entropy and for
        # softmax + categorical cross-entropy (per sample; LOG_LOSS also averages over k).
        # A saturated output's tiny A - Y, scaled by 1/n, is subnormal: flushed (see
        # vmath.flush; in float32 these made a converged digits epoch 1.25x slower).
        c = cast_like(scale / k if loss_code == LOG_LOSS else scale, D)
        tiny = tiny_like(D)
        for i in range(n):
            ci = c * sw[i] if weighted else c
            for j in range(k):
                D[i, j] = flush(ci * (A[i, j] - Y[i, j]), tiny)
        return
    # General case: g = dL/dA per sample, then the output activation's Jacobian.
    # The API allows only MSE here (LOG_LOSS needs sigmoid, CCE needs softmax).
    c = cast_like(2.0 * scale / k, D)
    for i in range(n):
        ci = c * sw[i] if weighted else c
        for j in range(k):
            D[i, j] = ci * (A[i, j] - Y[i, j])
    if out_code == SIGMOID:
        for i in range(n):
            for j in range(k):
                D[i, j] = D[i, j] * (A[i, j] * (1.0 - A[i, j]))
    elif out_code == SOFTMAX:
        # dL/dZ_j = A_j (g_j - sum_l g_l A_l): the softmax Jacobian applied to g.
        for i in range(n):
            s = 0.0
            for j in range(k):
                s += D[i, j] * A[i, j]
            for j in range(k):
                D[i, j] = A[i, j] * (D[i, j] - s)


# What ``count_correct`` counts (accuracy = count / rows, or / (rows * outputs) for THRESHOLD).
NO_ACCURACY = 0
ARGMAX_ACCURACY = 1  # rows whose largest output is the largest target (one-hot classes)
THRESHOLD_ACCURACY = 2  # outputs on the same side of 0.5 as their target (binary / multi-label)


# -- accuracy --------------------------------------------------------------------------------
@jit
def count_correct(A, Y, kind):
    """Correct predictions in a batch, A, Y (n, k): see NO/ARGMAX/THRESHOLD_ACCURACY."""
    n, k = A.shape
    correct = 0.0
    if kind == ARGMAX_ACCURACY:
        # Selects, not branches: where the maximum sits changes from row to row, and the
        # mispredicted branches made this a tenth of a digits training step.
        for i in range(n):
            ja, jy = 0, 0  # first maximum, as np.argmax (a NaN never wins a comparison)
            a_max, y_max = A[i, 0], Y[i, 0]
            for j in range(1, k):
                a, y = A[i, j], Y[i, j]
                ja = j if a > a_max else ja
                a_max = a if a > a_max else a_max
                jy = j if y > y_max else jy
                y_max = y if y > y_max else y_max
            correct += 1.0 if ja == jy else 0.0
    elif kind == THRESHOLD_ACCURACY:
        for i in range(n):
            for j in range(k):
                correct += 1.0 if (A[i, j] > 0.5) == (Y[i, j] > 0.5) else 0.0
    return correct


# -- scikit-learn's conventions (fastnn.sklearn) -------------------------------------------
@jit(inline="always")
def sk_loss_sum(A, Y, sw, code, eps):
    """scikit-learn's MLP loss of a batch times its weight sum (divide by sum(sw), or by n
    when unweighted, for scikit-learn's value). A, Y (n, k); sw (n,) sample weights, or
    an empty array for none. ``code`` is one of codes.SK_*:
        SK_SQUARED_ERROR    0.5 / k sum_i w_i sum_j (a - y)^2
        SK_POISSON          sum_i w_i sum_j y log(y / a) - y + a   (y log(y / a) = 0 at y = 0)
        SK_BINARY_LOG_LOSS  -sum_i w_i sum_j y log a + (1 - y) log(1 - a)
        SK_LOG_LOSS         -sum_i w_i sum_j y log a
    with a clipped to [eps, 1 - eps] inside the logs of the two log losses.
    """
    n, k = A.shape
    weighted = sw.size > 0
    total = 0.0
    for i in range(n):
        s = 0.0
        for j in range(k):
            a = A[i, j]
            y = Y[i, j]
            if code == SK_SQUARED_ERROR:
                s += (a - y) * (a - y)
            elif code == SK_POISSON:
                s += (y * np.log(y / a) if y != 0 else 0.0) - y + a
            elif code == SK_BINARY_LOG_LOSS:
                a = min(max(a, eps), 1.0 - eps)
                # Targets are 0/1 (or in between): each term only where its weight is non-zero.
                if y != 0:
                    s -= y * np.log(a)
                if y != 1:
                    s -= (1.0 - y) * np.log(1.0 - a)
            else:  # SK_LOG_LOSS
                if y != 0:
                    s -= y * np.log(min(max(a, eps), 1.0 - eps))
        total += sw[i] * s if weighted else s
    if code == SK_SQUARED_ERROR:
        return 0.5 * total / k
    return total


@jit(inline="always")
def sk_output_delta(A, Y, sw, D):
    """D <- sw * (A - Y): dL/dZ of the output layer, per sample, for every scikit-learn
    pair of output activation and loss (identity + squared error, exp + poisson,
    sigmoid + binary log loss, softmax + log loss: each loss's canonical link).
    A, Y, D (n, k); sw (n,) or empty for unit weights. Unscaled: scikit-learn divides
    the gradients by the weight sum after the backward pass."""
    n, k = A.shape
    weighted = sw.size > 0
    for i in range(n):
        w = sw[i] if weighted else 1.0
        for j in range(k):
            D[i, j] = (A[i, j] - Y[i, j]) * w if weighted else A[i, j] - Y[i, j]


# -- either face's family, chosen when the caller is compiled ----------------------------------
def batch_loss(A, Y, sw, objective):
    """Sum over the batch of the per-sample ``objective.metric_code`` losses, each times its
    sample weight (sw (n,), or empty for unit weights): the tutorial's (``loss_sum``) for
    a bundles.TutorialObjective, scikit-learn's (``sk_loss_sum``) for a
    bundles.SklearnObjective.

    For compiled kernels only: the family is picked from the objective's type when the
    caller is compiled (the overload below), so a fit never compiles the other face's
    losses (their compile is a sizeable part of a cold
    first fit: docs/performance.md).
    """
    raise TypeError("losses.batch_loss is called from compiled kernels only")


def batch_delta(A, Y, sw, objective, out_code, scale, D):
    """D <- scale * dL/dZ of the output layer for the summed ``objective.loss_code`` losses
    of ``batch_loss``: ``scale`` is 1 / (the weight sum) for the gradient of the weighted
    mean. Compiled kernels only, like ``batch_loss``."""
    raise TypeError("losses.batch_delta is called from compiled kernels only")


def _is_sklearn(objective):
    """Whether the Numba type ``objective`` is a bundles.SklearnObjective."""
    return getattr(objective, "instance_class", None) is SklearnObjective


@overload(batch_loss)
def _batch_loss(A, Y, sw, objective):
    if _is_sklearn(objective):
        return lambda A, Y, sw, objective: sk_loss_sum(A, Y, sw, objective.metric_code, objective.clip_eps)
    return lambda A, Y, sw, objective: loss_sum(A, Y, sw, objective.metric_code, objective.clip_eps)


@overload(batch_delta)
def _batch_delta(A, Y, sw, objective, out_code, scale, D):
    if not _is_sklearn(objective):
        return lambda A, Y, sw, objective, out_code, scale, D: output_delta(A, Y, sw, objective.loss_code, out_code,
                                                                            scale, D)

    def sklearn_delta(A, Y, sw, objective, out_code, scale, D):
        sk_output_delta(A, Y, sw, D)
        if scale != 1.0:
            c = cast_like(scale, D)
            for i in range(D.shape[0]):
                for j in range(D.shape[1]):
                    D[i, j] *= c

    return sklearn_delta
