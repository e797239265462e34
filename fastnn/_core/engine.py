"""The kernel engine: allocates work buffers once and calls the compiled kernels.

``fastnn.reference.NumpyEngine`` has the same methods, written in plain NumPy; a
network picks its engine through its class, so the public API is shared.
"""
import contextlib

import numpy as np

from . import dropout as _dropout, precompile as _precompile, split as _split, threads
from .fpu import flushing_subnormals
from ..kernels import epoch, losses, network, split

# Rows per forward chunk in predict: keeps the scratch for wide layers bounded.
PREDICT_CHUNK = 4096
# Below this many multiply-adds per epoch (rows x weights), handing a block to the
# helper thread (~40 us) costs more than splitting the batch gains.
SPLIT_MIN_MACS = 1_000_000


def hyperparameters(optimizer):
    """(mu, beta1, beta2, eps) of an optimizer object, with neutral values where unused."""
    return (
        float(getattr(optimizer, "momentum", 0.0)),
        float(getattr(optimizer, "beta1", 0.9)),
        float(getattr(optimizer, "beta2", 0.999)),
        float(getattr(optimizer, "epsilon", 1e-8)),
    )


def should_split(sizes, batch_size, epoch_rows, dropout):
    """Whether to train on 2 cores by splitting each batch's rows (``kernels.split``)
    rather than with BLAS's threads: for full-batch epochs without dropout, big enough
    to pay for the hand-off, when fastnn may use 2 cores (the tutorial's epoch takes
    half the time). Minibatches can be split too, but most measured slower split: no
    rule for them yet (docs/performance.md, "Threads")."""
    return (
        epoch_rows is not None and batch_size >= epoch_rows and not dropout
        and batch_size >= split.PARTS and threads.forward_macs(sizes, batch_size) >= SPLIT_MIN_MACS
        and threads.can_split()
    )


