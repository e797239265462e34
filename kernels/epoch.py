"""Training as compiled calls, one family for both faces: a minibatch epoch (gather,
forward with dropout, the objective's loss and output delta, backward, update), the
full-batch loss and gradient (L-BFGS), and the evaluation of a held-out set.

Arguments travel in the bundles of kernels/bundles.py. A face states its objective
(the tutorial's losses on the mean, or scikit-learn's with sample weights and its alpha);
everything else is the same code. ``decay`` (decoupled weight decay) and ``dropout`` are
None when unused: Numba prunes their branches at compile time, so an epoch without them
never compiles their code (about half of a cold compile).

A batch of rows with weight sum s (s = its row count for unit weights) is trained on
    J = sum_i w_i loss_i / s + 0.5 l2 sum(W^2) + 0.5 l2_summed sum(W^2) / s:
the output delta is scaled by 1 / s, and each weight gradient gets (l2 + l2_summed / s) W.
scikit-learn divides its gradient by s after the backward pass; scaling the delta
instead spares a pass over the gradient and differs in the last bits only.
"""
import numpy as np

from ._jit import jit
from .dropout import backward_dropout, forward_dropout
from .guard import COMPLETE, DIVERGED, STOPPED, check_step, exact_bounds, gradient_bound, refresh, stop_requested
from .losses import NO_ACCURACY, batch_delta, batch_loss, count_correct
from .network import activation_offset, backward_layers, forward_layers, layer_params, sum_squares_weights
from .optimizers import step
from .views import flat, view2d


# -- batches ----------------------------------------------------------------------------------
@jit
def gather_rows(src, idx, start, dst):
    """dst[r] <- src[idx[start + r]] for each row r of dst. src (N, d), dst (n, d)."""
    n, d = dst.shape
    for r in range(n):
        i = idx[start + r]
        for j in range(d):
            dst[r, j] = src[i, j]


@jit(inline="always")
def gather_X(data, idx, start, dst):
    """dst[r] <- row idx[start + r] of the dense X or of the CSR matrix of ``data``."""
    if data.indptr.size == 0:
        gather_rows(data.X, idx, start, dst)
        return
    n, d = dst.shape
    for r in range(n):
        i = idx[start + r]
        for j in range(d):
            dst[r, j] = 0.0
        for p in range(data.indptr[i], data.indptr[i + 1]):
            dst[r, data.indices[p]] += data.data[p]  # += : duplicate entries sum, as in the matrix


@jit(inline="always")
def gather_weights(sw, idx, start, n, swb):
    """swb[r] <- sw[idx[start + r]] for r < n; returns their sum (n when sw is empty: unit weights)."""
    if sw.size == 0:
        return float(n)
    s = 0.0
    for r in range(n):
        swb[r] = sw[idx[start + r]]
        s += swb[r]
    return s


@jit(inline="always")
def consecutive(idx, start, n):
    """Whether rows idx[start:start + n] are consecutive, ascending: a full batch, or a
    chunk of one, in the order given."""
    first = idx[start]
    for r in range(1, n):
        if idx[start + r] != first + r:
            return False
    return True


@jit(inline="always")
def gather_batch(data, idx, start, n, d0, scratch):
    """Rows idx[start:start + n] of the inputs, targets and sample weights, gathered into
    views of the scratch buffers, or, for dense consecutive rows (``consecutive``), views
    of X and Y themselves: a full-batch epoch copied all of X and Y every time. Returns
    (Xv (n, d_0), Yv (n, d_L), swv (n,) or empty, the weights' sum); Xv and Yv are read,
    never written."""
    k = data.Y.shape[1]
    swv = scratch.swb[:n] if data.sw.size > 0 else scratch.swb[:0]
    if data.indptr.size == 0 and consecutive(idx, start, n):
        first = idx[start]
        Xv = view2d(flat(data.X), first * d0, n, d0)
        Yv = view2d(flat(data.Y), first * k, n, k)
    else:
        Xv = view2d(scratch.Xb, 0, n, d0)
        Yv = view2d(scratch.Yb, 0, n, k)
        gather_X(data, idx, start, Xv)
        gather_rows(data.Y, idx, start, Yv)
    return Xv, Yv, swv, gather_weights(data.sw, idx, start, n, swv)


@jit(inline="always")
def penalty_coefficient(objective, weight_sum):
    """The coefficient c of the c W added to each weight gradient of a batch."""
    return objective.l2 + objective.l2_summed / weight_sum


