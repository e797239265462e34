"""Loss values and the output-layer delta dL/dZ, for each loss x output activation.

Conventions (the loss is a mean over the n samples of the batch; k outputs):
    MSE                       L = 1/(n k) sum (A - Y)^2
    LOG_LOSS                  L = -1/(n k) sum Y log A + (1 - Y) log(1 - A)
    CATEGORICAL_CROSSENTROPY  L = -1/n sum Y log A
Logs take A clipped to [eps, 1 - eps] so that log(0) never happens.
"""
import numpy as np

from ._jit import jit
from .codes import CATEGORICAL_CROSSENTROPY, LOG_LOSS, MSE, SIGMOID, SOFTMAX


@jit
def loss_sum(A, Y, code, eps):
    """Sum over the batch of the per-sample loss (divide by n for the mean). A, Y (n, k)."""
    n, k = A.shape
    total = 0.0
    if code == MSE:
        for i in range(n):
            for j in range(k):
                r = A[i, j] - Y[i, j]
                total += r * r
        return total / k
    if code == LOG_LOSS:
        for i in range(n):
            for j in range(k):
                a = min(max(A[i, j], eps), 1.0 - eps)
                total -= Y[i, j] * np.log(a) + (1.0 - Y[i, j]) * np.log(1.0 - a)
        return total / k
    # CATEGORICAL_CROSSENTROPY
    for i in range(n):
        for j in range(k):
            if Y[i, j] != 0:
                total -= Y[i, j] * np.log(min(max(A[i, j], eps), 1.0 - eps))
    return total


@jit
def output_delta(A, Y, loss_code, out_code, scale, D):
    """D <- scale * dL/dZ of the output layer, where ``scale`` is 1/n of the batch.

    A (n, k) output activations, Y (n, k) targets, D (n, k) written.
    """
    n, k = A.shape
    if (loss_code == LOG_LOSS and out_code == SIGMOID) or (
        loss_code == CATEGORICAL_CROSSENTROPY and out_code == SOFTMAX
    ):
        # dL/dZ = A - Y holds exactly for sigmoid + binary cross-entropy and for
        # softmax + categorical cross-entropy (per sample; LOG_LOSS also averages over k).
        c = scale / k if loss_code == LOG_LOSS else scale
        for i in range(n):
            for j in range(k):
                D[i, j] = c * (A[i, j] - Y[i, j])
        return
    # General case: g = dL/dA per sample, then the output activation's Jacobian.
    # The API allows only MSE here (LOG_LOSS needs sigmoid, CCE needs softmax).
    c = 2.0 * scale / k
    for i in range(n):
        for j in range(k):
            D[i, j] = c * (A[i, j] - Y[i, j])
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
