"""A batch's gradient in two blocks of rows, one per core.

For small layers OpenBLAS's own threads barely help (the tutorial's 1437 x 64 x 64
GEMMs gain a quarter on two threads: docs/performance.md) and every element-wise
pass stays on one core. Splitting the batch instead gives each core whole GEMMs of
half the rows, on a single-threaded BLAS, and half of the element-wise work; the
block gradients are then added. Block 1 runs on a helper thread that waits in
``split_run`` for the whole training call, block 0 on the caller (``split_run``
again); they meet through flags in shared memory (kernels/sync.py), not Python.
The test set's predictions after each epoch are split the same way.

Results do not depend on timing or threads: the blocks are fixed (``PARTS`` of
them, the first ones a row longer) and their gradients are added in block order.
"""
from ._jit import jit
from .epoch import gather_rows
from .losses import NO_ACCURACY, count_correct, loss_sum
from .network import forward_layers, penalised_mean, predict, scaled_gradient
from .optimizers import step
from .sync import store_release, wait_for

PARTS = 2

# The block kernels below are inlined into split_run, their only caller: as functions of
# their own, each compiled library carried another machine-code copy of the forward
# and backward passes it calls (a cold full-batch fit: 12.5 -> 11.1 s).


@jit(inline="always")
def block(n, q):
    """Rows [lo, hi) of block q of an n-row batch split into PARTS blocks."""
    h = (n + PARTS - 1) // PARTS
    lo = min(n, q * h)
    return lo, min(n, lo + h)


def block_scratch(n, sizes):
    """Elements of ``acts`` (or ``deltas``) one block needs; PARTS times this is the total."""
    return (n + PARTS - 1) // PARTS * int(sizes[1:].sum())


@jit(inline="always")
def block_loss_and_gradient(X, Y, theta, sizes, act_codes, alpha, loss_code, metric_code, acc_kind, clip_eps,
                            l2, q, acts, deltas, grads):
    """Block q of the batch (X, Y), (n, d_0) and (n, d_L): forward pass, loss, accuracy,
    and its share of the gradient of the batch's mean loss (1/n of its rows' sum, and
    the ``l2`` W term in block 0 only) into grads[q].

    acts, deltas (>= PARTS * block_scratch(n, sizes),) scratch, a 1/PARTS share per
    block; grads (PARTS, p).
    Returns (sum of the block's per-sample ``metric_code`` losses, its ``acc_kind``
    correct count).
    """
    n = X.shape[0]
    lo, hi = block(n, q)
    g = grads[q]
    if hi == lo:  # a 1-row batch leaves the second block empty
        for i in range(g.size):
            g[i] = 0.0
        return 0.0, 0.0
    stride = acts.size // PARTS
    a, d = acts[q * stride : (q + 1) * stride], deltas[q * stride : (q + 1) * stride]
    Xq, Yq = X[lo:hi], Y[lo:hi]
    A = forward_layers(Xq, theta, sizes, act_codes, alpha, a)
    total = loss_sum(A, Yq, metric_code, clip_eps)
    correct = count_correct(A, Yq, acc_kind) if acc_kind != NO_ACCURACY else 0.0
    scaled_gradient(Xq, Yq, theta, sizes, act_codes, alpha, loss_code, 1.0 / n, l2 if q == 0 else 0.0, a, d, g)
    return total, correct


@jit(inline="always")
def add_blocks_and_step(grads, grad, theta, sizes, opt_code, m, v, lr, mu, beta1, beta2, adam_eps, t,
                        weight_decay):
    """After ``block_loss_and_gradient`` for every block: grad <- the sum of grads (in
    block order), then update t (counted from 1; see ``optimizers.step``)."""
    for i in range(grad.size):
        grad[i] = grads[0, i]
    for q in range(1, PARTS):
        for i in range(grad.size):
            grad[i] += grads[q, i]
    step(opt_code, theta, grad, m, v, lr, mu, beta1, beta2, adam_eps, t, weight_decay, sizes)


@jit(inline="always")
def block_predict(X, theta, sizes, act_codes, alpha, chunk, q, acts, out):
    """Block q of ``network.predict`` over the rows of X: out[lo:hi] written, ``chunk``
    rows at a time; acts (>= PARTS * chunk * sum(d_1..d_L),), a 1/PARTS share per block."""
    lo, hi = block(X.shape[0], q)
    stride = acts.size // PARTS
    if hi > lo:
        predict(X[lo:hi], theta, sizes, act_codes, alpha, chunk, acts[q * stride : (q + 1) * stride], out[lo:hi])


