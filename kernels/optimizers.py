"""Parameter updates over the flat buffers, in order of increasing complexity.

The update rules are scikit-learn's (so its estimators can share them):
    SGD       theta -= lr g
    MOMENTUM  v = mu v - lr g;  theta += v
    NESTEROV  v = mu v - lr g;  theta += mu v - lr g
    ADAM      m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
              theta -= lr_t m / (sqrt(v) + eps), lr_t = lr sqrt(1-b2^t) / (1-b1^t)
"""
import numpy as np

from ._jit import jit
from .codes import ADAM, MOMENTUM, NESTEROV, SGD


@jit
def sgd_update(theta, g, lr):
    for i in range(theta.size):
        theta[i] -= lr * g[i]


@jit
def momentum_update(theta, g, v, lr, mu, nesterov):
    if nesterov:
        for i in range(theta.size):
            v[i] = mu * v[i] - lr * g[i]
            theta[i] += mu * v[i] - lr * g[i]
    else:
        for i in range(theta.size):
            v[i] = mu * v[i] - lr * g[i]
            theta[i] += v[i]


@jit
def adam_update(theta, g, m, v, lr, beta1, beta2, eps, t):
    # Bias correction folded into the step size (t counts updates, from 1).
    lr_t = lr * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
    for i in range(theta.size):
        m[i] = beta1 * m[i] + (1.0 - beta1) * g[i]
        v[i] = beta2 * v[i] + (1.0 - beta2) * (g[i] * g[i])
        theta[i] -= lr_t * m[i] / (np.sqrt(v[i]) + eps)


@jit
def update(code, theta, g, m, v, lr, mu, beta1, beta2, eps, t):
    """One step of optimizer ``code`` (codes.SGD...ADAM). theta, g, m, v (p,); t >= 1.

    theta and the state buffers m, v are modified in place; m is the velocity
    for MOMENTUM/NESTEROV, unused (may be empty) for SGD.
    """
    if code == SGD:
        sgd_update(theta, g, lr)
    elif code == MOMENTUM:
        momentum_update(theta, g, m, lr, mu, False)
    elif code == NESTEROV:
        momentum_update(theta, g, m, lr, mu, True)
    elif code == ADAM:
        adam_update(theta, g, m, v, lr, beta1, beta2, eps, t)
