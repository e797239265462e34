"""Training and prediction through the public API, fastnn against the NumPy reference.

Network: 784 -> width -> 10, ReLU, softmax + cross-entropy, on the synthetic wide data
(common.wide: 2048 rows). Grid: implementation x width x batch size x dtype.
ConvergedEpoch: a trained digits classifier's epoch against a fresh one's.
"""
import timeit

from .common import (
    DTYPES, GRID, GRID_NAMES, WIDE_FEATURES, build, digits, fix_threads, skip_if_too_slow, speedup, train_epochs,
    wide,
)


class TrainEpoch:
    """One epoch of Adam over the 2048 rows, in minibatches of ``batch_size``."""

    params = GRID
    param_names = GRID_NAMES
    timer = timeit.default_timer
    warmup_time = 0  # setup already ran (and compiled) one epoch
    timeout = 600

    def setup(self, implementation, width, batch_size, dtype):
        skip_if_too_slow(implementation, width, batch_size)
        fix_threads()
        self.X, self.Y = wide(dtype)
        self.net, self.trainer = build(implementation, WIDE_FEATURES, width, dtype)
        # Warm-up: compiles (or loads from Numba's cache) the kernels for this dtype and
        # allocates the optimizer state, which later epochs reuse.
        train_epochs(self.trainer, self.X, self.Y, batch_size)

    def time_train_epoch(self, implementation, width, batch_size, dtype):
        train_epochs(self.trainer, self.X, self.Y, batch_size)


class Fit:
    """Peak memory (RSS of the whole benchmark process) of building a network and
    training it for one epoch: dataset + parameters + optimizer state + work buffers."""

    params = GRID
    param_names = GRID_NAMES
    timeout = 600

    def setup(self, implementation, width, batch_size, dtype):
        skip_if_too_slow(implementation, width, batch_size)
        fix_threads()
        self.X, self.Y = wide(dtype)
        # Warm the kernels on a tiny network, so that compilation is not part of the fit.
        _, trainer = build(implementation, WIDE_FEATURES, 8, dtype)
        train_epochs(trainer, self.X[:64], self.Y[:64], batch_size)

    def peakmem_fit(self, implementation, width, batch_size, dtype):
        _, trainer = build(implementation, WIDE_FEATURES, width, dtype)
        train_epochs(trainer, self.X, self.Y, batch_size)


class Predict:
    """Predicting ``batch_size`` rows (class indices): inference latency. Nothing is too
    slow here, so the whole grid runs."""

    params = GRID
    param_names = GRID_NAMES
    timer = timeit.default_timer

    def setup(self, implementation, width, batch_size, dtype):
        fix_threads()
        X, Y = wide(dtype)
        self.X = X[:batch_size].copy()
        self.net, trainer = build(implementation, WIDE_FEATURES, width, dtype)
        train_epochs(trainer, X[:256], Y[:256], batch_size)  # trained weights, warm kernels
        self.net.predict(self.X)

    def time_predict(self, implementation, width, batch_size, dtype):
        self.net.predict(self.X)


class ConvergedEpoch:
    """An epoch of a classifier that has learnt its data, over a fresh one's epoch, in
    the same process: digits 64-64-10 ReLU, Adam, batch 32, after ``CONVERGE_EPOCHS``
    epochs (setup). Its tiny softmax outputs make subnormal numbers in the output
    deltas and inside the GEMMs, ~100x slower to compute with unless flushed
    (fastnn.kernels.fpu). Near 1 when they are: float32 was 1.65 before the kernels
    flushed them (0.62 -> 1.02 ms an epoch)."""

    CONVERGE_EPOCHS = 1000
    params = (DTYPES,)
    param_names = ["dtype"]
    unit = "x"
    rounds = 1
    timeout = 600

    def setup(self, dtype):
        fix_threads()
        self.X, self.Y = digits(dtype)[:2]
        _, self.fresh = build("fastnn", self.X.shape[1], 64, dtype)
        _, self.converged = build("fastnn", self.X.shape[1], 64, dtype)
        train_epochs(self.fresh, self.X, self.Y, 32)
        train_epochs(self.converged, self.X, self.Y, 32, epochs=self.CONVERGE_EPOCHS)

    def track_converged_over_fresh(self, dtype):
        # Each model gets 20 more epochs per call (fresh: epochs 2-141, far from converged).
        def epochs(trainer):
            return lambda: train_epochs(trainer, self.X, self.Y, 32, epochs=20)

        return speedup(epochs(self.converged), epochs(self.fresh), repeats=7)
