"""A whole training epoch as one compiled call: gather, forward (with dropout), loss,
backward, update; and the evaluation of a held-out set.

Dropout masks come from a counter-based generator: element c of the stream is
``random_bits(key, c)`` (splitmix64's finaliser of key + c * golden ratio), so the
masks depend only on (key, counter), need no state besides the counter, and
``fastnn.reference`` rebuilds the same stream with NumPy's uint64 arithmetic. A unit is
kept when the top 32 bits of its number are >= ``threshold`` = round(p * 2^32)
(p the dropout rate); kept units are scaled by 2^32 / (2^32 - threshold) = 1 / (1 - p).
Each hidden layer of each batch takes n * d consecutive counters (row-major), whether
its rate is 0 or not, so one layer's rate does not shift another layer's masks.
"""
import numpy as np

from ._jit import cast_like, jit
from .activations import derivative_from_output
from .codes import IDENTITY
from .dense import dense_backward, dense_forward
from .losses import NO_ACCURACY, count_correct, loss_sum, output_delta
from .network import activation_offset, forward_layers, layer_params, loss_and_gradient, penalised_mean, view2d
from .optimizers import step

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S27, _S30, _S31, _S32 = np.uint64(27), np.uint64(30), np.uint64(31), np.uint64(32)
TWO_32 = 4294967296.0


@jit
def gather_rows(src, idx, start, dst):
    """dst[r] <- src[idx[start + r]] for each row r of dst. src (N, d), dst (n, d)."""
    n, d = dst.shape
    for r in range(n):
        i = idx[start + r]
        for j in range(d):
            dst[r, j] = src[i, j]


@jit(inline="always")
def gather_batch(X, Y, idx, start, n, Xb, Yb):
    """Rows idx[start:start + n] of X and Y, gathered into (n, d_0), (n, d_L) views of the
    scratch buffers Xb, Yb; returns the two views."""
    Xv = view2d(Xb, 0, n, X.shape[1])
    Yv = view2d(Yb, 0, n, Y.shape[1])
    gather_rows(X, idx, start, Xv)
    gather_rows(Y, idx, start, Yv)
    return Xv, Yv


# -- dropout --------------------------------------------------------------------------------
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
    Af, Gf = A.ravel(), G.ravel()
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
                dense_backward(A_prev, W, D, l2, dW, db, D_prev, IDENTITY, alpha)  # D_prev = D W^T
                Df, Gf = D_prev.ravel(), view2d(gates, prev_off, n, sizes[layer]).ravel()
                for i in range(Df.size):
                    Df[i] = Df[i] * Gf[i]
            else:
                dense_backward(A_prev, W, D, l2, dW, db, D_prev, act_codes[layer - 1], alpha)
        else:
            dense_backward(X, W, D, l2, dW, db, view2d(deltas, 0, 0, 0), act_codes[0], alpha)