class Workspace:
    """Scratch buffers for training with batches of at most ``batch_size`` rows;
    ``split_batch`` for ``kernels.split``'s two-core batches."""

    def __init__(self, sizes, batch_size, dtype, dropout=False, split_batch=False):
        width = int(np.sum(sizes[1:]))
        n_params = int(sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])))
        # Split batches: each block its own share (rows rounded up to whole blocks).
        n_acts = split.PARTS * split.block_scratch(batch_size, sizes) if split_batch else batch_size * width
        self.batch_size = batch_size
        self.step_macs = threads.forward_macs(sizes, batch_size)
        self.Xb = np.empty(batch_size * sizes[0], dtype=dtype)
        self.Yb = np.empty(batch_size * sizes[-1], dtype=dtype)
        self.acts = np.empty(n_acts, dtype=dtype)
        self.deltas = np.empty(n_acts, dtype=dtype)
        self.grad = np.empty(n_params, dtype=dtype)
        # M * f'(Z) of the hidden layers, kept by the dropout forward pass for the backward one.
        self.gates = np.empty(batch_size * int(np.sum(sizes[1:-1])) if dropout else 0, dtype=dtype)
        # Each block's gradient, before they are added (None: no split).
        self.split_grads = np.empty((split.PARTS, n_params), dtype=dtype) if split_batch else None
        self.checked_rows, self.rows_in_order = None, False  # the last idx checked, and whether it is every row in order
        self.batch_views = None  # (batch_size, d) views of Xb, Yb that split epochs gather batches into
        self.helper = None  # the split's helper thread (fastnn._core.split)
        self.training = False  # inside KernelEngine.training: the helper may outlive an epoch
        self.test_X = self.test_out = self.test_acts = None
        self.test_chunk = 1

    def set_test(self, net, X):
        """Buffers for predicting X (None: no test set) in two blocks (``split_run``)."""
        sizes = net.layer_sizes_array
        X = np.empty((0, sizes[0]), dtype=net.dtype) if X is None else X
        self.test_chunk = max(1, min(-(-X.shape[0] // split.PARTS), PREDICT_CHUNK))
        self.test_X = X
        self.test_acts = np.empty(split.PARTS * self.test_chunk * int(np.sum(sizes[1:])) if X.shape[0] else 0,
                                  dtype=net.dtype)
        self.test_out = np.empty((X.shape[0], sizes[-1]), dtype=net.dtype)

    def stop_helper(self):
        if self.helper is not None:
            self.helper.stop()
            self.helper = None


class KernelEngine:
    name = "fastnn"

    @staticmethod
    def workspace(net, batch_size, dropout=False, epoch_rows=None):
        """Scratch for ``batch_size``-row batches; ``epoch_rows``, the rows of an epoch,
        lets a full-batch epoch run on 2 cores (see ``should_split``)."""
        _precompile.announce("tutorial", net.dtype)
        sizes = net.layer_sizes_array
        return Workspace(sizes, batch_size, net.dtype, dropout, should_split(sizes, batch_size, epoch_rows, dropout))

    @staticmethod
    @contextlib.contextmanager
    def training(work, net, X_test=None):
        """Context for a training loop of ``net`` using ``work`` (and predicting the
        validated ``X_test`` after each epoch, when given). Small steps keep BLAS on one
        thread (``threads.blas_for_step``). When its batches are split between cores:
        one BLAS thread throughout (OpenBLAS threads spin for a while after a GEMM,
        taking the second core from the split), the split's helper thread lives until
        the end of the block, and it predicts X_test too."""
        if work.split_grads is None:
            with threads.blas_for_step(work.step_macs):
                yield
            return
        work.set_test(net, X_test)
        with threads.serial_blas():
            work.training = True
            try:
                yield
            finally:
                work.training = False
                work.stop_helper()

    @staticmethod
    def train_epoch(net, X, Y, idx, batch_size, optimizer, state, lr, metric_code, work, l2=0.0, l2_batch=0.0):
        """One epoch over rows ``idx``; updates net.params and ``state``; returns the mean loss."""
        mu, beta1, beta2, eps = hyperparameters(optimizer)
        with flushing_subnormals():
            loss, state.t = epoch.train_epoch(
                X, Y, idx, batch_size,
                net.layer_sizes_array, net.activation_codes, net.alpha, net.loss_code, metric_code, net.clip_eps,
                net.params, work.grad, state.m, state.v, optimizer.code, lr, mu, beta1, beta2, eps, state.t,
                l2, l2_batch,
                work.Xb, work.Yb, work.acts, work.deltas,
            )
        return loss

    @staticmethod
    def fit_epoch(net, X, Y, idx, batch_size, optimizer, state, lr, metric_code, work, *, l2=0.0,
                  weight_decay=0.0, acc_kind=0, thresholds=None, stream=(0, 0)):
        """``train_epoch`` with decoupled weight decay, dropout (``thresholds`` (L - 1,)
        int64, ``stream`` = (key, counter) of the mask stream) and an accuracy count.
        Returns (mean loss, correct count, new counter)."""
        mu, beta1, beta2, eps = hyperparameters(optimizer)
        # None (not zeros) when unused: the kernel then compiles without that code.
        thresholds = _dropout.kernel_thresholds(thresholds)
        weight_decay = float(weight_decay) if weight_decay else None
        if work.split_grads is not None and thresholds is None:
            loss, correct = _split_epoch(net, X, Y, idx, batch_size, optimizer.code, state, lr, mu, beta1, beta2, eps,
                                         metric_code, work, float(l2), weight_decay, int(acc_kind))
            return loss, correct, int(stream[1])
        with flushing_subnormals():
            loss, correct, state.t, counter = epoch.fit_epoch(
                X, Y, idx, batch_size,
                net.layer_sizes_array, net.activation_codes, net.alpha, net.loss_code, metric_code, int(acc_kind),
                net.clip_eps, net.params, work.grad, state.m, state.v, optimizer.code, lr, mu, beta1, beta2, eps,
                state.t, float(l2), 0.0, weight_decay, thresholds, np.uint64(stream[0]), np.uint64(stream[1]),
                work.Xb, work.Yb, work.acts, work.deltas, work.gates,
            )
        return loss, correct, int(counter)

    @staticmethod
    def evaluate(net, X, Y, idx, metric_code, acc_kind, work):
        """(mean loss, correct count) on rows ``idx`` of (X, Y), in chunks of the workspace's batch."""
        with flushing_subnormals():
            return epoch.evaluate(
                X, Y, idx, work.batch_size, net.layer_sizes_array, net.activation_codes, net.alpha, metric_code,
                int(acc_kind), net.clip_eps, net.params, work.Xb, work.Yb, work.acts,
            )

    @staticmethod
    def predict(net, X, work=None):
        """Network output (n, output_size) for a validated X; split between cores when X
        is the test set of ``work``'s split training call."""
        _precompile.announce("tutorial", net.dtype)
        if work is not None and work.helper is not None and X is work.test_X:
            h = work.helper
            with threads.serial_blas(), flushing_subnormals():
                split.split_run(split.PREDICT, h.ctrl, h.results, *h.args, *h.rest)
            return work.test_out.copy()
        sizes = net.layer_sizes_array
        chunk = min(X.shape[0], PREDICT_CHUNK)
        out = np.empty((X.shape[0], sizes[-1]), dtype=net.dtype)
        acts = np.empty(chunk * int(np.sum(sizes[1:])), dtype=net.dtype)
        with flushing_subnormals():
            network.predict(X, net.params, sizes, net.activation_codes, net.alpha, chunk, acts, out)
        return out

    @staticmethod
    def mean_loss(A, Y, loss_code, clip_eps):
        return losses.loss_sum(A, Y, loss_code, clip_eps) / A.shape[0]

    @staticmethod
    def all_finite(a):
        return network.all_finite(a)


def _split_epoch(net, X, Y, idx, batch_size, opt_code, state, lr, mu, beta1, beta2, eps, metric_code, work, l2,
                 weight_decay, acc_kind):
    """``fit_epoch`` (without dropout) with each batch's two blocks of rows on two cores.
    Returns (mean loss, correct count)."""
    if work.checked_rows is not idx:  # the tutorial passes the same rows every epoch: checked once
        work.checked_rows, work.rows_in_order = idx, _is_identity(idx, X)
    if work.rows_in_order:
        Xs, Ys, rows = X, Y, None  # batches are slices of X, Y: nothing to gather
    else:
        if work.batch_views is None:  # the same views every epoch (see BlockHelper.serves)
            b = work.batch_size
            work.batch_views = (work.Xb.reshape(b, X.shape[1]), work.Yb.reshape(b, Y.shape[1]))
        (Xs, Ys), rows = work.batch_views, idx
    if work.test_X is None:
        work.set_test(net, None)
    args = (Xs, Ys, net.params, net.layer_sizes_array, net.activation_codes, net.alpha, net.loss_code, metric_code,
            acc_kind, net.clip_eps, work.acts, work.deltas, work.split_grads, work.test_X, work.test_chunk,
            work.test_acts, work.test_out)
    rest = (X, Y, rows, batch_size, work.grad, opt_code, state.m, state.v, lr, mu, beta1, beta2, eps, state.t, l2,
            weight_decay)
    if work.helper is None or not work.helper.serves(args):
        work.stop_helper()
        work.helper = _split.BlockHelper(args, rest)
    try:
        with threads.serial_blas(), flushing_subnormals():  # serial: already so inside KernelEngine.training
            loss, correct, state.t = split.split_run(split.EPOCH, work.helper.ctrl, work.helper.results, *args, *rest)
    finally:
        if not work.training:  # a lone epoch: do not leave the helper spinning
            work.stop_helper()
    return loss, correct


def _is_identity(idx, X):
    """Whether rows ``idx`` of X are all of X, in order, and X can be used as it is
    (writable: a read-only array would compile the block kernel a second time)."""
    return idx.size == X.shape[0] and X.flags.writeable and bool(np.all(idx == np.arange(idx.size)))
