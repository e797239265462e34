"""Test accuracy on digits after a fixed training run: a speed-up is only worth having
if the answers stay the same (fastnn and the reference should agree to rounding)."""
import numpy as np

from .common import GRID, GRID_NAMES, QUICK, build, digits, fix_threads, train_epochs

EPOCHS = 2 if QUICK else 10  # the quick profile only checks that it runs


class TestAccuracy:
    """64 -> width -> 10 ReLU, Adam (lr 1e-3), EPOCHS epochs on 1437 digits; accuracy on
    the 360 held-out ones. Digits are small, so the whole grid runs."""

    params = GRID
    param_names = GRID_NAMES
    unit = "accuracy"
    rounds = 1  # seeded and deterministic at a fixed thread count
    timeout = 600

    def setup(self, implementation, width, batch_size, dtype):
        fix_threads()
        self.data = digits(dtype)

    def track_test_accuracy(self, implementation, width, batch_size, dtype):
        X_train, Y_train, X_test, _, labels_test = self.data
        net, trainer = build(implementation, X_train.shape[1], width, dtype)
        train_epochs(trainer, X_train, Y_train, batch_size, EPOCHS)
        return float(np.mean(net.predict(X_test) == labels_test))
