"""A whole training epoch as one compiled call: gather, forward, loss, backward, update."""
from ._jit import jit
from .losses import loss_sum
from .network import forward_layers, loss_and_gradient, sum_squares_weights, view2d
from .optimizers import update


@jit
def gather_rows(src, idx, start, dst):
    """dst[r] <- src[idx[start + r]] for each row r of dst. src (N, d), dst (n, d)."""
    n, d = dst.shape
    for r in range(n):
        i = idx[start + r]
        for j in range(d):
            dst[r, j] = src[i, j]


@jit
def train_epoch(
    X, Y, idx, batch_size,
    sizes, act_codes, alpha, loss_code, metric_code, clip_eps,
    theta, grad, m, v, opt_code, lr, mu, beta1, beta2, adam_eps, t, l2, l2_batch,
    Xb, Yb, acts, deltas,
):
    """One epoch of minibatch training over the rows ``idx`` of (X, Y), in that order.

    X (N, d_0), Y (N, d_L); idx (N',) int64 row order (a permutation, or a subset);
    batches of ``batch_size`` rows, the last one possibly partial.
    theta, grad, m, v (p,): parameters, gradient scratch, optimizer state (m, v are
    modified in place). ``t`` is the number of updates done before this epoch.
    Each batch's weight gradients get (l2 + l2_batch / n) W added, and its loss the
    matching 0.5 (l2 + l2_batch / n) sum(W^2).
    Xb (>= batch_size * d_0,), Yb (>= batch_size * d_L,), acts and deltas
    (>= batch_size * sum(d_1..d_L),) are scratch.

    Returns (mean loss over the epoch's samples, as measured by ``metric_code``
    before each batch's update, and the new update count t).
    """
    N = idx.size
    L = sizes.size - 1
    d0, k = sizes[0], sizes[L]
    total = 0.0
    for start in range(0, N, batch_size):
        n = min(batch_size, N - start)
        Xv = view2d(Xb, 0, n, d0)
        Yv = view2d(Yb, 0, n, k)
        gather_rows(X, idx, start, Xv)
        gather_rows(Y, idx, start, Yv)
        A_out = forward_layers(Xv, theta, sizes, act_codes, alpha, acts)
        c = l2 + l2_batch / n
        batch_loss = loss_sum(A_out, Yv, metric_code, clip_eps) / n
        if c != 0.0:
            batch_loss += 0.5 * c * sum_squares_weights(theta, sizes)
        total += batch_loss * n
        loss_and_gradient(Xv, Yv, theta, sizes, act_codes, alpha, loss_code, c, acts, deltas, grad)
        t += 1
        update(opt_code, theta, grad, m, v, lr, mu, beta1, beta2, adam_eps, t)
    return total / N, t
