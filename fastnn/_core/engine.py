"""The engine behind both faces: one description of a network (``Spec``), the data and
the optimizer in the kernels' form, one ``Workspace``, and the calls of the compiled
kernels (kernels/epoch.py, kernels/split.py, kernels/network.py).

The faces are adapters: ``tutorial_engine.KernelEngine`` (NeuralNetwork, Trainer) and
``sk_engine`` (MLPClassifier, MLPRegressor) state their objective (``Spec.objective``)
and bring their data; everything that touches the data or the weights is here.
Parameters are one flat buffer ``theta`` in the kernels' layout (W_0, b_0, W_1, b_1, ...).
"""
import contextlib
import time

import numpy as np

from . import buffers, products, split as _split, threads
from .dropout import kernel_thresholds
from .fpu import flushing_subnormals
from .validation import issparse
from ..kernels import codes, epoch, losses, network, split
from ..kernels.bundles import Data, Dropout, Net, Optimizer, Scratch, SklearnObjective, TutorialObjective

# Rows x total layer width of the scratch of full-batch passes and predict: bounds the
# memory of wide layers, and keeps small ones in one chunk.
WORK_ELEMENTS = 1 << 22
# Below this many multiply-adds per epoch (rows x weights), handing a block to the
# helper thread (~40 us) costs more than splitting the batch gains.
SPLIT_MIN_MACS = 1_000_000
# L-BFGS's loss and gradient (``loss_grad``) is compared with the one-core kernel on
# BLAS's own threads: at 1.2-1.4M multiply-adds per call the split won or lost by turns
# (a 300 x 64 -> 64 fit 0.8x), from 1.9M on it won (a 1000 x 64 -> 32 fit 1.5x, digits
# 1.4x): docs/performance.md, "L-BFGS on two cores".
LBFGS_SPLIT_MIN_MACS = 2_000_000
# Elements per chunk of a guarded epoch's full check of an update (kernels/guard.py):
# three chunk buffers of this size, a few KiB, instead of copies of the state.
GUARD_CHUNK = 1024
# Stop flags that never stop an epoch: a guard's requests (0) never reach 2**62. Every
# tutorial epoch takes a guard (float32/float64 and bfloat16 engines alike), so that its
# kernel compiles once per dtype.
NEVER_STOP = np.array([0, 1 << 62], dtype=np.int64)


def kernel_array(a, dtype):
    """``a`` as a writable, aligned C-contiguous array of ``dtype``: one compiled
    signature per dtype.

    Read-only inputs (joblib's memmaps) and unaligned ones (buffers unpickled at an odd
    offset) are copied, since Numba compiles each as a separate type: a compilation
    instead of a cache load, in every worker process."""
    out = np.ascontiguousarray(a, dtype=dtype)
    return out if out.flags.writeable and out.flags.aligned else out.copy()