@jit(inline="always")
def penalised(loss_sum, weight_sum, objective, theta, sizes):
    """J of a batch (module docstring) from the sum of its weighted losses."""
    J = loss_sum / weight_sum
    if objective.l2 != 0.0:
        J += 0.5 * objective.l2 * sum_squares_weights(theta, sizes)
    if objective.l2_summed != 0.0:  # in scikit-learn's order of operations
        J += 0.5 * objective.l2_summed * sum_squares_weights(theta, sizes) / weight_sum
    return J


# -- one batch ---------------------------------------------------------------------------------
@jit(inline="always")
def batch_gradient(Xv, Yv, swv, weight_sum, c, net, objective, dropout, counter, scratch):
    """Forward and backward pass of one batch: scratch.grad <- the gradient of J (module
    docstring): the output delta scaled by 1 / ``weight_sum``, c W added to each weight
    gradient. With ``dropout`` (not None) the hidden layers are dropped out, masks from
    element ``counter`` on.

    Returns (the batch's sum of ``metric_code`` losses, its correct count, the new counter).
    """
    n = Xv.shape[0]
    L = net.sizes.size - 1
    if dropout is not None:
        A_out, counter = forward_dropout(Xv, net.theta, net.sizes, net.act_codes, net.alpha, dropout.thresholds,
                                         dropout.key, counter, scratch.acts, scratch.gates)
    else:
        A_out = forward_layers(Xv, net.theta, net.sizes, net.act_codes, net.alpha, scratch.acts)
    loss = batch_loss(A_out, Yv, swv, objective)
    correct = 0.0
    if objective.acc_kind != NO_ACCURACY:
        correct = count_correct(A_out, Yv, objective.acc_kind)
    D_out = view2d(scratch.deltas, activation_offset(net.sizes, L - 1, n), n, net.sizes[L])
    batch_delta(A_out, Yv, swv, objective, net.act_codes[L - 1], 1.0 / weight_sum, D_out)
    if dropout is not None:
        backward_dropout(Xv, net.theta, net.sizes, net.act_codes, net.alpha, dropout.thresholds, scratch.acts,
                         scratch.deltas, scratch.gates, c, scratch.grad)
    else:
        backward_layers(Xv, net.theta, net.sizes, net.act_codes, net.alpha, scratch.acts, scratch.deltas, c,
                        scratch.grad)
    return loss, correct, counter


# -- whole passes ------------------------------------------------------------------------------
@jit
def fit_epoch(data, idx, batch_size, net, objective, optimizer, decay, dropout, scratch, stop):
    """One epoch of minibatch training over the rows ``idx`` of ``data``, in that order.

    idx (N',) int64 (a permutation, or a subset); batches of ``batch_size`` rows, the last
    one possibly partial. Each batch: ``batch_gradient``, then one ``optimizers.step``
    (net.theta, optimizer.m and optimizer.v modified in place). ``decay``: decoupled
    weight decay (lr decay W added to each update, weights only; AdamW for Adam), or None.
    ``dropout``: a bundles.Dropout, or None. ``stop``: (2,) int64 stop flags
    (kernels/guard.py: stop at a batch boundary when asked; no update that would write a
    non-finite value; scratch.check its scratch), or None for no guard.

    Returns (the mean over the rows trained on of each batch's J, with the metric's loss,
    measured before the batch's update; the correct count on the same outputs; the new
    update count t; the mask stream's new counter; guard.COMPLETE, or STOPPED before a
    batch, or DIVERGED at batch t + 1, whose update is not made and whose masks are not
    counted).
    """
    N = idx.size
    t = optimizer.t
    counter = np.uint64(0)
    if dropout is not None:
        counter = dropout.counter
    total = 0.0
    correct = 0.0
    rows = 0
    status = COMPLETE
    bounds = (0.0, 0.0, 0.0)
    if stop is not None:
        bounds = exact_bounds(net.theta, optimizer, scratch.check)
    for start in range(0, N, batch_size):
        if stop is not None and stop_requested(stop):
            status = STOPPED
            break
        n = min(batch_size, N - start)
        Xv, Yv, swv, weight_sum = gather_batch(data, idx, start, n, net.sizes[0], scratch)
        c = penalty_coefficient(objective, weight_sum)
        before = counter
        loss, batch_correct, counter = batch_gradient(Xv, Yv, swv, weight_sum, c, net, objective, dropout, counter,
                                                      scratch)
        # The weights before this batch's update, as scikit-learn takes them.
        J = penalised(loss, weight_sum, objective, net.theta, net.sizes) * n
        if stop is not None:
            s = gradient_bound(Xv, scratch.acts, scratch.deltas, net.sizes, c, bounds[0], scratch.grad, scratch.check)
            finite, bounds = check_step(total + J, s, net.theta, scratch.grad, optimizer, t + 1, decay, net.sizes,
                                        bounds, scratch.check)
            if not finite:
                counter = before
                status = DIVERGED
                break
        total += J
        correct += batch_correct
        rows += n
        t += 1
        step(optimizer.code, net.theta, scratch.grad, optimizer.m, optimizer.v, optimizer.lr, optimizer.mu,
             optimizer.beta1, optimizer.beta2, optimizer.eps, t, decay, net.sizes)
        if stop is not None:
            bounds = refresh(bounds, net.theta, optimizer, scratch.check)
    return total / rows, correct, t, counter, status


