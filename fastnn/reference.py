"""The plain NumPy reference: the same maths as the kernels, written to be read.

This is the oracle of fastnn's tests and the baseline of its benchmarks. It has the
public API of ``fastnn`` (``NeuralNetwork``, ``Trainer``): the classes share fastnn's
validation, initialisation and batch order, and swap the compiled engine for
``NumpyEngine`` below, which is vectorised NumPy and nothing else.

With ``compute_dtype='bfloat16'`` (float32 networks), both operands of every matrix
product are rounded to bfloat16 (``round_bf16``) and the products accumulate in float32;
everything else is float32, as in the kernels.

Conventions, for a batch of n samples and k outputs:
    mse                       L = 1/(n k) sum (A - Y)^2
    log_loss                  L = -1/(n k) sum Y log A + (1 - Y) log(1 - A)
    categorical_crossentropy  L = -1/n sum Y log A
"""
import contextlib
import math

import numpy as np

from . import io as _io
from . import network as _network
from . import trainer as _trainer
from ._core import dropout as _dropout
from .kernels import codes


# -- activations and their derivatives from the output A -------------------------------
def flush(x):
    """x with subnormal entries set to 0 (as the kernels do: subnormals are ~100x slower)."""
    return np.where(np.abs(x) >= np.finfo(x.dtype).tiny, x, 0).astype(x.dtype)


def sigmoid(Z):
    e = np.exp(-np.abs(Z))  # exp of a non-positive number: never overflows
    return flush(np.where(Z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)))


def softmax(Z):
    E = flush(np.exp(Z - Z.max(axis=1, keepdims=True)))
    return flush(E / E.sum(axis=1, keepdims=True))


def activate(Z, code, alpha):
    if code == codes.IDENTITY:
        return Z
    if code == codes.SIGMOID:
        return sigmoid(Z)
    if code == codes.TANH:
        # Correctly rounded: NumPy's float32 tanh can be an ulp off (tanh(-9.206) is
        # -0.99999994, not -1), and near +-1 that last bit decides whether the derivative
        # 1 - a^2 is 0 or 1.2e-7, which training can amplify (Adam, large deltas).
        return np.tanh(Z.astype(np.float64)).astype(Z.dtype) if Z.dtype == np.float32 else np.tanh(Z)
    if code == codes.RELU:
        return np.maximum(Z, 0)
    if code == codes.LEAKY_RELU:
        return np.where(Z > 0, Z, alpha * Z)
    if code == codes.ELU:
        return np.where(Z > 0, Z, alpha * np.expm1(np.minimum(Z, 0)))
    if code == codes.SOFTMAX:
        return softmax(Z)
    raise ValueError(f"unknown activation code {code}")


def derivative(A, code, alpha):
    """f'(Z) in terms of the output A = f(Z) (not for softmax)."""
    if code == codes.IDENTITY:
        return np.ones_like(A)
    if code == codes.SIGMOID:
        return A * (1 - A)
    if code == codes.TANH:
        return 1 - A * A
    if code == codes.RELU:
        return (A > 0).astype(A.dtype)
    if code == codes.LEAKY_RELU:
        return np.where(A > 0, 1, alpha).astype(A.dtype)
    if code == codes.ELU:
        return np.where(A > 0, 1, A + alpha).astype(A.dtype)
    raise ValueError(f"no elementwise derivative for activation code {code}")


# -- losses ------------------------------------------------------------------------------
def relative_weights(sw, n):
    """Sample weights scaled to mean 1 (``n / sum(sw)``), as a column; 1.0 for none, so the
    unweighted sums below stay exactly what they were."""
    return 1.0 if sw is None else (sw * (n / np.sum(sw)))[:, None]


def mean_loss(A, Y, code, eps, sw=None):
    """The batch's mean loss, or with sample weights sw (n,) its weighted mean
    sum_i w_i loss_i / sum_i w_i."""
    n, k = A.shape
    w = relative_weights(sw, n)
    if code == codes.MSE:
        return np.sum(w * (A - Y) ** 2) / k / n
    P = np.clip(A, eps, 1 - eps)
    if code == codes.LOG_LOSS:
        return -np.sum(w * (Y * np.log(P) + (1 - Y) * np.log(1 - P))) / k / n
    return -np.sum(w * (Y * np.log(P))) / n


def output_delta(A, Y, loss_code, out_code, sw=None):
    """dL/dZ of the output layer for the (weighted) mean loss over the batch."""
    n, k = A.shape
    R = (A - Y) * relative_weights(sw, n)
    # A - Y of a saturated output, scaled, may be subnormal: flushed, as the kernel does.
    if loss_code == codes.LOG_LOSS and out_code == codes.SIGMOID:
        return flush(R / (n * k))
    if loss_code == codes.CATEGORICAL_CROSSENTROPY and out_code == codes.SOFTMAX:
        return flush(R / n)
    G = 2 * R / (n * k)  # mse: dL/dA
    if out_code == codes.SOFTMAX:
        return A * (G - np.sum(G * A, axis=1, keepdims=True))
    if out_code == codes.SIGMOID:
        return G * A * (1 - A)
    return G


