"""A batch's gradient in two blocks of rows, one per core.

For small layers OpenBLAS's own threads barely help (the tutorial's 1437 x 64 x 64
GEMMs gain a quarter on two threads: docs/performance.md) and every element-wise
pass stays on one core. Splitting the batch instead gives each core whole GEMMs of
half the rows, on a single-threaded BLAS, and half of the element-wise work; the
block gradients are then added. Block 0 runs on the caller, block 1 on a helper
thread that waits in ``split_run`` for the whole training call, or on the caller when
it finishes block 0 before the helper claims block 1 (a helper whose core another
process holds must not stall the step); they meet through flags in shared memory
(kernels/sync.py), not Python.
The test set's predictions after each epoch are split the same way, and so is
L-BFGS's loss and gradient over all the rows (``epoch.loss_grad``): each core sums the
gradient of its block of rows (``epoch.summed_gradient``, with sample weights, dense or
CSR rows), and the caller adds the two and finishes as ``loss_grad`` does.

Results do not depend on timing or threads: the blocks are fixed (``PARTS`` of
them, the first ones a row longer), computed by the same code on either thread, and
their gradients are added in block order.
"""
from collections import namedtuple

import numpy as np

from ._jit import jit
from .bundles import Scratch
from .epoch import batch_gradient, finish_gradient, gather_rows, penalised, penalty_coefficient, summed_gradient
from .guard import COMPLETE, DIVERGED, STOPPED, check_step, exact_bounds, max_abs, refresh, stop_requested
from .network import predict
from .optimizers import step
from .sync import SPINS, back_off, compare_exchange, load_acquire, store_release, wait_for

PARTS = 2
SECOND = 1  # the block a job hands over: the helper's, unless the caller gets to it first

# A split training call's buffers, shared by both threads. Batches are rows of (Xs, Ys);
# acts and deltas (PARTS * block_scratch(batch rows, sizes),) give each block a 1/PARTS
# share; grads (PARTS, p) each block's gradient. L-BFGS's loss and gradient gathers each
# block's chunks into its 1/PARTS share of every buffer of ``scratch`` (a bundles.Scratch;
# its grad (PARTS * p,) holds each block's chunk gradient) and sums them into grads[q];
# the epochs sum the blocks into scratch.grad and read nothing else of it.
Blocks = namedtuple("Blocks", "Xs Ys acts deltas grads scratch")
# The tutorial's test set, predicted after each epoch: X (N, d_0) into out (N, d_L),
# ``chunk`` rows at a time, with acts (PARTS * chunk * sum(d_1..d_L),).
Test = namedtuple("Test", "X chunk acts out")

# The block kernels below are inlined into split_run, their only caller: as functions of
# their own, each compiled library carried another machine-code copy of the forward
# and backward passes it calls, compiled again (docs/performance.md has the cold fits).


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
def block_loss_and_gradient(X, Y, no_weights, net, objective, c, q, blocks):
    """Block q of the batch (X, Y), (n, d_0) and (n, d_L), unit weights (``no_weights`` an
    empty array of the dtype): ``epoch.batch_gradient`` of its rows into blocks.grads[q],
    with the delta scaled by 1/n for all the batch's rows and the penalty's c W in
    block 0 only (the same compiled function as a minibatch epoch's).

    Returns (sum of the block's per-sample ``metric_code`` losses, its correct count).
    """
    n = X.shape[0]
    lo, hi = block(n, q)
    g = blocks.grads[q]
    if hi == lo:  # a 1-row batch leaves the second block empty
        for i in range(g.size):
            g[i] = 0.0
        return 0.0, 0.0
    stride = blocks.acts.size // PARTS
    a, d = blocks.acts[q * stride : (q + 1) * stride], blocks.deltas[q * stride : (q + 1) * stride]
    unused = a[:0]  # batch_gradient reads no batch buffers, weights or gates here
    scratch = Scratch(unused, unused, no_weights, a, d, unused, g, unused)
    loss, correct, _ = batch_gradient(X[lo:hi], Y[lo:hi], no_weights, float(n), c if q == 0 else 0.0, net, objective,
                                      None, np.uint64(0), scratch)
    return loss, correct


