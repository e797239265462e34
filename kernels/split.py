"""A full batch's gradient on two cores at once: each core takes half of the rows.

For small layers OpenBLAS's own threads barely help (the tutorial's 1437 x 64 x 64
GEMMs: 650 us of an epoch's GEMMs on one thread, 480 on two) and every element-wise
pass stays on one core. Splitting the batch instead gives each core whole GEMMs of
half the rows, on a single-threaded BLAS, and half of the element-wise work; the
two partial gradients are then added. Measured on the tutorial's epoch: 1140 -> 620 us.

The caller makes BLAS single-threaded meanwhile (``fastnn.threads.serial_blas``):
two cores each calling a two-thread OpenBLAS made that epoch 18 ms.
Each call opens one parallel region, for which Numba allocates a few small blocks,
so the engine uses this for full-batch epochs only (one region per epoch), never
per minibatch.

Results do not depend on timing or on the number of threads: the blocks are fixed
(``PARTS`` of them, the first ones one row longer) and their sums are added in
block order (with two blocks, a + b is exact to commute anyway).
"""
import numba
import numpy as np

from ._jit import jit
from .losses import NO_ACCURACY, count_correct, loss_sum
from .network import forward_layers, predict, scaled_gradient

PARTS = 2


@jit(inline="always")
def block(n, q):
    """Rows [lo, hi) of block q of an n-row batch split into PARTS blocks."""
    h = (n + PARTS - 1) // PARTS
    lo = min(n, q * h)
    return lo, min(n, lo + h)


@jit
def block_scratch(n, sizes):
    """Elements of ``acts`` (or ``deltas``) one block needs; PARTS times this is the total."""
    return (n + PARTS - 1) // PARTS * (sizes[1:].sum())


@jit
def block_loss_and_gradient(X, Y, theta, sizes, act_codes, alpha, loss_code, metric_code, acc_kind, clip_eps,
                            l2, q, acts, deltas, grads):
    """Block q's share of ``split_loss_and_gradient``: grads[q] and its (loss, correct).

    A function of its own, not inlined: Numba's parallel array analysis, run over
    inlined code, asserted shapes that hold only for some batch sizes."""
    n = X.shape[0]
    lo, hi = block(n, q)
    g = grads[q]
    if hi == lo:  # a 1-row batch leaves the second block empty
        for i in range(g.size):
            g[i] = 0.0
        return 0.0, 0.0
    stride = block_scratch(n, sizes)
    Xq, Yq = X[lo:hi], Y[lo:hi]
    a, d = acts[q * stride : (q + 1) * stride], deltas[q * stride : (q + 1) * stride]
    A = forward_layers(Xq, theta, sizes, act_codes, alpha, a)
    total = loss_sum(A, Yq, metric_code, clip_eps)
    correct = count_correct(A, Yq, acc_kind) if acc_kind != NO_ACCURACY else 0.0
    # 1/n of the whole batch; the L2 term once (in block 0).
    scaled_gradient(Xq, Yq, theta, sizes, act_codes, alpha, loss_code, 1.0 / n, l2 if q == 0 else 0.0, a, d, g)
    return total, correct


@numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def split_loss_and_gradient(X, Y, theta, sizes, act_codes, alpha, loss_code, metric_code, acc_kind, clip_eps,
                            l2, acts, deltas, grads, grad):
    """Forward pass, loss, accuracy and gradient of the mean loss of the batch (X, Y),
    (n, d_0) and (n, d_L), as ``network.forward_layers`` + ``loss_and_gradient``.

    acts, deltas (>= PARTS * block_scratch(n, sizes),) scratch; grads (PARTS, p)
    scratch; grad (p,) written with the gradient (``l2`` W added to the weights').
    Returns (sum of the per-sample ``metric_code`` losses, ``acc_kind`` correct count).
    """
    total = 0.0
    correct = 0.0
    for q in numba.prange(PARTS):
        loss_q, correct_q = block_loss_and_gradient(
            X, Y, theta, sizes, act_codes, alpha, loss_code, metric_code, acc_kind, clip_eps, l2, q, acts, deltas,
            grads,
        )
        total += loss_q
        correct += correct_q
    # Explicit loops: an array expression here would be one more parallel region.
    for i in range(grad.size):
        grad[i] = grads[0, i]
    for q in range(1, PARTS):
        for i in range(grad.size):
            grad[i] += grads[q, i]
    return total, correct


@jit
def block_predict(X, theta, sizes, act_codes, alpha, chunk, q, acts, out):
    """Block q's rows of ``split_predict`` (not inlined, as above)."""
    lo, hi = block(X.shape[0], q)
    stride = acts.size // PARTS
    if hi > lo:
        predict(X[lo:hi], theta, sizes, act_codes, alpha, chunk, acts[q * stride : (q + 1) * stride], out[lo:hi])


@numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def split_predict(X, theta, sizes, act_codes, alpha, chunk, acts, out):
    """``network.predict`` with the rows of X split into PARTS blocks, one per core.
    acts (>= PARTS * chunk * sum(d_1..d_L),) scratch; out (N, d_L) written."""
    for q in numba.prange(PARTS):
        block_predict(X, theta, sizes, act_codes, alpha, chunk, q, acts, out)