# -- matrix products ------------------------------------------------------------------
def round_bf16(x):
    """float32 x rounded to the nearest bfloat16 (ties to even), as float32: the upper 16
    bits of x + 0x7FFF + (the lowest kept bit), computed on the uint32 bit patterns in
    uint64 (no overflow). A NaN stays a NaN."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return np.where(np.isnan(x), np.float32(np.nan), r.astype(np.uint32).view(np.float32))


def bf16_matmul(A, B):
    """A @ B with both operands rounded to bfloat16, accumulated in float32 (products of
    two bfloat16 numbers are exact in float32: 8 + 8 significant bits)."""
    return round_bf16(A) @ round_bf16(B)


def product(net):
    """The matrix product of ``net``'s compute dtype: ``bf16_matmul`` or ``np.matmul``."""
    return bf16_matmul if getattr(net, "compute_dtype", None) == "bfloat16" else np.matmul


# -- network passes -------------------------------------------------------------------
def forward(net, X):
    """Activations of every layer, input first: [X, A_1, ..., A_L]."""
    As, mm = [X], product(net)
    for W, b, code in zip(net.weights, net.biases, net.activation_codes):
        As.append(activate(mm(As[-1], W) + b, code, net.alpha))
    return As


def forward_dropout(net, X, thresholds, key, counter):
    """``forward`` with inverted dropout after hidden layer l when thresholds[l] > 0:
    A_l <- M A_l, M = 1 / (1 - p) on kept units, 0 on dropped ones (the kernel's masks).
    Returns (As, gates, counter): gates[l] = M f'(Z_l) for dropped layers, else None."""
    As, gates, mm = [X], [], product(net)
    last = len(net.weights) - 1
    for layer, (W, b, code) in enumerate(zip(net.weights, net.biases, net.activation_codes)):
        A = activate(mm(As[-1], W) + b, code, net.alpha)
        if layer < last:
            thr = int(thresholds[layer])
            if thr > 0:
                scale = _dropout.TWO_32 / (_dropout.TWO_32 - thr)
                M = np.where(_dropout.keep_mask(key, counter, thr, A.shape), scale, 0).astype(A.dtype)
                gates.append(M * derivative(A, code, net.alpha))
                A = M * A
            else:
                gates.append(None)
            counter += A.size
        As.append(A)
    return As, gates, counter


def gradients(net, As, Y, l2, gates=None, sw=None):
    """Flat gradient (the layout of net.params) of the (weighted) mean batch loss + 0.5 l2 sum W^2.

    With ``gates`` (from ``forward_dropout``), a dropped layer's delta is (D W^T) * gate."""
    D = output_delta(As[-1], Y, net.loss_code, net.activation_codes[-1], sw)
    grads, mm = [], product(net)
    for layer in range(len(net.weights) - 1, -1, -1):
        W = net.weights[layer]
        grads.append(D.sum(axis=0))
        grads.append((mm(As[layer].T, D) + l2 * W).ravel())
        if layer > 0:
            gate = gates[layer - 1] if gates is not None else None
            D = mm(D, W.T) * (gate if gate is not None else derivative(As[layer], net.activation_codes[layer - 1], net.alpha))
    return np.concatenate(grads[::-1])


def update(optimizer, theta, g, state, lr):
    """One optimizer step on theta in place (scikit-learn's update rules)."""
    state.t += 1
    if optimizer.code == codes.SGD:
        theta -= lr * g
    elif optimizer.code in (codes.MOMENTUM, codes.NESTEROV):
        mu = optimizer.momentum
        state.m[...] = flush(mu * state.m - lr * g)
        theta += mu * state.m - lr * g if optimizer.code == codes.NESTEROV else state.m
    else:
        b1, b2 = optimizer.beta1, optimizer.beta2
        lr_t = lr * np.sqrt(1 - b2**state.t) / (1 - b1**state.t)
        state.m[...] = flush(b1 * state.m + (1 - b1) * g)
        state.v[...] = flush(b2 * state.v + (1 - b2) * g * g)
        theta -= lr_t * state.m / (np.sqrt(state.v) + optimizer.epsilon)


def _stepped(net, optimizer, g, state, lr, weight_decay):
    """(theta, m, v) after one ``update`` (and the decoupled decay) of copies of the state:
    the epoch writes them only if they are all finite."""
    theta, copy = net.params.copy(), _State(state.m.copy(), state.v.copy(), state.t)
    decay = [lr * weight_decay * W for W in net.weights] if weight_decay else []
    update(optimizer, theta, g, copy, lr)
    for W, d in zip(net._spec.unpack(theta)[0] if decay else (), decay):
        W -= d
    return theta, copy.m, copy.v


class _State:
    """An optimizer state's moments and count (``update`` advances t)."""

    def __init__(self, m, v, t):
        self.m, self.v, self.t = m, v, t


def count_correct(A, Y, kind):
    """Correct predictions: rows with argmax A == argmax Y (kind 1), outputs on the same
    side of 0.5 as their targets (kind 2), or 0 (kind 0)."""
    if kind == 1:
        return float(np.sum(np.argmax(A, axis=1) == np.argmax(Y, axis=1)))
    if kind == 2:
        return float(np.sum((A > 0.5) == (Y > 0.5)))
    return 0.0


