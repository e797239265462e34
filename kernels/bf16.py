"""Mixed precision: bfloat16 matrix products, float32 everything else.

The three GEMMs of a training step (A_prev W, A_prev^T D, D W^T) take bfloat16 operands
and accumulate in float32, through oneDNN's ``dnnl_gemm_bf16bf16f32`` (AVX512-BF16 /
AMX). Parameters, optimizer state, losses and the element-wise passes stay float32: the
bfloat16 operands are copies (uint16 bit patterns) written next to their float32
originals, each layer's input by its forward pass, each delta before its products, the
weights after each optimizer step.

``dnnl_gemm_bf16bf16f32`` is an external function, not a ctypes pointer, so these
kernels stay cacheable; the caller loads libdnnl (``llvmlite.binding.
load_library_permanently``) before the first call or cache load. Nothing imports this
module unless bfloat16 is asked for. Buffers as in kernels/network.py, plus uint16 twins:
W16 (p,) like theta, X16 (b d_0,), acts16 and deltas16 like acts and deltas.

Dropout is kernels/dropout.py's (the same masks, from the same counters): the dropped
activation M f(Z) is what is rounded into the next layer's bfloat16 operand, and the
backward pass multiplies by the gates M f'(Z). ``dropout`` is None when unused, and its
branches are then pruned at compile time, as in kernels/epoch.py.
"""
from collections import namedtuple

import numpy as np
from numba import types

from ._jit import jit
from .activations import bias_activation, multiply_derivative
from .dense import column_sum
from .dropout import dropout_forward
from .epoch import gather_batch, penalised, penalty_coefficient
from .guard import COMPLETE, DIVERGED, STOPPED, check_step, exact_bounds, max_abs, refresh, stop_requested
from .losses import NO_ACCURACY, batch_delta, batch_loss, count_correct
from .network import activation_offset, layer_params
from .optimizers import step
from .views import bits, flat, view2d

# dnnl_status_t dnnl_gemm_bf16bf16f32(char transa, char transb, dim_t M, dim_t N, dim_t K,
#     float alpha, const bfloat16 *A, dim_t lda, const bfloat16 *B, dim_t ldb, float beta,
#     float *C, dim_t ldc): row-major C <- alpha op(A) op(B) + beta C (oneDNN's dnnl.h).
_i64, _u16p = types.int64, types.CPointer(types.uint16)
_gemm = types.ExternalFunction(
    "dnnl_gemm_bf16bf16f32",
    types.int32(types.int8, types.int8, _i64, _i64, _i64, types.float32, _u16p, _i64, _u16p, _i64, types.float32,
                types.CPointer(types.float32), _i64),
)
_N, _T = np.int8(ord("N")), np.int8(ord("T"))

# The uint16 twins of the float32 buffers (module docstring).
Half = namedtuple("Half", "W16 X16 acts16 deltas16")