@jit(inline="always")
def add_blocks(grads, grad):
    """grad <- the sum of the blocks' gradients grads (PARTS, p), in block order (so the
    result does not depend on which thread finished first)."""
    for i in range(grad.size):
        grad[i] = grads[0, i]
    for q in range(1, PARTS):
        for i in range(grad.size):
            grad[i] += grads[q, i]


@jit(inline="always")
def block_predict(net, q, test):
    """Block q of ``network.predict`` over the rows of test.X into test.out."""
    lo, hi = block(test.X.shape[0], q)
    stride = test.acts.size // PARTS
    if hi > lo:
        predict(test.X[lo:hi], net.theta, net.sizes, net.act_codes, net.alpha, test.chunk,
                test.acts[q * stride : (q + 1) * stride], test.out[lo:hi])


@jit(inline="always")
def share(buf, q):
    """Block q's 1/PARTS of the flat buffer ``buf``."""
    size = buf.size // PARTS
    return buf[q * size : (q + 1) * size]


@jit(inline="always")
def block_summed_gradient(data, idx, chunk, net, objective, q, blocks):
    """Block q of L-BFGS's loss and gradient over the rows ``idx`` of ``data``:
    ``epoch.summed_gradient`` of its rows into blocks.grads[q], ``chunk`` rows at a time
    in the block's share of blocks.scratch (an empty block, as the second one of a 1-row
    batch, leaves zeros). Returns (the block's sum of weighted losses, its weight sum)."""
    lo, hi = block(idx.size, q)
    s = blocks.scratch
    scratch = Scratch(share(s.Xb, q), share(s.Yb, q), share(s.swb, q), share(s.acts, q), share(s.deltas, q), s.gates,
                      share(s.grad, q), s.check)
    return summed_gradient(data, idx, lo, hi, chunk, net, objective, scratch, blocks.grads[q])


# -- the hand-off (see kernels/sync.py) -------------------------------------------------------
# ctrl (CTRL_SIZE,) int64. ctrl[STATE]: the helper writes READY when it starts, Python STOP
# to end it, or PAUSED to keep it from claiming jobs (it sleeps between polls) until
# Python writes READY again: the caller then computes both blocks, the same bits. Each
# job the caller hands over gets the next number in ctrl[SEQ] (written with release
# ordering after the job: ctrl[JOB], for GRADIENT ctrl[LO:N + 1] = (first row, rows)
# of the batch in Xs, Ys and results[2] its L2 coefficient; SUMMED is block 1 of L-BFGS's
# rows). Block 1 of job s goes to whichever thread first moves ctrl[CLAIM] from s - 1 to s
# (a compare-and-swap): the helper when it is awake, else the caller, after its block 0, so
# the caller never waits for a helper that is late or whose core is busy; the helper
# writes s to ctrl[DONE] when it finished one. The same code computes block 1 on either
# thread, so the results do not depend on which did.
STATE, JOB, LO, N, SEQ, CLAIM, DONE = range(7)
CTRL_SIZE = 7
READY, PAUSED, STOP = 1, 2, 4
GRADIENT, FORWARD, SUMMED = 0, 1, 2
# The roles of split_run. The helper computes block 1 of any job it claims, the caller block 0.
EPOCH, HELPER, PREDICT, LOSS_GRAD = 0, 1, 2, 3


@jit(inline="always")
def hand_over(ctrl, job, lo, n):
    """Publish the next job (its parameters before its number). Returns its number."""
    ctrl[JOB], ctrl[LO], ctrl[N] = job, lo, n
    seq = ctrl[SEQ] + 1
    store_release(ctrl, SEQ, seq)
    return seq


@jit(inline="always")
def claimed_by_helper(ctrl, seq):
    """After the caller's block 0 of job ``seq``: False when the caller took block 1 (the
    helper had not), True when the helper has it, once the helper is done with it."""
    if compare_exchange(ctrl, CLAIM, seq - 1, seq):
        return False
    wait_for(ctrl, np.int64(DONE), seq, seq)  # np.int64: not a literal (kernels/_jit.py)
    return True


