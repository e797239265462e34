"""scikit-learn's MLP training as compiled calls: one minibatch epoch, one full-batch
loss + gradient (for L-BFGS). The layers, backward pass and optimizer updates are the
shared kernels; only scikit-learn's conventions live here:

- losses and the output delta of ``losses.sk_loss_sum`` / ``losses.sk_output_delta``,
  with optional sample weights w;
- gradients (A^T delta + alpha W) / sum(w) and sum(delta) / sum(w): the full-batch
  call divides after the backward pass, as scikit-learn does; the minibatch loop
  scales the output delta by 1 / sum(w) and the L2 term by alpha / sum(w) instead
  (the same numbers to the last bits, and no extra pass over the gradient per batch);
- the batch loss L + 0.5 alpha sum(W^2) / sum(w), accumulated over an epoch as
  sum(batch loss x batch rows) / rows.

Dropout (a fastnn extension) is ``epoch.forward_dropout`` / ``epoch.backward_dropout``
with the mask stream of ``fastnn.kernels.epoch``: ``thresholds`` (L - 1,) int64 and the
stream's (key, counter), or None thresholds for none. Numba prunes the
``thresholds is not None`` branches at compile time, so without dropout the compiled
code is the plain forward/backward pass (scikit-learn's trajectory, bit for bit).

Inputs are dense (X (N, d_0)) or CSR (data, indices, indptr, gathered per batch so the
whole matrix is never densified). ``indptr.size > 0`` selects CSR; pass a (0, 0) X then,
and empty data/indices/indptr for dense input.
"""
import numpy as np

from ._jit import cast_like, jit
from .epoch import backward_dropout, forward_dropout, gather_rows
from .losses import sk_loss_sum, sk_output_delta
from .network import activation_offset, backward_layers, forward_layers, layer_params, sum_squares_weights, view2d
from .optimizers import update


@jit
def gather_X(X, data, indices, indptr, idx, start, dst):
    """dst[r] <- row idx[start + r] of the dense X or of the CSR matrix. dst (n, d) written."""
    if indptr.size == 0:
        gather_rows(X, idx, start, dst)
        return
    n, d = dst.shape
    for r in range(n):
        i = idx[start + r]
        for j in range(d):
            dst[r, j] = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            dst[r, indices[p]] += data[p]  # += : duplicate entries sum, as in the matrix


@jit
def _gather_weights(sw, idx, start, n, swb):
    """swb[r] <- sw[idx[start + r]] for r < n; returns their sum (n when sw is empty: unit weights)."""
    if sw.size == 0:
        return float(n)
    s = 0.0
    for r in range(n):
        swb[r] = sw[idx[start + r]]
        s += swb[r]
    return s


@jit(inline="always")
def _gather_batch(X, data, indices, indptr, Y, sw, idx, start, n, d0, Xb, Yb, swb):
    """Rows idx[start:start + n] of X (dense or CSR), Y and the sample weights, gathered
    into views of the scratch buffers. Returns (Xv, Yv, swv, the weights' sum)."""
    Xv = view2d(Xb, 0, n, d0)
    Yv = view2d(Yb, 0, n, Y.shape[1])
    swv = swb[:n] if sw.size > 0 else swb[:0]
    gather_X(X, data, indices, indptr, idx, start, Xv)
    gather_rows(Y, idx, start, Yv)
    return Xv, Yv, swv, _gather_weights(sw, idx, start, n, swv)


@jit
def _batch_loss_grad(Xv, Yv, swv, theta, sizes, act_codes, act_alpha, loss_code, clip_eps, l2,
                     scale, thresholds, key, counter, acts, deltas, gates, grad):
    """Forward + backward of one batch. Returns (the batch's sum of losses (unnormalised),
    the mask stream's new counter) and writes grad = scale A^T delta + l2 W and the
    intercepts' scale * column sums. With ``thresholds`` (not None) the hidden layers
    are dropped out, masks from (key, counter); gates is their scratch.

    ``scale`` multiplies the output delta before the backward pass: 1 / sum(w) there
    spares the minibatch loop a pass over the whole gradient (scikit-learn divides
    after the backward pass; the two differ in the last bits only)."""
    n = Xv.shape[0]
    L = sizes.size - 1
    if thresholds is not None:
        A_out, counter = forward_dropout(Xv, theta, sizes, act_codes, act_alpha, thresholds, key, counter, acts, gates)
    else:
        A_out = forward_layers(Xv, theta, sizes, act_codes, act_alpha, acts)
    loss = sk_loss_sum(A_out, Yv, swv, loss_code, clip_eps)
    D_out = view2d(deltas, activation_offset(sizes, L - 1, n), n, sizes[L])
    sk_output_delta(A_out, Yv, swv, D_out)
    if scale != 1.0:
        c = cast_like(scale, D_out)
        for i in range(n):
            for j in range(D_out.shape[1]):
                D_out[i, j] *= c
    if thresholds is not None:
        backward_dropout(Xv, theta, sizes, act_codes, act_alpha, thresholds, acts, deltas, gates, l2, grad)
    else:
        backward_layers(Xv, theta, sizes, act_codes, act_alpha, acts, deltas, l2, grad)
    return loss, counter


