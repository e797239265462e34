"""The kernel engine: allocates work buffers once and calls the compiled kernels.

``fastnn.reference.NumpyEngine`` has the same methods, written in plain NumPy; a
network picks its engine through its class, so the public API is shared.
"""
import contextlib

import numpy as np

from . import threads
from .kernels import epoch, losses, network, split

# Rows per forward chunk in predict: keeps the scratch for wide layers bounded.
PREDICT_CHUNK = 4096
# Below this many multiply-adds per epoch (rows x weights), opening a parallel region
# costs more than splitting the batch gains. (Measured: see should_split.)
SPLIT_MIN_MACS = 200_000


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
    rather than with BLAS's threads: for full-batch epochs (one parallel region per
    epoch) without dropout, big enough to pay for the region, when fastnn may use 2
    cores. The tutorial's 1437-row 64-64-10 epoch: 1140 -> 620 us."""
    d = sizes.tolist()  # Python ints: predict asks on every call
    weights = sum(a * b for a, b in zip(d[:-1], d[1:]))
    return (
        epoch_rows is not None and batch_size >= epoch_rows and not dropout
        and batch_size >= split.PARTS and batch_size * weights >= SPLIT_MIN_MACS and threads.can_split()
    )


@contextlib.contextmanager
def _two_cores():
    """Around a kernel that opens a parallel region: BLAS on one thread (already so
    inside ``KernelEngine.training``), and one region at a time in the process."""
    with threads.serial_blas(), threads.region_lock:
        yield


class Workspace:
    """Scratch buffers for training with batches of at most ``batch_size`` rows;
    ``split_batch`` for ``kernels.split``'s two-core batches."""

    def __init__(self, sizes, batch_size, dtype, dropout=False, split_batch=False):
        width = int(np.sum(sizes[1:]))
        n_params = int(sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])))
        rows = split.PARTS * -(-batch_size // split.PARTS) if split_batch else batch_size
        self.batch_size = batch_size
        self.Xb = np.empty(batch_size * sizes[0], dtype=dtype)
        self.Yb = np.empty(batch_size * sizes[-1], dtype=dtype)
        self.acts = np.empty(rows * width, dtype=dtype)
        self.deltas = np.empty(rows * width, dtype=dtype)
        self.grad = np.empty(n_params, dtype=dtype)
        # M * f'(Z) of the hidden layers, kept by the dropout forward pass for the backward one.
        self.gates = np.empty(batch_size * int(np.sum(sizes[1:-1])) if dropout else 0, dtype=dtype)
        # Each block's gradient, before they are added (None: no split).
        self.split_grads = np.empty((split.PARTS, n_params), dtype=dtype) if split_batch else None


class KernelEngine:
    name = "fastnn"

    @staticmethod
    def workspace(net, batch_size, dropout=False, epoch_rows=None):
        """Scratch for ``batch_size``-row batches; ``epoch_rows``, the rows of an epoch,
        lets a full-batch epoch run on 2 cores (see ``should_split``)."""
        sizes = net.layer_sizes_array
        return Workspace(sizes, batch_size, net.dtype, dropout, should_split(sizes, batch_size, epoch_rows, dropout))

    @staticmethod
    def training(work):
        """Context for a training loop using ``work``: one BLAS thread throughout when
        its batches are split between cores (BLAS threads spinning after a GEMM would
        take the second core from the split for ~0.1 s)."""
        return threads.serial_blas() if work.split_grads is not None else contextlib.nullcontext()

    @staticmethod
    def train_epoch(net, X, Y, idx, batch_size, optimizer, state, lr, metric_code, work, l2=0.0, l2_batch=0.0):
        """One epoch over rows ``idx``; updates net.params and ``state``; returns the mean loss."""
        mu, beta1, beta2, eps = hyperparameters(optimizer)
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
        if thresholds is not None and not np.any(thresholds):
            thresholds = None
        split_grads = work.split_grads if thresholds is None else None
        with _two_cores() if split_grads is not None else contextlib.nullcontext():
            loss, correct, state.t, counter = epoch.fit_epoch(
                X, Y, idx, batch_size,
                net.layer_sizes_array, net.activation_codes, net.alpha, net.loss_code, metric_code, int(acc_kind),
                net.clip_eps, net.params, work.grad, state.m, state.v, optimizer.code, lr, mu, beta1, beta2, eps,
                state.t, float(l2), 0.0, float(weight_decay) if weight_decay else None, thresholds,
                np.uint64(stream[0]), np.uint64(stream[1]),
                work.Xb, work.Yb, work.acts, work.deltas, work.gates, split_grads,
            )
        return loss, correct, int(counter)

    @staticmethod
    def evaluate(net, X, Y, idx, metric_code, acc_kind, work):
        """(mean loss, correct count) on rows ``idx`` of (X, Y), in chunks of the workspace's batch."""
        return epoch.evaluate(
            X, Y, idx, work.batch_size, net.layer_sizes_array, net.activation_codes, net.alpha, metric_code,
            int(acc_kind), net.clip_eps, net.params, work.Xb, work.Yb, work.acts,
        )

    @staticmethod
    def predict(net, X):
        """Network output (n, output_size) for a validated X."""
        sizes = net.layer_sizes_array
        n = X.shape[0]
        chunk = min(n, PREDICT_CHUNK)
        out = np.empty((n, sizes[-1]), dtype=net.dtype)
        if should_split(sizes, n, n, False):  # small enough that two blocks beat BLAS threads
            chunk = min(-(-n // split.PARTS), PREDICT_CHUNK)
            acts = np.empty(split.PARTS * chunk * int(np.sum(sizes[1:])), dtype=net.dtype)
            with _two_cores():
                split.split_predict(X, net.params, sizes, net.activation_codes, net.alpha, chunk, acts, out)
        else:
            acts = np.empty(chunk * int(np.sum(sizes[1:])), dtype=net.dtype)
            network.predict(X, net.params, sizes, net.activation_codes, net.alpha, chunk, acts, out)
        return out

    @staticmethod
    def mean_loss(A, Y, loss_code, clip_eps):
        return losses.loss_sum(A, Y, loss_code, clip_eps) / A.shape[0]

    @staticmethod
    def all_finite(a):
        return network.all_finite(a)