class Spec:
    """What the kernels need to know of a network: layer sizes, activation codes (the last
    one the output's), the leaky ReLU / ELU ``alpha``, the dtype."""

    def __init__(self, layer_units, act_codes, alpha, dtype):
        self.sizes = np.array(layer_units, dtype=np.int64)
        self.act_codes = np.array(act_codes, dtype=np.int64)
        self.alpha = float(alpha)
        self.dtype = np.dtype(dtype)
        # Logs take probabilities clipped to [eps, 1 - eps] (scikit-learn's choice).
        self.clip_eps = float(np.finfo(self.dtype).eps)
        self.shapes = list(zip(self.sizes[:-1].tolist(), self.sizes[1:].tolist()))
        self.n_params = sum(a * b + b for a, b in self.shapes)
        self.width = int(self.sizes[1:].sum())

    def net(self, theta):
        return Net(theta, self.sizes, self.act_codes, self.alpha)

    def objective(self, loss_code, metric_code=None, acc_kind=0, l2=0.0, l2_summed=0.0):
        """The objective bundle of a fit (``kernels/bundles.py``): train ``loss_code``,
        report ``metric_code`` (default: the same), count ``acc_kind``; L2 terms ``l2`` on
        the mean loss (the tutorial's) and ``l2_summed`` on the summed one (scikit-learn's
        alpha). Its type is the family of the codes: the tutorial's, or scikit-learn's
        codes.SK_*."""
        metric_code = loss_code if metric_code is None else metric_code
        family = SklearnObjective if loss_code >= codes.SK_SQUARED_ERROR else TutorialObjective
        if (metric_code >= codes.SK_SQUARED_ERROR) != (family is SklearnObjective):
            raise ValueError(f"metric code {metric_code} is not of the family of loss code {loss_code}")
        return family(int(loss_code), int(metric_code), int(acc_kind), self.clip_eps, float(l2), float(l2_summed))

    def chunk_rows(self, n):
        """Rows per chunk of a full-batch pass or prediction over n rows."""
        return int(max(1, min(n, WORK_ELEMENTS // max(self.width, 1))))

    def pack(self, coefs, intercepts):
        """Flat theta (kernel layout) from lists of weights and biases."""
        parts = []
        for W, b in zip(coefs, intercepts):
            parts += [np.ravel(W), np.ravel(b)]
        theta = buffers.empty(self.n_params, self.dtype, buffers.PARAMS)
        np.concatenate(parts, out=theta)  # straight into the placed buffer, cast on the way
        return theta

    def unpack(self, theta):
        """(weights, biases): lists of views into theta, (d_in, d_out) and (d_out,)."""
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


# -- the kernels' arguments ------------------------------------------------------------------
def dense_data(X, Y, sample_weight=None):
    """``kernels.bundles.Data`` of validated dense arrays, used as they are."""
    dt = X.dtype
    sw = np.empty(0, dtype=dt) if sample_weight is None else sample_weight
    no_index = np.empty(0, dtype=np.int64)
    return Data(X, np.empty(0, dtype=dt), no_index, no_index, Y, sw)


def data(X, Y, sample_weight, dtype):
    """``kernels.bundles.Data`` of X (dense, or a SciPy sparse matrix: kept as CSR parts and
    gathered a batch at a time, never densified whole), Y and optional sample weights,
    copied where the kernels need another dtype or layout."""
    sw = None if sample_weight is None else kernel_array(sample_weight, dtype)
    Y = kernel_array(Y, dtype)
    if not issparse(X):
        return dense_data(kernel_array(X, dtype), Y, sw)
    X = X.tocsr()  # CSC -> CSR (a copy); CSR stays as is
    indices, indptr = kernel_array(X.indices, np.int64), kernel_array(X.indptr, np.int64)
    sw = np.empty(0, dtype=dtype) if sw is None else sw
    return Data(np.empty((0, 0), dtype=dtype), kernel_array(X.data, dtype), indices, indptr, Y, sw)


def hyperparameters(optimizer):
    """(mu, beta1, beta2, eps) of an optimizer object, with neutral values where unused."""
    return (
        float(getattr(optimizer, "momentum", 0.0)),
        float(getattr(optimizer, "beta1", 0.9)),
        float(getattr(optimizer, "beta2", 0.999)),
        float(getattr(optimizer, "epsilon", 1e-8)),
    )


def optimizer(optimizer, state, lr):
    """``kernels.bundles.Optimizer``: the rule and hyperparameters of ``optimizer`` (an
    object with ``code`` and, as they apply, momentum, beta1, beta2, epsilon), its state
    (``fastnn.optimizers.OptimizerState``) and the learning rate of this call."""
    mu, beta1, beta2, eps = hyperparameters(optimizer)
    return Optimizer(int(optimizer.code), state.m, state.v, int(state.t), float(lr), mu, beta1, beta2, eps)


def dropout(thresholds, stream):
    """``kernels.bundles.Dropout`` for ``thresholds`` (L - 1,) int64 and ``stream`` = (key,
    counter), or None when no layer drops anything (``dropout.kernel_thresholds``)."""
    thresholds = kernel_thresholds(thresholds)
    return None if thresholds is None else Dropout(thresholds, np.uint64(stream[0]), np.uint64(stream[1]))


def decay(weight_decay):
    """Decoupled weight decay for the kernels: None (not 0) when off, which prunes its code."""
    return float(weight_decay) if weight_decay else None


class OptimizerState:
    """Moment buffers m (velocity for momentum), v and the update count t of one optimizer
    (an object with a ``code``: ``fastnn.optimizers``' or the scikit-learn face's) over a
    flat parameter buffer of ``size`` elements."""

    def __init__(self, optimizer, size: int, dtype):
        self.optimizer = optimizer
        self.m = buffers.zeros(size, dtype, buffers.FIRST_MOMENT)
        self.v = buffers.zeros(size if optimizer.code == codes.ADAM else 0, dtype, buffers.SECOND_MOMENT)
        self.t = 0

    def matches(self, optimizer, size, dtype) -> bool:
        return self.optimizer == optimizer and self.m.size == size and self.m.dtype == dtype


# -- scratch -----------------------------------------------------------------------------------
def should_split(sizes, batch_size, epoch_rows, dropout):
    """Whether to train on 2 cores by splitting each batch's rows (``kernels.split``)
    rather than with BLAS's threads: for epochs without dropout whose steps are big
    enough to pay for the hand-off, full batches (the tutorial's epoch takes half the
    time) and minibatches below ``threads.SMALL_STEP_MACS`` (above it BLAS's own threads
    do better), when fastnn may use 2 cores (docs/performance.md, "Minibatches split
    between two cores")."""
    if epoch_rows is None or dropout or batch_size < split.PARTS or not threads.can_split():
        return False
    macs = threads.forward_macs(sizes, batch_size)
    return macs >= SPLIT_MIN_MACS and (batch_size >= epoch_rows or macs < threads.SMALL_STEP_MACS)


def should_split_full_batch(sizes, rows):
    """Whether L-BFGS's loss and gradient over ``rows`` rows (``loss_grad``) runs on 2
    cores, each summing the gradient of one block of rows (``kernels.split``'s LOSS_GRAD):
    when fastnn may use 2 cores and a call is large enough to pay for the hand-off."""
    return rows >= split.PARTS and threads.forward_macs(sizes, rows) >= LBFGS_SPLIT_MIN_MACS and threads.can_split()


class Workspace:
    """Scratch for batches (or chunks) of at most ``rows`` rows; ``dropout`` adds the
    dropout gates, ``split`` the buffers of ``kernels.split``'s two-core batches (and of
    its L-BFGS blocks: ``loss_grad`` over any number of rows, each block ``block_rows``
    at a time)."""

    def __init__(self, spec, rows, dropout=False, split_batch=False):
        dt = spec.dtype
        # Split batches: each block its own share (rows rounded up to whole blocks).
        self.block_rows = -(-rows // split.PARTS)
        alloc_rows = split.PARTS * self.block_rows if split_batch else rows
        n_acts = alloc_rows * spec.width
        self.rows = rows
        self.step_macs = threads.forward_macs(spec.sizes, rows)
        self.scratch = Scratch(
            Xb=buffers.empty(alloc_rows * int(spec.sizes[0]), dt, buffers.BATCH),
            Yb=np.empty(alloc_rows * int(spec.sizes[-1]), dtype=dt),
            swb=np.empty(alloc_rows, dtype=dt),
            acts=buffers.empty(n_acts, dt, buffers.ACTIVATIONS),
            deltas=buffers.empty(n_acts, dt, buffers.DELTAS),
            # M * f'(Z) of the hidden layers, kept by the dropout forward pass for the backward one.
            gates=np.empty(rows * (spec.width - int(spec.sizes[-1])) if dropout else 0, dtype=dt),
            grad=buffers.empty(spec.n_params, dt, buffers.GRADIENT),
            check=np.empty(3 * GUARD_CHUNK, dtype=dt),
        )
        self.grad = self.scratch.grad
        self.chunk_scratch = None  # loss_grad's: a gradient buffer per chunk (per block when split; made at its first call)
        # Each block's gradient, before they are added (None: no split).
        self.split_grads = np.empty((split.PARTS, spec.n_params), dtype=dt) if split_batch else None
        self.checked_rows, self.rows_in_order = None, False  # the last idx checked, and whether it is every row in order
        self.batch_views = None  # (rows, d) views of Xb, Yb that split epochs gather batches into
        self.helper = None  # the split's helper thread (fastnn._core.split)
        self.training = False  # inside a training block: the helper may outlive an epoch
        self.pace = None  # inside a training block: whether the helper joins the next call (split.Pace)
        self.blas_pace = None  # inside a training block of wide steps on OpenBLAS: their threads (busy.Pace)
        # The tutorial's test set and its buffers (a split.Test), predicted after each split
        # epoch; None (the scikit-learn face): split_run compiled without predictions.
        self.test = None
        self.no_batch = None  # L-BFGS's stand-ins for the epochs' batch arrays (never read)

    def nbytes(self):
        """Bytes of its scratch buffers."""
        return sum(a.nbytes for a in self.scratch)

    def set_test(self, spec, X):
        """Buffers for predicting X (None: no test set) in two blocks (``split_run``)."""
        X = np.empty((0, int(spec.sizes[0])), dtype=spec.dtype) if X is None else X
        chunk = max(1, min(-(-X.shape[0] // split.PARTS), spec.chunk_rows(X.shape[0])))
        acts = np.empty(split.PARTS * chunk * spec.width if X.shape[0] else 0, dtype=spec.dtype)
        self.test = split.Test(X, chunk, acts, np.empty((X.shape[0], int(spec.sizes[-1])), dtype=spec.dtype))

    def stop_helper(self):
        if self.helper is not None:
            self.helper.stop()
            self.helper = None


def reusable(work):
    """Whether a training call's workspace may serve the next call with the same network,
    batch rows, dropout and data (``fastnn._core.kept``): a one-core workspace holds
    scratch only, which every step writes before it reads; a split one holds the helper
    thread and the rows it checked, a bfloat16 one its twins, and they are made afresh."""
    return type(work) is Workspace and work.split_grads is None and not hasattr(work, "half")


@contextlib.contextmanager
def splitting(work):
    """Context for a training call whose batches are split between cores (``work`` made
    with ``split_batch``): one BLAS thread throughout (OpenBLAS threads spin for a while
    after a GEMM, taking the second core from the split), and the split's helper thread
    lives until the end of the block, never longer."""
    with threads.serial_blas():
        work.training, work.pace = True, _split.Pace()
        try:
            yield
        finally:
            work.training, work.pace = False, None
            work.stop_helper()


def training(work):
    """Context for a training loop with ``work``: ``splitting`` when its batches are split
    between cores, else one BLAS thread for small steps (``threads.SMALL_STEP_MACS``), and
    for wide ones ``products.wide_training``."""
    if work.split_grads is not None:
        return splitting(work)
    if work.step_macs < threads.SMALL_STEP_MACS:
        return threads.serial_blas()
    return products.wide_training(work)



# -- the calls ---------------------------------------------------------------------------------
def fit_epoch(spec, theta, data, idx, batch_size, objective, optimizer, decay, dropout, work, stop=None):
    """One epoch over rows ``idx`` (``kernels.epoch.fit_epoch``, or split between two cores
    when the workspace was made for that and the epoch has no dropout, no sample weights
    and dense rows). Updates theta and the optimizer's m, v in place. ``stop``: (2,) int64
    stop flags (``kernels/guard.py``: stop between batches when asked, never write a
    non-finite value), or None for no guard. Returns (mean loss over the rows trained on, correct count, new t, new
    counter, status: kernels.guard.COMPLETE, STOPPED or DIVERGED)."""
    if work.split_grads is not None and dropout is None and data.sw.size == 0 and data.indptr.size == 0:
        return _split_epoch(spec, theta, data, idx, batch_size, objective, optimizer, decay, work, stop)
    pace = work.blas_pace
    if pace is not None:
        pace.before_epoch()
    with flushing_subnormals():
        loss, correct, t, counter, status = epoch.fit_epoch(data, idx, batch_size, spec.net(theta), objective,
                                                            optimizer, decay, dropout, work.scratch, stop)
    if pace is not None:
        pace.after_epoch()
    return float(loss), float(correct), int(t), int(counter), int(status)


def loss_grad(spec, theta, data, idx, objective, work):
    """J over all rows ``idx`` as one batch; its gradient is left in ``work.grad``. Split
    between two cores when the workspace was made for that (``should_split_full_batch``)."""
    if objective.metric_code != objective.loss_code:
        raise ValueError("loss_grad measures the loss it differentiates: metric_code must be loss_code")
    if work.split_grads is not None:
        return _split_loss_grad(spec, theta, data, idx, objective, work)
    if work.chunk_scratch is None:  # each chunk's gradient goes to a buffer of its own
        work.chunk_scratch = work.scratch._replace(grad=np.empty(spec.n_params, dtype=spec.dtype))
    with flushing_subnormals():
        return float(epoch.loss_grad(data, idx, work.rows, spec.net(theta), objective, work.chunk_scratch, work.grad))


def evaluate(spec, theta, data, idx, objective, work):
    """(weighted mean metric loss, correct count) on rows ``idx``, chunks of the workspace's rows."""
    with flushing_subnormals():
        return epoch.evaluate(data, idx, work.rows, spec.net(theta), objective, work.scratch)


def mean_loss(A, Y, loss_code, clip_eps):
    """The mean loss of outputs A against targets Y (unit weights)."""
    return losses.loss_sum(A, Y, np.empty(0, dtype=A.dtype), loss_code, clip_eps) / A.shape[0]


def all_finite(a):
    """Whether every value of ``a`` is finite."""
    return network.all_finite(a)


def predict(spec, theta, X):
    """Network output (n, d_L) for a validated dense X of the spec's dtype, in chunks."""
    n = X.shape[0]
    chunk = spec.chunk_rows(n)
    out = np.empty((n, int(spec.sizes[-1])), dtype=spec.dtype)
    acts = np.empty(chunk * spec.width, dtype=spec.dtype)
    with flushing_subnormals():
        network.predict(X, theta, spec.sizes, spec.act_codes, spec.alpha, chunk, acts, out)
    return out


def predict_test(spec, theta, work):
    """The output for the split training call's test set, in two blocks on two cores."""
    h = work.helper
    with threads.serial_blas(), flushing_subnormals():
        split.split_run(split.PREDICT, h.ctrl, h.results, *h.args, *h.rest)
    return work.test.out.copy()


# split_run's rows for an epoch over X, Y in order, as they are (writable: a read-only array
# would be another type to Numba, another compile).
IN_ORDER = np.empty(0, dtype=np.int64)


def _split_epoch(spec, theta, data, idx, batch_size, objective, optimizer, decay, work, stop):
    """``fit_epoch`` (dense rows, unit weights, no dropout) with each batch's two blocks of
    rows on two cores. Returns (mean loss, correct count, new t, counter 0, status)."""
    X, Y = data.X, data.Y
    if work.checked_rows is not idx:  # the tutorial passes the same rows every epoch: checked once
        work.checked_rows, work.rows_in_order = idx, _is_identity(idx, X)
    if work.rows_in_order:  # batches are slices of X, Y: nothing to gather (no rows)
        Xs, Ys, rows = X, Y, IN_ORDER
    else:
        if work.batch_views is None:  # the same views every epoch (see BlockHelper.serves)
            b = work.rows
            work.batch_views = (work.scratch.Xb[: b * X.shape[1]].reshape(b, X.shape[1]),
                                work.scratch.Yb[: b * Y.shape[1]].reshape(b, Y.shape[1]))
        (Xs, Ys), rows = work.batch_views, idx
    args = (spec.net(theta), objective, _blocks(work, Xs, Ys, work.scratch), work.test)
    # No gradient argument: the epochs' variant of split_run (its gradient is blocks.scratch.grad, work.grad).
    rest = (data, rows, batch_size, optimizer, decay, None, stop)
    loss, correct, t, status = _split_call(split.EPOCH, work, args, rest)
    return float(loss), float(correct), int(t), 0, int(status)


def _split_loss_grad(spec, theta, data, idx, objective, work):
    """``loss_grad`` with the rows in two blocks on two cores (``split_run``'s LOSS_GRAD),
    each block ``work.block_rows`` at a time. Returns J; the gradient is in work.grad."""
    if work.chunk_scratch is None:  # each block's chunk gradient goes to its share of a buffer of its own
        work.chunk_scratch = work.scratch._replace(grad=np.empty(split.PARTS * spec.n_params, dtype=spec.dtype))
    if work.no_batch is None:  # the epochs' batch arrays Xs, Ys are not read: empty ones of their types
        work.no_batch = (np.empty((0, int(spec.sizes[0])), dtype=spec.dtype),
                         np.empty((0, int(spec.sizes[-1])), dtype=spec.dtype))
    args = (spec.net(theta), objective, _blocks(work, *work.no_batch, work.chunk_scratch), None)
    # No optimizer: LOSS_GRAD takes no step, and split_run then compiles its L-BFGS code only.
    rest = (data, idx, work.block_rows, None, None, work.grad, None)
    J, _, _, _ = _split_call(split.LOSS_GRAD, work, args, rest, reads=rest[:3])
    return float(J)


def _blocks(work, Xs, Ys, scratch):
    """``split.Blocks`` over the workspace's buffers, batches in (Xs, Ys)."""
    return split.Blocks(Xs, Ys, work.scratch.acts, work.scratch.deltas, work.split_grads, scratch)


def _split_call(role, work, args, rest, reads=()):
    """``split_run`` as ``role`` on the caller's thread, with the workspace's helper thread
    (started if it does not serve these ``args`` and the arguments in ``rest`` it ``reads``)
    on the other core. Returns what split_run returns."""
    key = args + tuple(reads)
    if work.helper is None or not work.helper.serves(key):
        work.stop_helper()
        work.helper = _split.BlockHelper(args, rest, key)
    # Inside a training block the helper joins the epochs (or L-BFGS's calls) while it
    # pays (split.Pace, from their times); the test set's predictions follow the choice.
    pace, timed = work.pace, work.pace is not None and role != split.PREDICT
    if pace is None:  # a lone call
        joins = True
    else:
        joins = pace.helper_joins() if timed else pace.helper
    work.helper.join_in(joins)
    try:
        with threads.serial_blas(), flushing_subnormals():  # serial: already so inside a training block
            start = time.perf_counter()
            out = split.split_run(role, work.helper.ctrl, work.helper.results, *args, *rest)
        if timed:
            pace.record(joins, time.perf_counter() - start)
        return out
    finally:
        if not work.training:  # a lone call: do not leave the helper spinning
            work.stop_helper()


def _is_identity(idx, X):
    """Whether rows ``idx`` of X are all of X, in order, and X can be used as it is
    (writable: a read-only array would compile the block kernel a second time)."""
    return idx.size == X.shape[0] and X.flags.writeable and bool(np.all(idx == np.arange(idx.size)))
