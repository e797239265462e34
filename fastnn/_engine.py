"""The kernel engine: allocates work buffers once and calls the compiled kernels.

``fastnn.reference.NumpyEngine`` has the same methods, written in plain NumPy; a
network picks its engine through its class, so the public API is shared.
"""
import numpy as np

from .kernels import epoch, losses, network

# Rows per forward chunk in predict: keeps the scratch for wide layers bounded.
PREDICT_CHUNK = 4096


def hyperparameters(optimizer):
    """(mu, beta1, beta2, eps) of an optimizer object, with neutral values where unused."""
    return (
        float(getattr(optimizer, "momentum", 0.0)),
        float(getattr(optimizer, "beta1", 0.9)),
        float(getattr(optimizer, "beta2", 0.999)),
        float(getattr(optimizer, "epsilon", 1e-8)),
    )


class Workspace:
    """Scratch buffers for training with batches of at most ``batch_size`` rows."""

    def __init__(self, sizes, batch_size, dtype, dropout=False):
        width = int(np.sum(sizes[1:]))
        self.batch_size = batch_size
        self.Xb = np.empty(batch_size * sizes[0], dtype=dtype)
        self.Yb = np.empty(batch_size * sizes[-1], dtype=dtype)
        self.acts = np.empty(batch_size * width, dtype=dtype)
        self.deltas = np.empty(batch_size * width, dtype=dtype)
        self.grad = np.empty(int(sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))), dtype=dtype)
        # M * f'(Z) of the hidden layers, kept by the dropout forward pass for the backward one.
        self.gates = np.empty(batch_size * int(np.sum(sizes[1:-1])) if dropout else 0, dtype=dtype)


class KernelEngine:
    name = "fastnn"

    @staticmethod
    def workspace(net, batch_size, dropout=False):
        return Workspace(net.layer_sizes_array, batch_size, net.dtype, dropout)

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
        loss, correct, state.t, counter = epoch.fit_epoch(
            X, Y, idx, batch_size,
            net.layer_sizes_array, net.activation_codes, net.alpha, net.loss_code, metric_code, int(acc_kind),
            net.clip_eps, net.params, work.grad, state.m, state.v, optimizer.code, lr, mu, beta1, beta2, eps,
            state.t, float(l2), 0.0, float(weight_decay) if weight_decay else None, thresholds, np.uint64(stream[0]), np.uint64(stream[1]),
            work.Xb, work.Yb, work.acts, work.deltas, work.gates,
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
        chunk = min(X.shape[0], PREDICT_CHUNK)
        acts = np.empty(chunk * int(np.sum(sizes[1:])), dtype=net.dtype)
        out = np.empty((X.shape[0], sizes[-1]), dtype=net.dtype)
        network.predict(X, net.params, sizes, net.activation_codes, net.alpha, chunk, acts, out)
        return out

    @staticmethod
    def mean_loss(A, Y, loss_code, clip_eps):
        return losses.loss_sum(A, Y, loss_code, clip_eps) / A.shape[0]

    @staticmethod
    def all_finite(a):
        return network.all_finite(a)
