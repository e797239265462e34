"""Training and prediction through the public API, fastnn against the NumPy reference.

Network: 784 -> width -> 10, ReLU, softmax + cross-entropy, on the synthetic wide data
(common.wide: 2048 rows). Grid: implementation x width x batch size x dtype.
"""
import timeit

from .common import (
    GRID, GRID_NAMES, WIDE_FEATURES, build, fix_threads, skip_if_too_slow, train_epochs, wide,
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