@jit
def to_bf16(x, h):
    """h <- x rounded to bfloat16, to nearest with ties to even, as bit patterns.

    x (k,) float32, h (k,) uint16 written. Adding 0x7FFF plus the lowest kept bit rounds
    the upper half (ties to even); a NaN keeps a set quiet bit, since rounding could carry
    its payload into the exponent and read as infinity."""
    u = bits(x, np.uint32)
    for i in range(x.size):
        b = u[i]
        r = (b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
        nan = (b & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
        h[i] = np.uint16((b >> np.uint32(16)) | np.uint32(0x40)) if nan else np.uint16(r)


@jit(inline="always")
def _check(status):
    if status != 0:
        raise RuntimeError("oneDNN's dnnl_gemm_bf16bf16f32 failed")


@jit(inline="always")
def gemm_nn(A, B, C):
    """C <- A B. A (m, k), B (k, n) uint16 bfloat16; C (m, n) float32 written."""
    m, k = A.shape
    n = B.shape[1]
    _check(_gemm(_N, _N, m, n, k, np.float32(1.0), A.ctypes, k, B.ctypes, n, np.float32(0.0), C.ctypes, n))


@jit(inline="always")
def gemm_tn(A, B, C):
    """C <- A^T B. A (k, m), B (k, n) uint16 bfloat16; C (m, n) float32 written."""
    k, m = A.shape
    n = B.shape[1]
    _check(_gemm(_T, _N, m, n, k, np.float32(1.0), A.ctypes, m, B.ctypes, n, np.float32(0.0), C.ctypes, n))


@jit(inline="always")
def gemm_nt(A, B, C):
    """C <- A B^T. A (m, k), B (n, k) uint16 bfloat16; C (m, n) float32 written."""
    m, k = A.shape
    n = B.shape[0]
    _check(_gemm(_N, _T, m, n, k, np.float32(1.0), A.ctypes, k, B.ctypes, k, np.float32(0.0), C.ctypes, n))


@jit
def forward_layers(X16, theta, sizes, act_codes, alpha, acts, half, dropout, counter, gates):
    """Forward pass of a batch whose input is already in X16 (n, d_0) bfloat16, with the
    weights' bfloat16 copy in half.W16. Writes acts (float32, as network.forward_layers)
    and the hidden layers' bfloat16 copies in half.acts16. Returns the output (n, d_L).

    ``dropout`` (a bundles.Dropout, or None): as dropout.forward_dropout, masks from
    element ``counter`` on (the caller advances it by n sum(d_1..d_{L-1})), gates packed
    like acts and written for the dropped layers."""
    n = X16.shape[0]
    L = sizes.size - 1
    A16 = X16
    off = 0
    for layer in range(L):
        d_out = sizes[layer + 1]
        _, b = layer_params(theta, sizes, layer)
        W16, _ = layer_params(half.W16, sizes, layer)
        A = view2d(acts, off, n, d_out)
        gemm_nn(A16, W16, A)
        bias_activation(A, b, act_codes[layer], alpha)
        if dropout is not None:
            # A hidden layer's counters start at its offset in acts: n d_1 + ... + n d_layer.
            if layer < L - 1 and dropout.thresholds[layer] > 0:
                dropout_forward(A, view2d(gates, off, n, d_out), act_codes[layer], alpha, dropout.thresholds[layer],
                                dropout.key, counter + np.uint64(off))
        if layer < L - 1:  # the next layer's operand (the output is no product's)
            to_bf16(acts[off : off + n * d_out], half.acts16[off : off + n * d_out])
            A16 = view2d(half.acts16, off, n, d_out)
        off += n * d_out
        A_out = A
    return A_out


@jit
def backward_layers(X16, theta, sizes, act_codes, alpha, acts, deltas, l2, grad, half, dropout, gates):
    """Backward pass of a batch whose output delta is already in ``deltas`` (float32), as
    network.backward_layers, each product on bfloat16 copies: each delta D is rounded
    into half.deltas16 before dW = A_prev^T D and D_prev = D W^T. The derivative and
    column sums use the float32 originals. With ``dropout`` (not None), a dropped
    layer's delta is (D W^T) * gates, as dropout.backward_dropout."""
    n = X16.shape[0]
    L = sizes.size - 1
    for layer in range(L - 1, -1, -1):
        d_in, d_out = sizes[layer], sizes[layer + 1]
        W, _ = layer_params(theta, sizes, layer)
        W16, _ = layer_params(half.W16, sizes, layer)
        dW, db = layer_params(grad, sizes, layer)
        off = activation_offset(sizes, layer, n)
        D = view2d(deltas, off, n, d_out)
        to_bf16(deltas[off : off + n * d_out], half.deltas16[off : off + n * d_out])
        D16 = view2d(half.deltas16, off, n, d_out)
        prev_off = activation_offset(sizes, layer - 1, n) if layer > 0 else 0
        A16_prev = view2d(half.acts16, prev_off, n, d_in) if layer > 0 else X16
        gemm_tn(A16_prev, D16, dW)
        if l2 != 0.0:
            c = np.float32(l2)
            for i in range(d_in):
                for j in range(d_out):
                    dW[i, j] += c * W[i, j]
        column_sum(D, db)
        if layer > 0:
            D_prev = view2d(deltas, prev_off, n, d_in)
            gemm_nt(D16, W16, D_prev)
            if dropout is not None:
                if dropout.thresholds[layer - 1] > 0:
                    Df, Gf = flat(D_prev), gates[prev_off : prev_off + n * d_in]
                    for i in range(Df.size):
                        Df[i] = Df[i] * Gf[i]
                else:
                    multiply_derivative(D_prev, view2d(acts, prev_off, n, d_in), act_codes[layer - 1], alpha)
            else:
                multiply_derivative(D_prev, view2d(acts, prev_off, n, d_in), act_codes[layer - 1], alpha)


@jit
def fit_epoch(data, idx, batch_size, net, objective, optimizer, decay, dropout, scratch, stop, half):
    """kernels.epoch.fit_epoch (with its guard: ``stop`` (2,) int64) with bfloat16
    products: each batch's input is rounded into half.X16 after its gather, and the
    weights into half.W16 at the start and after each step (one pass over theta:
    rounding a block at a time, while it is in cache from the update, measured no faster).
    ``dropout``: a bundles.Dropout (scratch.gates sized for it), or None. float32 only.

    Returns (mean J over the rows trained on, correct count, the new update count t, the
    mask stream's new counter, guard.COMPLETE, STOPPED or DIVERGED), as epoch.fit_epoch."""
    N = idx.size
    L = net.sizes.size - 1
    d0 = net.sizes[0]
    hidden = net.sizes[1:L].sum()  # mask counters per row: one per hidden unit
    t = optimizer.t
    counter = np.uint64(0)
    if dropout is not None:
        counter = dropout.counter
    total = 0.0
    correct = 0.0
    rows = 0
    status = COMPLETE
    bounds = exact_bounds(net.theta, optimizer, scratch.check)
    to_bf16(net.theta, half.W16)
    for start in range(0, N, batch_size):
        if stop_requested(stop):
            status = STOPPED
            break
        n = min(batch_size, N - start)
        Xv, Yv, swv, weight_sum = gather_batch(data, idx, start, n, d0, scratch)
        to_bf16(flat(Xv), half.X16[: n * d0])
        X16 = view2d(half.X16, 0, n, d0)
        A_out = forward_layers(X16, net.theta, net.sizes, net.act_codes, net.alpha, scratch.acts, half, dropout,
                               counter, scratch.gates)
        loss = batch_loss(A_out, Yv, swv, objective)
        batch_correct = 0.0
        if objective.acc_kind != NO_ACCURACY:
            batch_correct = count_correct(A_out, Yv, objective.acc_kind)
        D_out = view2d(scratch.deltas, activation_offset(net.sizes, L - 1, n), n, net.sizes[L])
        batch_delta(A_out, Yv, swv, objective, net.act_codes[L - 1], 1.0 / weight_sum, D_out)
        c = penalty_coefficient(objective, weight_sum)
        backward_layers(X16, net.theta, net.sizes, net.act_codes, net.alpha, scratch.acts, scratch.deltas, c,
                        scratch.grad, half, dropout, scratch.gates)
        J = penalised(loss, weight_sum, objective, net.theta, net.sizes) * n
        finite, bounds = check_step(total + J, max_abs(scratch.grad, scratch.check), net.theta, scratch.grad, optimizer,
                                    t + 1, decay, net.sizes, bounds, scratch.check)
        if not finite:
            status = DIVERGED  # this batch's masks are not counted
            break
        if dropout is not None:
            counter += np.uint64(n * hidden)
        total += J
        correct += batch_correct
        rows += n
        t += 1
        step(optimizer.code, net.theta, scratch.grad, optimizer.m, optimizer.v, optimizer.lr, optimizer.mu,
             optimizer.beta1, optimizer.beta2, optimizer.eps, t, decay, net.sizes)
        bounds = refresh(bounds, net.theta, optimizer, scratch.check)
        to_bf16(net.theta, half.W16)
    return total / rows, correct, t, counter, status


@jit
def evaluate(data, idx, chunk, net, objective, scratch, half):
    """kernels.epoch.evaluate with bfloat16 products: (weighted mean metric loss, correct count)."""
    N = idx.size
    d0 = net.sizes[0]
    total = 0.0
    correct = 0.0
    weight_sum = 0.0
    to_bf16(net.theta, half.W16)
    for start in range(0, N, chunk):
        n = min(chunk, N - start)
        Xv, Yv, swv, w = gather_batch(data, idx, start, n, d0, scratch)
        weight_sum += w
        to_bf16(flat(Xv), half.X16[: n * d0])
        A = forward_layers(view2d(half.X16, 0, n, d0), net.theta, net.sizes, net.act_codes, net.alpha, scratch.acts,
                           half, None, np.uint64(0), scratch.acts)
        total += batch_loss(A, Yv, swv, objective)
        if objective.acc_kind != NO_ACCURACY:
            correct += count_correct(A, Yv, objective.acc_kind)
    return total / weight_sum, correct


@jit
def predict(X, theta, sizes, act_codes, alpha, chunk, acts, half, out):
    """network.predict with bfloat16 products: out (N, d_L) <- the output for X (N, d_0),
    ``chunk`` rows at a time (half.X16 and acts sized for ``chunk`` rows)."""
    N, d0 = X.shape
    k = sizes[sizes.size - 1]
    to_bf16(theta, half.W16)
    for start in range(0, N, chunk):
        stop = min(start + chunk, N)
        n = stop - start
        X16 = view2d(half.X16, 0, n, d0)
        for i in range(n):
            to_bf16(X[start + i], X16[i])
        A = forward_layers(X16, theta, sizes, act_codes, alpha, acts, half, None, np.uint64(0), acts)
        for i in range(n):
            for j in range(k):
                out[start + i, j] = A[i, j]