@jit
def sk_train_epoch(
    X, data, indices, indptr, Y, sw, idx, batch_size,
    sizes, act_codes, act_alpha, loss_code, clip_eps,
    theta, grad, m, v, opt_code, lr, mu, beta1, beta2, adam_eps, t, l2,
    thresholds, key, counter,
    Xb, Yb, swb, acts, deltas, gates,
):
    """One epoch of scikit-learn's minibatch training over rows ``idx`` (in that order).

    X (N, d_0) or CSR (data, indices, indptr); Y (N, d_L); sw (N,) sample weights or
    empty; idx (N',) int64; ``batch_size`` rows per update, the last batch possibly
    partial. theta, grad (p,), m, v optimizer state (modified in place), ``t`` updates
    done before this epoch, ``l2`` scikit-learn's alpha. ``thresholds`` (L - 1,) int64
    dropout thresholds of the hidden layers, or None for no dropout; key, counter
    (uint64) the mask stream and its position. Xb, Yb, swb, acts, deltas are scratch
    (>= batch_size rows); gates (>= batch_size * sum(d_1..d_{L-1}),) too, only read
    with dropout (may be empty otherwise). Returns (mean batch loss weighted by batch
    rows, measured on the dropped network; new t; new counter).
    """
    N = idx.size
    d0 = sizes[0]
    total = 0.0
    for start in range(0, N, batch_size):
        n = min(batch_size, N - start)
        Xv, Yv, swv, sw_sum = _gather_batch(X, data, indices, indptr, Y, sw, idx, start, n, d0, Xb, Yb, swb)
        # The gradient comes out divided by sum(w): (A^T delta + l2 W) / sum(w).
        batch_loss, counter = _batch_loss_grad(Xv, Yv, swv, theta, sizes, act_codes, act_alpha, loss_code,
                                               clip_eps, l2 / sw_sum, 1.0 / sw_sum, thresholds, key, counter,
                                               acts, deltas, gates, grad)
        batch_loss /= sw_sum
        if l2 != 0.0:  # the weights before this batch's update, as scikit-learn takes them
            batch_loss += 0.5 * l2 * sum_squares_weights(theta, sizes) / sw_sum
        total += batch_loss * n
        t += 1
        update(opt_code, theta, grad, m, v, lr, mu, beta1, beta2, adam_eps, t)
    return total / N, t, counter


@jit
def sk_loss_grad(
    X, data, indices, indptr, Y, sw, idx, chunk,
    sizes, act_codes, act_alpha, loss_code, clip_eps, theta, l2,
    Xb, Yb, swb, acts, deltas, gchunk, grad,
):
    """scikit-learn's full-batch loss and gradient over rows ``idx``, ``chunk`` rows at a
    time (scratch sized for ``chunk``). grad (p,) written; gchunk (p,) scratch. Returns the loss."""
    N = idx.size
    L = sizes.size - 1
    d0 = sizes[0]
    for i in range(grad.size):
        grad[i] = 0.0
    total = 0.0
    sw_sum = 0.0
    for start in range(0, N, chunk):
        n = min(chunk, N - start)
        Xv, Yv, swv, w_sum = _gather_batch(X, data, indices, indptr, Y, sw, idx, start, n, d0, Xb, Yb, swb)
        sw_sum += w_sum
        loss, _ = _batch_loss_grad(Xv, Yv, swv, theta, sizes, act_codes, act_alpha, loss_code, clip_eps,
                                   0.0, 1.0, None, np.uint64(0), np.uint64(0), acts, deltas, deltas[:0], gchunk)
        total += loss
        for i in range(grad.size):
            grad[i] += gchunk[i]
    # The L2 term once, on the summed gradient: (A^T delta + alpha W) / sum(w).
    if l2 != 0.0:
        for layer in range(L):
            W, _ = layer_params(theta, sizes, layer)
            dW, _ = layer_params(grad, sizes, layer)
            d_in, d_out = W.shape
            for a in range(d_in):
                for b in range(d_out):
                    dW[a, b] += l2 * W[a, b]
    for i in range(grad.size):
        grad[i] = grad[i] / sw_sum
    loss = total / sw_sum
    if l2 != 0.0:
        loss += 0.5 * l2 * sum_squares_weights(theta, sizes) / sw_sum
    return loss
