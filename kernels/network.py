"""Whole-network passes over the flat buffers.

A network of L layers is ``sizes`` (L + 1,) int64: d_0 inputs, ..., d_L outputs.
Parameters live in one flat buffer ``theta``: W_0 (d_0, d_1) row-major, b_0 (d_1,),
W_1, b_1, ... (the gradient buffer has the same layout). Per-batch activations and
deltas live in flat work buffers, layer after layer, packed for the current batch
of n rows: layer l occupies [n S_l, n S_{l+1}) with S_l = d_1 + ... + d_l.
Views come from ``views.view2d``: C-contiguous, for BLAS.

The tiny helpers are inlined into their callers (IR inlining); the two passes are
functions of their own, compiled once and called from every epoch, evaluation and
prediction kernel: inlined, each of those paid for compiling them again (a cold
full-batch fit took twice as long).
"""
import numpy as np

from ._jit import jit
from .blas import dot
from .dense import dense_backward, dense_forward
from .views import view2d


@jit(inline="always")
def param_offset(sizes, layer):
    """Offset of W_layer in the flat parameter buffer."""
    off = 0
    for j in range(layer):
        off += sizes[j] * sizes[j + 1] + sizes[j + 1]
    return off


@jit(inline="always")
def layer_params(theta, sizes, layer):
    """Views (W (d_in, d_out), b (d_out,)) of one layer in ``theta`` (or a gradient buffer)."""
    d_in, d_out = sizes[layer], sizes[layer + 1]
    off = param_offset(sizes, layer)
    W = view2d(theta, off, d_in, d_out)
    b = theta[off + d_in * d_out : off + d_in * d_out + d_out]
    return W, b


@jit(inline="always")
def activation_offset(sizes, layer, n):
    """Offset of layer ``layer``'s (n, d_{layer+1}) block in a packed work buffer."""
    off = 0
    for j in range(layer):
        off += n * sizes[j + 1]
    return off


@jit
def forward_layers(X, theta, sizes, act_codes, alpha, acts):
    """Forward pass of a batch. X (n, d_0); acts (>= n * sum(d_1..d_L),) written.

    ``act_codes`` (L,) holds each layer's activation code (the last one the output's).
    Returns the output activations, a (n, d_L) view into ``acts``.
    """
    n = X.shape[0]
    L = sizes.size - 1
    A_prev = X
    off = 0
    for layer in range(L):
        W, b = layer_params(theta, sizes, layer)
        A = view2d(acts, off, n, sizes[layer + 1])
        dense_forward(A_prev, W, b, act_codes[layer], alpha, A)
        off += n * sizes[layer + 1]
        A_prev = A
    return A_prev


@jit
def backward_layers(X, theta, sizes, act_codes, alpha, acts, deltas, l2, grad):
    """Backward pass of a batch whose output delta is already in ``deltas``.

    X (n, d_0) the batch; acts as left by ``forward_layers``; deltas packed like acts,
    the last layer's block holding dL/dZ_L. Writes every block of ``grad`` (p,) and
    the hidden layers' deltas. ``l2`` adds l2 * W to each weight gradient.
    """
    n = X.shape[0]
    L = sizes.size - 1
    for layer in range(L - 1, -1, -1):
        W, _ = layer_params(theta, sizes, layer)
        dW, db = layer_params(grad, sizes, layer)
        d_out = sizes[layer + 1]
        D = view2d(deltas, activation_offset(sizes, layer, n), n, d_out)
        if layer > 0:
            prev_off = activation_offset(sizes, layer - 1, n)
            A_prev = view2d(acts, prev_off, n, sizes[layer])
            D_prev = view2d(deltas, prev_off, n, sizes[layer])
            dense_backward(A_prev, W, D, l2, dW, db, D_prev, act_codes[layer - 1], alpha)
        else:
            # The first layer needs no input delta: an empty D_prev says so (its code is
            # then unused; a variable, as a literal 0 compiled multiply_derivative again).
            dense_backward(X, W, D, l2, dW, db, view2d(deltas, 0, 0, 0), act_codes[0], alpha)


@jit
def sum_squares_weights(theta, sizes):
    """sum over layers of sum(W^2) (biases excluded): the L2 penalty's sum.

    One BLAS dot product per layer (as scikit-learn takes it): vectorised, where a
    strict left-to-right float sum is not (5x slower per 784-1024-1024-10 batch)."""
    total = 0.0
    off = 0
    for layer in range(sizes.size - 1):
        nw = sizes[layer] * sizes[layer + 1]
        w = theta[off : off + nw]
        total += dot(w, w)
        off += nw + sizes[layer + 1]
    return total


@jit
def predict(X, theta, sizes, act_codes, alpha, chunk, acts, out):
    """out <- network output for X (N, d_0), ``chunk`` rows at a time.

    acts (>= chunk * sum(d_1..d_L),) is scratch; out (N, d_L) written.
    """
    N = X.shape[0]
    k = sizes[sizes.size - 1]
    for start in range(0, N, chunk):
        stop = min(start + chunk, N)
        A = forward_layers(X[start:stop], theta, sizes, act_codes, alpha, acts)
        for i in range(stop - start):
            for j in range(k):
                out[start + i, j] = A[i, j]


@jit
def all_finite(a):
    """True when every element of the 1-D array ``a`` is finite."""
    for x in a:
        if not np.isfinite(x):
            return False
    return True