@jit(inline="always")
def summed_blocks(ctrl, results, net, objective, blocks, data, idx, chunk, grad):
    """split_run's LOSS_GRAD: J of the rows ``idx`` of ``data``, its gradient into ``grad``."""
    seq = hand_over(ctrl, SUMMED, 0, 0)
    loss, weights = 0.0, 0.0
    for q in range(PARTS):
        if q == SECOND and claimed_by_helper(ctrl, seq):
            loss, weights = loss + results[0], weights + results[1]
            break
        block_loss, block_weights = block_summed_gradient(data, idx, chunk, net, objective, q, blocks)
        loss, weights = loss + block_loss, weights + block_weights
    add_blocks(blocks.grads, grad)
    return finish_gradient(loss, weights, net, objective, grad)


@jit
def split_run(role, ctrl, results, net, objective, blocks, test, data, idx, batch_size, optimizer, decay, grad,
              stop):
    """Every thread of a split training call, by ``role`` (one function, so that the
    kernels below it are compiled into one caller, not two: each caller links and
    compiles its own copy of every kernel it calls).

    Two variants, told apart at compile time by which of ``optimizer`` and ``grad`` is
    None (Numba prunes a branch on an argument that is None): L-BFGS's (``optimizer``
    None; roles HELPER and LOSS_GRAD, jobs SUMMED) and the epochs' (``grad`` None; roles
    HELPER, EPOCH and PREDICT, jobs GRADIENT and FORWARD). Neither compiles the other's
    code, so a first fit compiles only what its solver runs (docs/performance.md,
    "Two variants of split_run"). Likewise ``test`` (a ``Test``) None compiles no
    predictions (the scikit-learn face's epochs).

    HELPER: the helper thread's loop for a whole training call, until ctrl[STATE] says
    STOP (while it says PAUSED, it claims nothing): for each new job it claims, block 1
    of it (GRADIENT: of the batch, its (loss, correct) into results[0:2]; FORWARD:
    ``block_predict`` of ``test``; SUMMED: of LOSS_GRAD's rows, its (loss sum, weight sum) into
    results[0:2]), then DONE. It reads only ``net``,
    ``objective``, ``blocks``, ``test`` and data.sw (empty: unit weights), and for SUMMED ``data``,
    ``idx`` and ``batch_size``: the training call's own arrays; the caller changes their
    contents (theta, the gathered batch) only once a job's block 1 is done. Returns zeros.

    EPOCH: ``epoch.fit_epoch`` (unit weights, dense rows, no dropout) with each batch's
    gradient in two blocks of rows, the second on the helper unless the caller gets to it
    first, summed into blocks.scratch.grad. Batches are rows idx[start:start + batch_size]
    of (data.X, data.Y) gathered into blocks.Xs, blocks.Ys, or, with idx empty, rows
    start:start + n of Xs, Ys themselves (data is then not read: rows in order gather
    nothing, and share the compiled variant of gathered ones). ``stop`` (stop flags, or
    None) as in ``fit_epoch``, with blocks.scratch.check: the caller stops between batches
    and checks the summed gradient before the update. Returns (mean J over the rows
    trained on, correct count, t, status).

    PREDICT: test.out <- the network's output for test.X, in two blocks the same way.

    LOSS_GRAD: ``epoch.loss_grad`` of the rows ``idx`` of ``data`` (sample weights, dense
    or CSR rows) into ``grad``, each block ``batch_size`` rows at a time
    (``block_summed_gradient``): the two blocks' sums are added in block order, then
    finished as ``loss_grad`` finishes. Returns (J, 0, 0, COMPLETE). ``optimizer``,
    ``decay`` and ``stop`` must be None.
    """
    if role == HELPER:
        seen = load_acquire(ctrl, SEQ)  # jobs handed over before the helper started are the caller's
        store_release(ctrl, STATE, READY)
        polls = 0
        while True:
            state = load_acquire(ctrl, STATE)
            if state == STOP:
                break
            seq = load_acquire(ctrl, SEQ)
            if seq == seen or state == PAUSED:
                polls = back_off(max(polls, 2 * SPINS) if state == PAUSED else polls)  # paused: sleep at once
                continue
            seen, polls = seq, 0
            job, lo, n, c = ctrl[JOB], ctrl[LO], ctrl[N], results[2]  # ordered by the acquire load of SEQ
            # A claim succeeds only while job seq is the current one: what was read is its.
            if not compare_exchange(ctrl, CLAIM, seq - 1, seq):
                continue
            if grad is not None:  # L-BFGS's variant: SUMMED (each test here is a compile-time one)
                results[0], results[1] = block_summed_gradient(data, idx, batch_size, net, objective, SECOND, blocks)
            elif optimizer is not None:  # the epochs'
                if job == FORWARD:
                    if test is not None:
                        block_predict(net, SECOND, test)
                else:
                    results[0], results[1] = block_loss_and_gradient(
                        blocks.Xs[lo : lo + n], blocks.Ys[lo : lo + n], data.sw, net, objective, c, SECOND, blocks,
                    )
            store_release(ctrl, DONE, seq)
        return 0.0, 0.0, 0, COMPLETE
    if grad is not None:  # LOSS_GRAD
        return summed_blocks(ctrl, results, net, objective, blocks, data, idx, batch_size, grad), 0.0, 0, COMPLETE
    if optimizer is None:  # L-BFGS's variant ends above; pruned from the epochs'
        return 0.0, 0.0, 0, COMPLETE
    t = optimizer.t
    if role == PREDICT:
        if test is not None:
            seq = hand_over(ctrl, FORWARD, 0, 0)
            for q in range(PARTS):
                if q == SECOND and claimed_by_helper(ctrl, seq):
                    break
                block_predict(net, q, test)
        return 0.0, 0.0, t, COMPLETE
    g = blocks.scratch.grad
    Xs, Ys = blocks.Xs, blocks.Ys
    gather = idx.size > 0
    N_rows = idx.size if gather else Xs.shape[0]
    total = 0.0
    correct = 0.0
    rows = 0
    status = COMPLETE
    bounds = (0.0, 0.0, 0.0)
    if stop is not None:
        bounds = exact_bounds(net.theta, optimizer, blocks.scratch.check)
    for start in range(0, N_rows, batch_size):
        if stop is not None and stop_requested(stop):
            status = STOPPED
            break
        n = min(batch_size, N_rows - start)
        lo = start
        if gather:
            gather_rows(data.X, idx, start, Xs[:n])
            gather_rows(data.Y, idx, start, Ys[:n])
            lo = 0
        c = penalty_coefficient(objective, float(n))
        results[2] = c
        seq = hand_over(ctrl, GRADIENT, lo, n)
        loss, batch_correct = 0.0, 0.0
        for q in range(PARTS):
            if q == SECOND and claimed_by_helper(ctrl, seq):
                loss, batch_correct = loss + results[0], batch_correct + results[1]
                break
            block_loss, block_correct = block_loss_and_gradient(Xs[lo : lo + n], Ys[lo : lo + n], data.sw, net,
                                                                objective, c, q, blocks)
            loss, batch_correct = loss + block_loss, batch_correct + block_correct
        J = penalised(loss, float(n), objective, net.theta, net.sizes) * n
        add_blocks(blocks.grads, g)
        if stop is not None:
            finite, bounds = check_step(total + J, max_abs(g, blocks.scratch.check), net.theta, g, optimizer, t + 1,
                                        decay, net.sizes, bounds, blocks.scratch.check)
            if not finite:
                status = DIVERGED
                break
        total += J
        correct += batch_correct
        rows += n
        t += 1
        step(optimizer.code, net.theta, g, optimizer.m, optimizer.v, optimizer.lr, optimizer.mu, optimizer.beta1,
             optimizer.beta2, optimizer.eps, t, decay, net.sizes)
        if stop is not None:
            bounds = refresh(bounds, net.theta, optimizer, blocks.scratch.check)
    return total / rows, correct, t, status
