"""Buffers and kernel calls behind ``fastnn.sklearn``: the estimators validate and keep
scikit-learn's bookkeeping; everything that touches the data or the weights is here.

Parameters are one flat buffer ``theta`` in the kernels' layout (W_0, b_0, W_1, b_1, ...);
``coefs_`` and ``intercepts_`` are views into it after a fit.
"""
import numpy as np
import scipy.sparse as sp

from . import dropout as _dropout, precompile as _precompile
from .fpu import flushing_subnormals
from ..kernels import codes, network, sk_epoch

HIDDEN_ACTIVATIONS = {
    "identity": codes.IDENTITY,
    "logistic": codes.SIGMOID,
    "tanh": codes.TANH,
    "relu": codes.RELU,
    "leaky_relu": codes.LEAKY_RELU,  # fastnn extension
    "elu": codes.ELU,  # fastnn extension
}
# Negative slope of leaky ReLU, scale of ELU (Keras's and PyTorch's defaults).
ACTIVATION_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}
# out_activation_ -> (activation code, loss code): each loss with its canonical link.
OUTPUTS = {
    "identity": (codes.IDENTITY, codes.SK_SQUARED_ERROR),
    "exp": (codes.EXP, codes.SK_POISSON),
    "logistic": (codes.SIGMOID, codes.SK_BINARY_LOG_LOSS),
    "softmax": (codes.SOFTMAX, codes.SK_LOG_LOSS),
}
# Rows x total layer width bound for the scratch of full-batch passes and predict.
WORK_ELEMENTS = 1 << 22


def kernel_array(a, dtype):
    """``a`` as a writable, aligned C-contiguous array of ``dtype``: one compiled
    signature per dtype.

    Read-only inputs (joblib's memmaps) and unaligned ones (buffers unpickled at an odd
    offset) are copied, since Numba compiles each as a separate type: a compilation
    instead of a cache load, in every worker process."""
    out = np.ascontiguousarray(a, dtype=dtype)
    return out if out.flags.writeable and out.flags.aligned else out.copy()


class Spec:
    """What the kernels need to know of a network: layer sizes, codes, dtype."""

    def __init__(self, layer_units, activation, out_activation, dtype):
        self.sizes = np.array(layer_units, dtype=np.int64)
        out_code, self.loss_code = OUTPUTS[out_activation]
        hidden = HIDDEN_ACTIVATIONS[activation]
        self.act_codes = np.array([hidden] * (len(layer_units) - 2) + [out_code], dtype=np.int64)
        self.act_alpha = float(ACTIVATION_ALPHA.get(activation, 0.0))
        self.dtype = np.dtype(dtype)
        self.clip_eps = float(np.finfo(self.dtype).eps)
        self.shapes = list(zip(layer_units[:-1], layer_units[1:]))
        self.n_params = sum(a * b + b for a, b in self.shapes)
        self.width = int(self.sizes[1:].sum())

    def pack(self, coefs, intercepts):
        """Flat theta (kernel layout) from lists of weights and biases."""
        parts = []
        for W, b in zip(coefs, intercepts):
            parts += [np.ravel(W), np.ravel(b)]
        return kernel_array(np.concatenate(parts), self.dtype)

    def unpack(self, theta):
        """(coefs, intercepts): views into theta."""
        coefs, intercepts, off = [], [], 0
        for a, b in self.shapes:
            coefs.append(theta[off : off + a * b].reshape(a, b))
            off += a * b
            intercepts.append(theta[off : off + b])
            off += b
        return coefs, intercepts

    def sklearn_order(self):
        """Permutation p with theta[p] = scikit-learn's packing (all weights, then all biases)."""
        w_parts, b_parts, off = [], [], 0
        for a, b in self.shapes:
            w_parts.append(np.arange(off, off + a * b))
            off += a * b
            b_parts.append(np.arange(off, off + b))
            off += b
        return np.concatenate(w_parts + b_parts)


class Data:
    """Training inputs in the kernels' form: dense X, or CSR parts gathered per batch."""

    def __init__(self, X, Y, sample_weight, dtype):
        if sp.issparse(X):
            X = sp.csr_matrix(X)  # CSC -> CSR (a copy); CSR stays as is
            self.X = np.empty((0, 0), dtype=dtype)
            self.data = kernel_array(X.data, dtype)
            self.indices = kernel_array(X.indices, np.int64)
            self.indptr = kernel_array(X.indptr, np.int64)
        else:
            self.X = kernel_array(X, dtype)
            self.data = np.empty(0, dtype=dtype)
            self.indices = self.indptr = np.empty(0, dtype=np.int64)
        self.Y = kernel_array(Y, dtype)
        self.sw = np.empty(0, dtype=dtype) if sample_weight is None else kernel_array(sample_weight, dtype)
        self.n = X.shape[0]