# -- the hand-off (see kernels/sync.py) -------------------------------------------------------
# ctrl[0] holds the state: the caller writes WORK and STOP, the helper READY and DONE.
# With WORK, ctrl[1] says the job; for GRADIENT, ctrl[2:4] = (first row, rows) of the
# batch in Xs, Ys and results[2] its L2 coefficient.
READY, WORK, DONE, STOP = 1, 2, 3, 4
GRADIENT, FORWARD = 0, 1
# The roles of split_run. The helper computes block 1 of either job, the caller block 0.
EPOCH, HELPER, PREDICT = 0, 1, 2


@jit
def split_run(role, ctrl, results, Xs, Ys, theta, sizes, act_codes, alpha, loss_code, metric_code, acc_kind,
              clip_eps, acts, deltas, grads, X_out, chunk, acts_out, out,
              X, Y, idx, batch_size, grad, opt_code, m, v, lr, mu, beta1, beta2, adam_eps, t, l2, weight_decay):
    """Every thread of a split training call, by ``role`` (one function, so that the
    kernels below it are compiled into one caller, not two: 7 s less on a cold start).

    HELPER: the helper thread's loop for a whole training call, until ctrl[0] says STOP:
    at each WORK, block 1 of the job in ctrl[1] (GRADIENT: of the batch, its (loss,
    correct) into results[0:2]; FORWARD: ``block_predict`` of X_out into out), then
    DONE. It reads only the arguments up to ``out``, which are the training call's own
    arrays (X_out, out may have 0 rows); the caller changes their contents (theta, the
    gathered batch) only between DONE and the next WORK. Returns zeros.

    EPOCH: ``epoch.fit_epoch`` (without dropout) with each batch's gradient split
    between the two threads. Batches are rows idx[start:start + batch_size] of (X, Y)
    gathered into Xs, Ys (batch_size rows), or, with idx None, rows start:start + n of
    Xs, Ys themselves (X, Y are then not read). Returns (mean loss, correct count, t).

    PREDICT: out <- the network's output for X_out, in two blocks the same way.
    """
    first, second = 0, 1  # the caller's block and the helper's
    if role == HELPER:
        store_release(ctrl, 0, READY)
        while wait_for(ctrl, 0, WORK, STOP) == WORK:
            if ctrl[1] == FORWARD:  # ordered by the acquire load of WORK
                block_predict(X_out, theta, sizes, act_codes, alpha, chunk, second, acts_out, out)
            else:
                lo, n = ctrl[2], ctrl[3]
                results[0], results[1] = block_loss_and_gradient(
                    Xs[lo : lo + n], Ys[lo : lo + n], theta, sizes, act_codes, alpha, loss_code, metric_code,
                    acc_kind, clip_eps, results[2], second, acts, deltas, grads,
                )
            store_release(ctrl, 0, DONE)
        return 0.0, 0.0, t
    if role == PREDICT:
        ctrl[1] = FORWARD  # published by the release store of WORK
        store_release(ctrl, 0, WORK)
        block_predict(X_out, theta, sizes, act_codes, alpha, chunk, first, acts_out, out)
        wait_for(ctrl, 0, DONE, DONE)
        return 0.0, 0.0, t
    N = idx.size if idx is not None else Xs.shape[0]
    total = 0.0
    correct = 0.0
    for start in range(0, N, batch_size):
        n = min(batch_size, N - start)
        lo = start
        if idx is not None:
            gather_rows(X, idx, start, Xs[:n])
            gather_rows(Y, idx, start, Ys[:n])
            lo = 0
        ctrl[1], ctrl[2], ctrl[3] = GRADIENT, lo, n
        results[2] = l2
        store_release(ctrl, 0, WORK)
        loss0, correct0 = block_loss_and_gradient(
            Xs[lo : lo + n], Ys[lo : lo + n], theta, sizes, act_codes, alpha, loss_code, metric_code, acc_kind,
            clip_eps, l2, first, acts, deltas, grads,
        )
        wait_for(ctrl, 0, DONE, DONE)
        total += penalised_mean(loss0 + results[0], n, l2, theta, sizes) * n
        correct += correct0 + results[1]
        t += 1
        add_blocks_and_step(grads, grad, theta, sizes, opt_code, m, v, lr, mu, beta1, beta2, adam_eps, t,
                            weight_decay)
    return total / N, correct, t
