"""The scikit-learn face's adapter to the engine (``fastnn._core.engine``): the estimators
validate and keep scikit-learn's bookkeeping; this module states their network in the
engine's terms and their objective, and calls the engine.

Its objective: scikit-learn's losses (half squared error, half Poisson deviance, the
log losses: codes.SK_*), summed with sample weights and divided by the batch's weight
sum; ``alpha`` is the engine's ``l2_summed`` (0.5 alpha sum(W^2) / sum(w)). The loss
reported is the one trained, measured before each batch's update.

``compute_dtype='bfloat16'`` (float32 networks): the minibatch epochs and the outputs
(``predict``, and so early stopping's validation scores) run on the bfloat16 kernels
(``fastnn._core.bf16``, imported only then), the same objective with bfloat16 matrix
products. Those kernels have no full-batch loss and gradient (L-BFGS).
"""
import contextlib

import numpy as np
import scipy.sparse as sp

from . import engine, precompile as _precompile, tables
from ..kernels import codes

# scikit-learn's names of the hidden activations -> the engine's (fastnn._core.tables).
HIDDEN_ACTIVATIONS = {
    "identity": "identity",
    "logistic": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "leaky_relu": "leaky_relu",  # fastnn extension
    "elu": "elu",  # fastnn extension
}
# out_activation_ -> (activation code, loss code): each loss with its canonical link.
OUTPUTS = {
    "identity": (codes.IDENTITY, codes.SK_SQUARED_ERROR),
    "exp": (codes.EXP, codes.SK_POISSON),
    "logistic": (codes.SIGMOID, codes.SK_BINARY_LOG_LOSS),
    "softmax": (codes.SOFTMAX, codes.SK_LOG_LOSS),
}
# The estimators' data in the kernels' form: X dense or sparse (CSR parts), as the engine takes it.
data = engine.data
# Context for the epochs of one stochastic fit: split between cores or one BLAS thread, as the engine says.
training = engine.training
# scikit-learn's message when a fit ends with non-finite weights (a bfloat16 epoch stops
# before writing them, and says the same).
NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large values and need to be "
              "preprocessed.")


class Spec(engine.Spec):
    """A network described with scikit-learn's names (hidden ``activation``,
    ``out_activation_``); ``loss_code`` is the loss that goes with its output, and
    ``compute_dtype`` the precision of its matrix products (None: ``dtype``'s)."""

    def __init__(self, layer_units, activation, out_activation, dtype, compute_dtype=None):
        out_code, self.loss_code = OUTPUTS[out_activation]
        hidden = tables.ACTIVATIONS[HIDDEN_ACTIVATIONS[activation]]
        alpha = tables.DEFAULT_ALPHA.get(HIDDEN_ACTIVATIONS[activation], 0.0)
        super().__init__(layer_units, [hidden] * (len(layer_units) - 2) + [out_code], alpha, dtype)
        if compute_dtype is not None and self.dtype != np.float32:
            # The estimator checks its fit; this catches weights fitted in float64 and then
            # asked for bfloat16 (set_params) to predict or to continue.
            raise ValueError(f"compute_dtype={compute_dtype!r} computes with float32 weights; these are "
                             f"{self.dtype.name}: refit with compute_dtype={compute_dtype!r} (or predict with "
                             "compute_dtype=None).")
        self.compute_dtype = compute_dtype

    def sk_objective(self, alpha):
        return self.objective(self.loss_code, l2_summed=alpha)


def require(compute_dtype):
    """Check that matrix products in ``compute_dtype`` can run here (None always can):
    raises ``fastnn.BFloat16Unavailable`` saying what is missing. Loads oneDNN."""
    if compute_dtype is not None:
        _bf16()


def _bf16():
    """``fastnn._core.bf16`` with its kernels loaded (imported only when asked for)."""
    from . import bf16

    bf16.kernels()
    return bf16


def workspace(spec, rows, dropout=False, epoch_rows=None, splittable=False):
    """Scratch for batches (or chunks) of at most ``rows`` rows. With ``epoch_rows``, the
    rows of an epoch, and ``splittable`` data (dense rows, unit weights, no weight decay)
    each batch's rows may be split between two cores (``engine.should_split``); run the
    epochs inside ``training(work)``."""
    if spec.compute_dtype is not None:
        return _bf16().workspace(spec, rows, dropout)
    _precompile.announce("sklearn", spec.dtype)
    split = splittable and engine.should_split(spec.sizes, rows, epoch_rows, dropout)
    return engine.Workspace(spec, rows, dropout, split)


