"""Activations fused with the bias add, and their derivatives taken from the outputs.

Every derivative here is written in terms of the activation's *output* A, so the
pre-activation Z never needs storing (sigmoid: A(1-A); tanh: 1-A^2; ELU: A+alpha
for A <= 0, since A = alpha(e^Z - 1) there).
"""
import numpy as np

from ._jit import jit
from .codes import ELU, IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTMAX, TANH


@jit
def _sigmoid(z):
    # Two branches so that exp never overflows: exp of a non-positive number only.
    if z >= 0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@jit
def bias_activation(Z, b, code, alpha):
    """Z <- f(Z + b) in place. Z (n, d), b (d,); ``alpha`` for leaky ReLU and ELU."""
    n, d = Z.shape
    # One loop nest per activation keeps the branch out of the inner loop.
    if code == IDENTITY:
        for i in range(n):
            for j in range(d):
                Z[i, j] = Z[i, j] + b[j]
    elif code == SIGMOID:
        for i in range(n):
            for j in range(d):
                Z[i, j] = _sigmoid(Z[i, j] + b[j])
    elif code == TANH:
        for i in range(n):
            for j in range(d):
                Z[i, j] = np.tanh(Z[i, j] + b[j])
    elif code == RELU:
        for i in range(n):
            for j in range(d):
                Z[i, j] = max(Z[i, j] + b[j], 0.0)
    elif code == LEAKY_RELU:
        for i in range(n):
            for j in range(d):
                z = Z[i, j] + b[j]
                Z[i, j] = z if z > 0 else alpha * z
    elif code == ELU:
        for i in range(n):
            for j in range(d):
                z = Z[i, j] + b[j]
                Z[i, j] = z if z > 0 else alpha * np.expm1(z)
    elif code == SOFTMAX:
        for i in range(n):
            zmax = -np.inf
            for j in range(d):
                Z[i, j] = Z[i, j] + b[j]
                zmax = max(zmax, Z[i, j])
            # Subtracting the row maximum keeps exp <= 1: no overflow for any logits.
            s = 0.0
            for j in range(d):
                Z[i, j] = np.exp(Z[i, j] - zmax)
                s += Z[i, j]
            inv = 1.0 / s
            for j in range(d):
                Z[i, j] = Z[i, j] * inv


@jit
def multiply_derivative(D, A, code, alpha):
    """D <- D * f'(Z) in place, with f' computed from the output A = f(Z).

    D, A (n, d). Not for softmax, whose Jacobian is not diagonal (see losses).
    """
    n, d = D.shape
    if code == SIGMOID:
        for i in range(n):
            for j in range(d):
                D[i, j] = D[i, j] * (A[i, j] * (1.0 - A[i, j]))
    elif code == TANH:
        for i in range(n):
            for j in range(d):
                D[i, j] = D[i, j] * (1.0 - A[i, j] * A[i, j])
    elif code == RELU:
        for i in range(n):
            for j in range(d):
                D[i, j] = D[i, j] if A[i, j] > 0 else 0.0
    elif code == LEAKY_RELU:
        for i in range(n):
            for j in range(d):
                D[i, j] = D[i, j] if A[i, j] > 0 else D[i, j] * alpha
    elif code == ELU:
        for i in range(n):
            for j in range(d):
                D[i, j] = D[i, j] if A[i, j] > 0 else D[i, j] * (A[i, j] + alpha)
    # IDENTITY: derivative 1, nothing to do.
