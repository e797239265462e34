"""Inverted dropout of the hidden layers, with masks from a counter-based generator.

Element c of the stream is ``random_bits(key, c)`` (splitmix64's finaliser of key + c *
golden ratio), so the masks depend only on (key, counter), need no state besides the
counter, and ``fastnn.reference`` rebuilds the same stream with NumPy's uint64
arithmetic. A unit is kept when the top 32 bits of its number are >= ``threshold`` =
round(p * 2^32) (p the dropout rate); kept units are scaled by 2^32 / (2^32 - threshold)
= 1 / (1 - p). Each hidden layer of each batch takes n * d consecutive counters
(row-major), whether its rate is 0 or not, so one layer's rate does not shift another
layer's masks.
"""
import numpy as np

from ._jit import cast_like, jit
from .activations import derivative_from_output
from .codes import IDENTITY
from .dense import dense_backward, dense_forward
from .network import activation_offset, layer_params
from .views import flat, view2d

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S27, _S30, _S31, _S32 = np.uint64(27), np.uint64(30), np.uint64(31), np.uint64(32)
TWO_32 = 4294967296.0


@jit
def random_bits(key, counter):
    """64 random bits for element ``counter`` of stream ``key`` (both uint64)."""
    z = key + counter * _GOLDEN
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@jit
def dropout_keep(key, counter, threshold, out):
    """out[i] <- 1 if element counter + i of the stream is kept at ``threshold``, else 0.

    The mask the training kernel draws (out (n,) any dtype written); for tests and
    for anyone who wants to see the masks.
    """
    thr = np.uint64(threshold)
    for i in range(out.size):
        out[i] = 1 if (random_bits(key, counter + np.uint64(i)) >> _S32) >= thr else 0


@jit
def dropout_forward(A, G, code, alpha, threshold, key, counter):
    """Inverted dropout of a hidden layer's output, in place.

    A (n, d) holds f(Z) and is overwritten with M * f(Z); G (n, d) is written with
    M * f'(Z), the factor the backward pass needs (f' from the undropped output), where
    M = 2^32 / (2^32 - threshold) on kept units and 0 on dropped ones. Element (i, j)
    uses stream element counter + i d + j.
    """
    n, d = A.shape
    thr = np.uint64(threshold)
    scale = cast_like(TWO_32 / (TWO_32 - threshold), A)
    one, zero, alpha = cast_like(1.0, A), cast_like(0.0, A), cast_like(alpha, A)
    Af, Gf = flat(A), flat(G)
    for i in range(n * d):
        m = scale if (random_bits(key, counter + np.uint64(i)) >> _S32) >= thr else zero
        Gf[i] = m * derivative_from_output(Af[i], code, alpha, one, zero)
        Af[i] = m * Af[i]


@jit
def forward_dropout(X, theta, sizes, act_codes, alpha, thresholds, key, counter, acts, gates):
    """``network.forward_layers`` with dropout after each hidden layer l whose
    thresholds[l] > 0. gates (>= n * sum(d_1..d_{L-1}),) packed like acts, written for
    those layers. Returns (output view, counter advanced by n * sum(d_1..d_{L-1}))."""
    n = X.shape[0]
    L = sizes.size - 1
    A_prev = X
    off = 0
    for layer in range(L):
        W, b = layer_params(theta, sizes, layer)
        d = sizes[layer + 1]
        A = view2d(acts, off, n, d)
        dense_forward(A_prev, W, b, act_codes[layer], alpha, A)
        if layer < L - 1:
            if thresholds[layer] > 0:
                dropout_forward(A, view2d(gates, off, n, d), act_codes[layer], alpha, thresholds[layer], key, counter)
            counter += np.uint64(n * d)
        off += n * d
        A_prev = A
    return A_prev, counter


@jit
def backward_dropout(X, theta, sizes, act_codes, alpha, thresholds, acts, deltas, gates, l2, grad):
    """``network.backward_layers`` after ``forward_dropout``: acts hold the dropped
    outputs (the next layer's inputs, right for dW), and the delta of a dropped layer is
    (D W^T) * gates (= M f'(Z)) instead of (D W^T) * f'(A)."""
    n = X.shape[0]
    L = sizes.size - 1
    for layer in range(L - 1, -1, -1):
        W, _ = layer_params(theta, sizes, layer)
        dW, db = layer_params(grad, sizes, layer)
        D = view2d(deltas, activation_offset(sizes, layer, n), n, sizes[layer + 1])
        if layer > 0:
            prev_off = activation_offset(sizes, layer - 1, n)
            A_prev = view2d(acts, prev_off, n, sizes[layer])
            D_prev = view2d(deltas, prev_off, n, sizes[layer])
            if thresholds[layer - 1] > 0:
                # D_prev = D W^T; np.int64: the constant as a literal compiles a specialization (kernels/_jit.py)
                dense_backward(A_prev, W, D, l2, dW, db, D_prev, np.int64(IDENTITY), alpha)
                Df, Gf = flat(D_prev), flat(view2d(gates, prev_off, n, sizes[layer]))
                for i in range(Df.size):
                    Df[i] = Df[i] * Gf[i]
            else:
                dense_backward(A_prev, W, D, l2, dW, db, D_prev, act_codes[layer - 1], alpha)
        else:
            dense_backward(X, W, D, l2, dW, db, view2d(deltas, 0, 0, 0), act_codes[0], alpha)