def lbfgs_workspace(spec, n):
    """Scratch for L-BFGS's ``loss_grad`` over n rows, in chunks; made to split the rows
    between two cores when ``engine.should_split_full_batch`` says it pays (then use it
    inside ``lbfgs_calls``)."""
    _precompile.announce("sklearn", spec.dtype)
    return engine.Workspace(spec, spec.chunk_rows(n), split_batch=engine.should_split_full_batch(spec.sizes, n))


def lbfgs_calls(work):
    """Context for the ``loss_grad`` calls of one L-BFGS fit with ``work``: when they are
    split, one BLAS thread, and the helper thread lives until the end of the block."""
    return engine.splitting(work) if work.split_grads is not None else contextlib.nullcontext()


def train_epoch(spec, data, idx, batch_size, theta, opt, alpha, work, thresholds=None, stream=(0, 0)):
    """One epoch over rows ``idx``: updates theta and the optimizer state. ``thresholds``
    (L - 1,) int64 with ``stream`` = (key, counter) for dropout, None for none (the
    workspace then needs no gates). Returns (the loss, the stream's new counter).

    In bfloat16 (``spec.compute_dtype``) the epoch is guarded (kernels/guard.py): a batch
    whose loss or update is not finite stops it with scikit-learn's ValueError (NON_FINITE),
    the weights left at the last finite step."""
    state = opt.state
    if spec.compute_dtype is not None:
        bf16 = _bf16()
        loss, _, state.t, counter, status = bf16.fit_epoch(
            spec, theta, data, idx, batch_size, spec.sk_objective(alpha),
            engine.optimizer(opt, state, opt.learning_rate), engine.decay(opt.weight_decay),
            engine.dropout(thresholds, stream), work, engine.NEVER_STOP,
        )
        if status == codes.DIVERGED:
            raise ValueError(NON_FINITE)
        return loss, counter
    loss, _, state.t, counter, _ = engine.fit_epoch(
        spec, theta, data, idx, batch_size, spec.sk_objective(alpha), engine.optimizer(opt, state, opt.learning_rate),
        engine.decay(opt.weight_decay), engine.dropout(thresholds, stream), work,
    )
    return loss, counter


def loss_grad(spec, data, idx, theta, alpha, work):
    """Full-batch loss; the gradient is left in ``work.grad``."""
    return engine.loss_grad(spec, theta, data, idx, spec.sk_objective(alpha), work)


def predict(spec, theta, X):
    """Network output (n, n_outputs) for a validated X (dense or sparse), in chunks, with
    the products in ``spec.compute_dtype``."""
    if spec.compute_dtype is not None:
        forward = _bf16().predict
    else:
        _precompile.announce("sklearn", spec.dtype)
        forward = engine.predict
    if not sp.issparse(X):
        return forward(spec, theta, engine.kernel_array(X, spec.dtype))
    X = sp.csr_matrix(X)
    n = X.shape[0]
    chunk = spec.chunk_rows(n)
    out = np.empty((n, int(spec.sizes[-1])), dtype=spec.dtype)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        # Densify one chunk at a time: never the whole matrix.
        out[start:stop] = forward(spec, theta, engine.kernel_array(X[start:stop].toarray(), spec.dtype))
    return out


class Optimizer:
    """scikit-learn's SGDOptimizer / AdamOptimizer: the rule and its hyperparameters (the
    attribute names of ``fastnn.optimizers``' objects), the learning-rate schedule, and
    the engine's optimizer state over the flat parameter buffer (``state``)."""

    def __init__(self, est, n_params, dtype):
        self.learning_rate_init = float(est.learning_rate_init)
        self.learning_rate = float(est.learning_rate_init)
        self.weight_decay = float(est.weight_decay)
        if est.solver == "adam":
            self.code, self.lr_schedule, self.power_t = codes.ADAM, "constant", 0.0
            self.momentum = 0.0
            self.beta1, self.beta2, self.epsilon = float(est.beta_1), float(est.beta_2), float(est.epsilon)
        else:
            # Always the momentum rules: with momentum 0 they reduce to plain SGD, as in scikit-learn.
            self.code = codes.NESTEROV if est.nesterovs_momentum else codes.MOMENTUM
            self.lr_schedule, self.power_t = est.learning_rate, float(est.power_t)
            self.momentum = float(est.momentum)
            self.beta1, self.beta2, self.epsilon = 0.9, 0.999, 1e-8
        self.state = engine.OptimizerState(self, n_params, dtype)

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