def _rows(X, rows):
    """Rows of X as a dense array (a sparse X's rows are densified: the reference is for reading)."""
    Xb = X[rows]
    return Xb.toarray() if hasattr(Xb, "toarray") else Xb


class NumpyEngine:
    """The engine interface of ``fastnn._core.engine.KernelEngine``, in plain NumPy."""

    name = "reference"

    @staticmethod
    def workspace(net, batch_size, dropout=False, epoch_rows=None, splittable=True):
        return None

    @staticmethod
    def reusable(work):
        return False

    @staticmethod
    def training(work, net, X_test=None):
        return contextlib.nullcontext()

    @staticmethod
    def train_epoch(net, X, Y, idx, batch_size, optimizer, state, lr, metric_code, work, l2=0.0, l2_batch=0.0):
        total = 0.0
        for start in range(0, idx.size, batch_size):
            rows = idx[start : start + batch_size]
            Xb, Yb = X[rows], Y[rows]
            n = rows.size
            c = l2 + l2_batch / n
            As = forward(net, Xb)
            loss = mean_loss(As[-1], Yb, metric_code, net.clip_eps)
            if c != 0:
                loss += 0.5 * c * sum(np.sum(W * W) for W in net.weights)
            total += loss * n
            update(optimizer, net.params, gradients(net, As, Yb, c), state, lr)
        return total / idx.size

    @staticmethod
    def fit_epoch(net, X, Y, idx, batch_size, optimizer, state, lr, metric_code, work, *, l2=0.0,
                  weight_decay=0.0, acc_kind=0, thresholds=None, stream=(0, 0), sample_weight=None, stop=None):
        """``train_epoch`` plus decoupled weight decay (W -= lr wd W, weights only, with the
        W of before the step), dropout from the kernel's mask stream, an accuracy count,
        sample weights (each batch's weighted mean loss) and sparse X; the kernels' guard:
        stop before a batch once ``stop[0] >= stop[1]``, and before a non-finite loss or
        update. Returns (mean loss over the rows trained on, correct count, counter, status)."""
        key, counter = stream
        dropout = thresholds is not None and np.any(np.asarray(thresholds) > 0)
        total, correct, rows, status = 0.0, 0.0, 0, codes.COMPLETE
        for start in range(0, idx.size, batch_size):
            if stop is not None and stop[0] >= stop[1]:
                status = codes.STOPPED
                break
            rows_b = idx[start : start + batch_size]
            Xb, Yb, swb = _rows(X, rows_b), Y[rows_b], None if sample_weight is None else sample_weight[rows_b]
            n = rows_b.size
            if dropout:
                As, gates, after = forward_dropout(net, Xb, thresholds, key, counter)
            else:
                As, gates, after = forward(net, Xb), None, counter
            loss = mean_loss(As[-1], Yb, metric_code, net.clip_eps, swb)
            if l2 != 0:
                loss += 0.5 * l2 * sum(np.sum(W * W) for W in net.weights)
            g = gradients(net, As, Yb, l2, gates, swb)
            new = _stepped(net, optimizer, g, state, lr, weight_decay)
            if not (np.isfinite(total + loss * n) and all(np.isfinite(a).all() for a in new)):
                status = codes.DIVERGED
                break
            net.params[...], state.m[...], state.v[...] = new
            state.t += 1
            counter = after
            total += loss * n
            correct += count_correct(As[-1], Yb, acc_kind)
            rows += n
        return total / rows if rows else math.nan, correct, counter, status

    @staticmethod
    def evaluate(net, X, Y, idx, metric_code, acc_kind, work, sample_weight=None):
        A = forward(net, _rows(X, idx))[-1]
        sw = None if sample_weight is None else sample_weight[idx]
        return mean_loss(A, Y[idx], metric_code, net.clip_eps, sw), count_correct(A, Y[idx], acc_kind)

    @staticmethod
    def predict(net, X, work=None):
        return forward(net, X)[-1]

    @staticmethod
    def mean_loss(A, Y, loss_code, clip_eps):
        return mean_loss(A, Y, loss_code, clip_eps)

    @staticmethod
    def all_finite(a):
        return bool(np.isfinite(a).all())

    @staticmethod
    def with_compute_dtype(compute_dtype):
        return NumpyEngine  # the passes above read the network's compute_dtype


class NeuralNetwork(_network.NeuralNetwork):
    __doc__ = "NumPy reference of :class:`fastnn.NeuralNetwork` (same API).\n" + (_network.NeuralNetwork.__doc__ or "")
    _engine = NumpyEngine


class Trainer(_trainer.Trainer):
    __doc__ = "NumPy reference of :class:`fastnn.Trainer` (same API).\n" + (_trainer.Trainer.__doc__ or "")


__all__ = ["NeuralNetwork", "Trainer", "NumpyEngine"]


_io.register_engine("reference", NeuralNetwork, Trainer)