# -- epochs ---------------------------------------------------------------------------------
@jit
def fit_epoch(
    X, Y, idx, batch_size,
    sizes, act_codes, alpha, loss_code, metric_code, acc_kind, clip_eps,
    theta, grad, m, v, opt_code, lr, mu, beta1, beta2, adam_eps, t, l2, l2_batch, weight_decay,
    thresholds, key, counter,
    Xb, Yb, acts, deltas, gates,
):
    """One epoch of minibatch training over the rows ``idx`` of (X, Y), in that order.

    X (N, d_0), Y (N, d_L); idx (N',) int64 row order (a permutation, or a subset);
    batches of ``batch_size`` rows, the last one possibly partial.
    theta, grad, m, v (p,): parameters, gradient scratch, optimizer state (m, v are
    modified in place). ``t`` is the number of updates done before this epoch.
    Each batch's weight gradients get (l2 + l2_batch / n) W added, and its loss the
    matching 0.5 (l2 + l2_batch / n) sum(W^2). A ``weight_decay`` adds decoupled
    decay lr wd W to each update (weights only; AdamW for Adam).
    thresholds (L - 1,) int64 dropout thresholds of the hidden layers (see the module
    docstring), or None for no dropout; key, counter (uint64) the mask stream and its
    position. ``weight_decay`` is None for none. Numba prunes the branches on these
    Nones at compile time, so an epoch without dropout or decoupled decay never
    compiles their code (about half of a cold compile).
    Xb (>= batch_size * d_0,), Yb (>= batch_size * d_L,), acts and deltas
    (>= batch_size * sum(d_1..d_L),) are scratch; gates (>= batch_size *
    sum(d_1..d_{L-1}),) too, only read with dropout (may be empty otherwise).

    Returns (mean loss over the epoch's samples, as measured by ``metric_code``
    before each batch's update; the number of correct predictions of ``acc_kind``,
    counted on the same outputs; the new update count t; the new counter).
    """
    N = idx.size
    L = sizes.size - 1
    k = sizes[L]
    total = 0.0
    correct = 0.0
    for start in range(0, N, batch_size):
        n = min(batch_size, N - start)
        Xv, Yv = gather_batch(X, Y, idx, start, n, Xb, Yb)
        if thresholds is not None:
            A_out, counter = forward_dropout(Xv, theta, sizes, act_codes, alpha, thresholds, key, counter, acts, gates)
        else:
            A_out = forward_layers(Xv, theta, sizes, act_codes, alpha, acts)
        c = l2 + l2_batch / n
        total += penalised_mean(loss_sum(A_out, Yv, metric_code, clip_eps), n, c, theta, sizes) * n
        if acc_kind != NO_ACCURACY:
            correct += count_correct(A_out, Yv, acc_kind)
        if thresholds is not None:
            D_out = view2d(deltas, activation_offset(sizes, L - 1, n), n, k)
            output_delta(A_out, Yv, loss_code, act_codes[L - 1], 1.0 / n, D_out)
            backward_dropout(Xv, theta, sizes, act_codes, alpha, thresholds, acts, deltas, gates, c, grad)
        else:
            loss_and_gradient(Xv, Yv, theta, sizes, act_codes, alpha, loss_code, c, acts, deltas, grad)
        t += 1
        step(opt_code, theta, grad, m, v, lr, mu, beta1, beta2, adam_eps, t, weight_decay, sizes)
    return total / N, correct, t, counter


@jit
def train_epoch(
    X, Y, idx, batch_size,
    sizes, act_codes, alpha, loss_code, metric_code, clip_eps,
    theta, grad, m, v, opt_code, lr, mu, beta1, beta2, adam_eps, t, l2, l2_batch,
    Xb, Yb, acts, deltas,
):
    """``fit_epoch`` without dropout, decoupled decay or accuracy (the tutorial's epoch).

    Returns (mean loss over the epoch's samples, as measured by ``metric_code``
    before each batch's update, and the new update count t).
    """
    loss, _, t, _ = fit_epoch(
        X, Y, idx, batch_size, sizes, act_codes, alpha, loss_code, metric_code, NO_ACCURACY, clip_eps,
        theta, grad, m, v, opt_code, lr, mu, beta1, beta2, adam_eps, t, l2, l2_batch, None,
        None, np.uint64(0), np.uint64(0), Xb, Yb, acts, deltas, deltas[:0],
    )
    return loss, t


@jit
def evaluate(X, Y, idx, chunk, sizes, act_codes, alpha, metric_code, acc_kind, clip_eps, theta, Xb, Yb, acts):
    """Mean loss (``metric_code``, no penalty) and correct count (``acc_kind``) of the
    network on rows ``idx`` of (X, Y), ``chunk`` rows at a time; no dropout.
    Xb, Yb, acts: scratch for ``chunk`` rows, as for ``fit_epoch``."""
    N = idx.size
    total = 0.0
    correct = 0.0
    for start in range(0, N, chunk):
        n = min(chunk, N - start)
        Xv, Yv = gather_batch(X, Y, idx, start, n, Xb, Yb)
        A = forward_layers(Xv, theta, sizes, act_codes, alpha, acts)
        total += loss_sum(A, Yv, metric_code, clip_eps)
        if acc_kind != NO_ACCURACY:
            correct += count_correct(A, Yv, acc_kind)
    return total / N, correct