class Workspace:
    """Scratch for batches (or chunks) of at most ``rows`` rows."""

    def __init__(self, spec, rows, dropout=False):
        _precompile.announce("sklearn", spec.dtype)
        dt = spec.dtype
        self.rows = rows
        self.Xb = np.empty(rows * int(spec.sizes[0]), dtype=dt)
        self.Yb = np.empty(rows * int(spec.sizes[-1]), dtype=dt)
        self.swb = np.empty(rows, dtype=dt)
        self.acts = np.empty(rows * spec.width, dtype=dt)
        self.deltas = np.empty(rows * spec.width, dtype=dt)
        self.grad = np.empty(spec.n_params, dtype=dt)
        self.gchunk = np.empty(spec.n_params, dtype=dt)
        # M * f'(Z) of the hidden layers, kept by the dropout forward pass for the backward one.
        self.gates = np.empty(rows * (spec.width - int(spec.sizes[-1])) if dropout else 0, dtype=dt)


def chunk_rows(spec, n):
    return int(max(1, min(n, WORK_ELEMENTS // max(spec.width, 1))))


def train_epoch(spec, data, idx, batch_size, theta, opt, alpha, work, thresholds=None, stream=(0, 0)):
    """One epoch over rows ``idx``: updates theta and the optimizer state. ``thresholds``
    (L - 1,) int64 with ``stream`` = (key, counter) for dropout, None for none (the
    workspace then needs no gates). Returns (the loss, the stream's new counter)."""
    thresholds = _dropout.kernel_thresholds(thresholds)
    with flushing_subnormals():
        loss, opt.t, counter = sk_epoch.sk_train_epoch(
            data.X, data.data, data.indices, data.indptr, data.Y, data.sw, idx, batch_size,
            spec.sizes, spec.act_codes, spec.act_alpha, spec.loss_code, spec.clip_eps,
            theta, work.grad, opt.m, opt.v, opt.code, float(opt.learning_rate), opt.mu,
            opt.beta1, opt.beta2, opt.eps, opt.t, float(alpha),
            thresholds, np.uint64(stream[0]), np.uint64(stream[1]),
            work.Xb, work.Yb, work.swb, work.acts, work.deltas, work.gates,
        )
    return float(loss), int(counter)


def loss_grad(spec, data, idx, theta, alpha, work):
    """Full-batch loss; the gradient is left in ``work.grad``."""
    with flushing_subnormals():
        return float(sk_epoch.sk_loss_grad(
            data.X, data.data, data.indices, data.indptr, data.Y, data.sw, idx, work.rows,
            spec.sizes, spec.act_codes, spec.act_alpha, spec.loss_code, spec.clip_eps, theta, float(alpha),
            work.Xb, work.Yb, work.swb, work.acts, work.deltas, work.gchunk, work.grad,
        ))


def predict(spec, theta, X):
    """Network output (n, n_outputs) for a validated X (dense or sparse), in chunks."""
    _precompile.announce("sklearn", spec.dtype)
    n = X.shape[0]
    chunk = chunk_rows(spec, n)
    acts = np.empty(chunk * spec.width, dtype=spec.dtype)
    out = np.empty((n, int(spec.sizes[-1])), dtype=spec.dtype)
    if not sp.issparse(X):
        X = kernel_array(X, spec.dtype)
        with flushing_subnormals():
            network.predict(X, theta, spec.sizes, spec.act_codes, spec.act_alpha, chunk, acts, out)
        return out
    X = sp.csr_matrix(X)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        # Densify one chunk at a time: never the whole matrix.
        Xc = kernel_array(X[start:stop].toarray(), spec.dtype)
        with flushing_subnormals():
            network.predict(Xc, theta, spec.sizes, spec.act_codes, spec.act_alpha, chunk, acts, out[start:stop])
    return out


class Optimizer:
    """scikit-learn's SGDOptimizer / AdamOptimizer state over the flat parameter buffer."""

    def __init__(self, est, n_params, dtype):
        self.learning_rate_init = float(est.learning_rate_init)
        self.learning_rate = float(est.learning_rate_init)
        self.t = 0
        self.m = np.zeros(n_params, dtype=dtype)
        if est.solver == "adam":
            self.code, self.lr_schedule, self.power_t = codes.ADAM, "constant", 0.0
            self.mu = 0.0
            self.beta1, self.beta2, self.eps = float(est.beta_1), float(est.beta_2), float(est.epsilon)
            self.v = np.zeros(n_params, dtype=dtype)
        else:
            # Always the momentum rules: with momentum 0 they reduce to plain SGD, as in scikit-learn.
            self.code = codes.NESTEROV if est.nesterovs_momentum else codes.MOMENTUM
            self.lr_schedule, self.power_t = est.learning_rate, float(est.power_t)
            self.mu = float(est.momentum)
            self.beta1, self.beta2, self.eps = 0.9, 0.999, 1e-8
            self.v = np.zeros(0, dtype=dtype)

    def iteration_ends(self, time_step):
        if self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        if self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False