@jit
def loss_grad(data, idx, chunk, net, objective, scratch, grad):
    """J and its gradient over all the rows ``idx`` as one batch (L-BFGS's objective),
    ``chunk`` rows at a time (scratch sized for ``chunk``); grad (p,) written.

    As scikit-learn computes it: the chunks' unscaled gradients are summed, then the
    l2_summed W term is added and the sum divided by the weight sum (then l2 W added).
    J is measured with ``metric_code``: the objective's metric must be its trained loss.
    """
    # np.int64(0), not 0: a literal compiles a specialization of its own (kernels/_jit.py)
    total, weight_sum = summed_gradient(data, idx, np.int64(0), idx.size, chunk, net, objective, scratch, grad)
    return finish_gradient(total, weight_sum, net, objective, grad)


@jit
def summed_gradient(data, idx, lo, hi, chunk, net, objective, scratch, grad):
    """grad <- the gradient of the summed weighted losses of rows idx[lo:hi] (not yet
    divided by their weight sum, no penalty), ``chunk`` rows at a time, each chunk's
    gradient in scratch.grad, then added. A function of its own: ``loss_grad`` and the
    two-core split (kernels/split.py, each core one block of rows) run the same code.

    Returns (the sum of their weighted losses, their weight sum).
    """
    for i in range(grad.size):
        grad[i] = 0.0
    total = 0.0
    weight_sum = 0.0
    for start in range(lo, hi, chunk):
        n = min(chunk, hi - start)
        Xv, Yv, swv, w = gather_batch(data, idx, start, n, net.sizes[0], scratch)
        weight_sum += w
        loss, _, _ = batch_gradient(Xv, Yv, swv, 1.0, 0.0, net, objective, None, np.uint64(0), scratch)
        total += loss
        for i in range(grad.size):
            grad[i] += scratch.grad[i]
    return total, weight_sum


@jit(inline="always")
def finish_gradient(total, weight_sum, net, objective, grad):
    """After ``summed_gradient`` of all the rows (their loss ``total`` and ``weight_sum``):
    grad <- the gradient of J, in scikit-learn's order of operations (``loss_grad``).
    Returns J."""
    if objective.l2_summed != 0.0:
        add_weight_penalty(grad, objective.l2_summed, net.theta, net.sizes)
    for i in range(grad.size):
        grad[i] = grad[i] / weight_sum
    if objective.l2 != 0.0:
        add_weight_penalty(grad, objective.l2, net.theta, net.sizes)
    return penalised(total, weight_sum, objective, net.theta, net.sizes)


@jit
def add_weight_penalty(grad, c, theta, sizes):
    """grad's weight blocks += c W (biases untouched)."""
    for layer in range(sizes.size - 1):
        W, _ = layer_params(theta, sizes, layer)
        dW, _ = layer_params(grad, sizes, layer)
        d_in, d_out = W.shape
        for a in range(d_in):
            for b in range(d_out):
                dW[a, b] += c * W[a, b]


@jit
def evaluate(data, idx, chunk, net, objective, scratch):
    """(weighted mean ``metric_code`` loss (no penalty), correct count) of the network
    on rows ``idx`` of ``data``, ``chunk`` rows at a time; no dropout."""
    N = idx.size
    total = 0.0
    correct = 0.0
    weight_sum = 0.0
    for start in range(0, N, chunk):
        n = min(chunk, N - start)
        Xv, Yv, swv, w = gather_batch(data, idx, start, n, net.sizes[0], scratch)
        weight_sum += w
        A = forward_layers(Xv, net.theta, net.sizes, net.act_codes, net.alpha, scratch.acts)
        total += batch_loss(A, Yv, swv, objective)
        if objective.acc_kind != NO_ACCURACY:
            correct += count_correct(A, Yv, objective.acc_kind)
    return total / weight_sum, correct
