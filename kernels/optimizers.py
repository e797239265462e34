"""Parameter updates over the flat buffers, in order of increasing complexity.

The update rules are scikit-learn's (so its estimators can share them):
    SGD       theta -= lr g
    MOMENTUM  v = mu v - lr g;  theta += v
    NESTEROV  v = mu v - lr g;  theta += mu v - lr g
    ADAM      m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
              theta -= lr_t m / (sqrt(v) + eps), lr_t = lr sqrt(1-b2^t) / (1-b1^t)

Decoupled weight decay (Loshchilov & Hutter; AdamW for Adam) adds ``- lr wd theta``
(the theta before the step) to each rule, on the weights only: ``update_decoupled``
walks the layers so that biases are not decayed. The rules with decay are separate
functions, so that ``update`` compiles exactly as without them (same rounding).

State that decays geometrically (a dead unit's gradient is 0) reaches subnormal
numbers after a few hundred steps, and arithmetic on subnormals is about a hundred
times slower (docs/performance.md has an Adam step's cost with them). So
m and v are flushed to 0 below the dtype's smallest normal number (an absolute
change under 1.2e-38 in float32), here and in fastnn.reference alike.
"""
import numpy as np

from ._jit import cast_like, jit, tiny_like
from .vmath import flush
from .codes import ADAM, MOMENTUM, NESTEROV, SGD


@jit
def sgd_update(theta, g, lr):
    lr = cast_like(lr, theta)
    for i in range(theta.size):
        theta[i] -= lr * g[i]


@jit
def momentum_update(theta, g, v, lr, mu, nesterov):
    lr, mu = cast_like(lr, theta), cast_like(mu, theta)
    tiny = tiny_like(theta)
    if nesterov:
        for i in range(theta.size):
            v[i] = flush(mu * v[i] - lr * g[i], tiny)
            theta[i] += mu * v[i] - lr * g[i]
    else:
        for i in range(theta.size):
            v[i] = flush(mu * v[i] - lr * g[i], tiny)
            theta[i] += v[i]


@jit
def adam_update(theta, g, m, v, lr, beta1, beta2, eps, t):
    # Bias correction folded into the step size (t counts updates, from 1).
    lr_t = cast_like(lr * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t), theta)
    b1, c1 = cast_like(beta1, theta), cast_like(1.0 - beta1, theta)
    b2, c2 = cast_like(beta2, theta), cast_like(1.0 - beta2, theta)
    eps = cast_like(eps, theta)
    tiny = tiny_like(theta)
    for i in range(theta.size):
        m[i] = flush(b1 * m[i] + c1 * g[i], tiny)
        v[i] = flush(b2 * v[i] + c2 * (g[i] * g[i]), tiny)
        theta[i] -= lr_t * m[i] / (np.sqrt(v[i]) + eps)


# ``update`` and ``step`` only pick a rule: inlined into their callers, they add no
# compiled library of their own (each held another copy of every rule).
@jit(inline="always")
def update(code, theta, g, m, v, lr, mu, beta1, beta2, eps, t):
    """One step of optimizer ``code`` (codes.SGD...ADAM). theta, g, m, v (p,); t >= 1.

    theta and the state buffers m, v are modified in place; m is the velocity
    for MOMENTUM/NESTEROV, unused (may be empty) for SGD.
    """
    if code == SGD:
        sgd_update(theta, g, lr)
    elif code == MOMENTUM or code == NESTEROV:
        # One call with a run-time flag: literal True/False compiled the rule twice.
        momentum_update(theta, g, m, lr, mu, code == NESTEROV)
    elif code == ADAM:
        adam_update(theta, g, m, v, lr, beta1, beta2, eps, t)


# -- with decoupled weight decay: theta -= (usual step) + lrwd theta, lrwd = lr wd ----------
@jit
def sgd_update_decayed(theta, g, lr, lrwd):
    lr, lrwd = cast_like(lr, theta), cast_like(lrwd, theta)
    for i in range(theta.size):
        theta[i] -= lr * g[i] + lrwd * theta[i]


@jit
def momentum_update_decayed(theta, g, v, lr, mu, nesterov, lrwd):
    lr, mu, lrwd = cast_like(lr, theta), cast_like(mu, theta), cast_like(lrwd, theta)
    tiny = tiny_like(theta)
    for i in range(theta.size):
        decay = lrwd * theta[i]
        v[i] = flush(mu * v[i] - lr * g[i], tiny)
        theta[i] += (mu * v[i] - lr * g[i] if nesterov else v[i]) - decay


@jit
def adam_update_decayed(theta, g, m, v, lr, beta1, beta2, eps, t, lrwd):
    lr_t = cast_like(lr * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t), theta)
    b1, c1 = cast_like(beta1, theta), cast_like(1.0 - beta1, theta)
    b2, c2 = cast_like(beta2, theta), cast_like(1.0 - beta2, theta)
    eps, lrwd = cast_like(eps, theta), cast_like(lrwd, theta)
    tiny = tiny_like(theta)
    for i in range(theta.size):
        m[i] = flush(b1 * m[i] + c1 * g[i], tiny)
        v[i] = flush(b2 * v[i] + c2 * (g[i] * g[i]), tiny)
        theta[i] -= lr_t * m[i] / (np.sqrt(v[i]) + eps) + lrwd * theta[i]


@jit
def _decayed_step(code, theta, g, m, v, lr, mu, beta1, beta2, eps, t, lrwd):
    if code == SGD:
        sgd_update_decayed(theta, g, lr, lrwd)
    elif code == MOMENTUM or code == NESTEROV:
        momentum_update_decayed(theta, g, m, lr, mu, code == NESTEROV, lrwd)
    elif code == ADAM:
        adam_update_decayed(theta, g, m, v, lr, beta1, beta2, eps, t, lrwd)


@jit
def update_decoupled(code, theta, g, m, v, lr, mu, beta1, beta2, eps, t, weight_decay, sizes):
    """``update`` plus decoupled weight decay ``theta -= lr wd theta`` on the weights only.

    sizes (L + 1,) the layer sizes (the layout of theta: W_0, b_0, W_1, ...): each
    layer's W block takes the decayed rule, its b block the plain one (fused loops both).
    m (and v for Adam) have theta's layout; v may be empty for the SGD family.
    """
    lrwd = lr * weight_decay
    off = 0
    for layer in range(sizes.size - 1):
        nw, nb = sizes[layer] * sizes[layer + 1], sizes[layer + 1]
        w, b = off + nw, off + nw + nb
        mw, mb = (m[off:w], m[w:b]) if m.size > 0 else (m, m)
        vw, vb = (v[off:w], v[w:b]) if v.size > 0 else (v, v)
        _decayed_step(code, theta[off:w], g[off:w], mw, vw, lr, mu, beta1, beta2, eps, t, lrwd)
        update(code, theta[w:b], g[w:b], mb, vb, lr, mu, beta1, beta2, eps, t)
        off = b


@jit(inline="always")
def step(code, theta, g, m, v, lr, mu, beta1, beta2, eps, t, weight_decay, sizes):
    """``update``, or ``update_decoupled`` when ``weight_decay`` is not None (None
    prunes the decayed rules from the caller's compilation)."""
    if weight_decay is not None:
        update_decoupled(code, theta, g, m, v, lr, mu, beta1, beta2, eps, t, weight_decay, sizes)
    else:
        update(code, theta, g, m, v, lr, mu, beta1, beta2, eps, t)
