"""Callbacks for ``Trainer.train``: early stopping, checkpoints, your own.

The protocol is small; every method is optional except ``on_epoch_end``:

- ``on_train_begin(trainer)`` once per ``train`` call, before the first epoch
  (``trainer.model``, ``trainer.history``, ``trainer.log_keys``: the keys each epoch's
  logs will hold);
- ``on_epoch_end(epoch, logs) -> bool`` after each epoch, once it is recorded:
  ``epoch`` is 1-based and counts the trainer's epochs (``len(trainer.history)``),
  ``logs`` the dict just appended to the history. A true result stops training;
- ``on_train_end(trainer)`` when ``train`` ends normally (not on an exception).

Callbacks run in the order given. Subclass ``Callback`` or pass any object with these methods.
"""
import math

import numpy as np

from . import io
from ._core.validation import check_float, check_int


class Callback:
    """Base class with no-op hooks."""

    def on_train_begin(self, trainer):
        pass

    def on_epoch_end(self, epoch, logs):
        return False

    def on_train_end(self, trainer):
        pass


def _mode(monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max'; got {mode!r}.")
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    return mode


def _check_monitor(owner, monitor, trainer):
    keys = getattr(trainer, "log_keys", None)
    if keys is not None and monitor not in keys:
        hint = " (pass validation_data= or validation_split= to train)" if monitor.startswith("val_") else ""
        raise ValueError(f"{owner} monitors {monitor!r}, which this run does not record{hint}; "
                         f"recorded: {', '.join(keys)}.")


class _Monitor(Callback):
    def __init__(self, monitor, min_delta, mode):
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a metric name such as 'val_loss'; got {monitor!r}.")
        self.monitor = monitor
        self.min_delta = check_float("min_delta", min_delta, 0.0, low_open=False)
        self.mode = _mode(monitor, mode)

    def _improved(self, value):
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Parameters
    ----------
    monitor : str, default 'val_loss'
        A history key: 'val_loss', 'val_accuracy', 'loss', 'accuracy', 'test_loss'.
    patience : int >= 1, default 10
    min_delta : float >= 0, default 0
    restore_best_weights : bool, default True
        When training ends (stopped or not), put back the weights of the best epoch
        if a later epoch ran. The history keeps every epoch.
    mode : {'auto', 'min', 'max'}, default 'auto' (max for accuracies, min otherwise)

    Attributes
    ----------
    best, best_epoch : the best value and its (1-based) epoch
    stopped_epoch : the epoch after which training stopped, or None
    restored : whether the best weights were put back
    message : a one-line report (also ``trainer.history.stop_reason`` on a stop)
    """

    def __init__(self, monitor="val_loss", patience=10, min_delta=0.0, restore_best_weights=True, mode="auto"):
        super().__init__(monitor, min_delta, mode)
        self.patience = check_int("patience", patience)
        self.restore_best_weights = bool(restore_best_weights)
        self._reset()

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = self.stopped_epoch = self.last_epoch = None
        self.wait = 0
        self.restored = False
        self.message = None
        self._params = self._best_params = None

    def on_train_begin(self, trainer):
        _check_monitor("EarlyStopping", self.monitor, trainer)
        self._reset()
        self._params = trainer.model.params
        if self.restore_best_weights:
            self._best_params = np.empty_like(self._params)

    def on_epoch_end(self, epoch, logs):
        value = float(logs[self.monitor])
        self.last_epoch = epoch
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self._best_params is not None:
                self._best_params[...] = self._params
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, trainer):
        if self.restore_best_weights and self.best_epoch is not None and self.best_epoch != self.last_epoch:
            self._params[...] = self._best_params
            self.restored = True
        if self.stopped_epoch is not None:
            self.message = (
                f"EarlyStopping: {self.monitor} did not improve by more than {self.min_delta:g} for "
                f"{self.patience} epochs; stopped after epoch {self.stopped_epoch}; best {self.monitor} "
                f"{self.best:.6g} at epoch {self.best_epoch}"
                + (f"; weights restored from epoch {self.best_epoch}" if self.restored else "")
            )


class ModelCheckpoint(_Monitor):
    """Save the model with ``fastnn.io.save_model`` after each epoch that improves ``monitor``
    (or after every epoch with ``save_best_only=False``). The file's metadata holds the
    epoch and the monitored value; writes are atomic.

    Parameters
    ----------
    path : str or path-like
    monitor : str, default 'val_loss'
    save_best_only : bool, default True
    min_delta : float >= 0, default 0
    mode : {'auto', 'min', 'max'}, default 'auto'

    Attributes
    ----------
    best, best_epoch : the best value seen and its epoch; saved : number of files written
    """

    def __init__(self, path, monitor="val_loss", save_best_only=True, min_delta=0.0, mode="auto"):
        super().__init__(monitor, min_delta, mode)
        self.path = path
        self.save_best_only = bool(save_best_only)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None
        self.saved = 0
        self._model = None

    def on_train_begin(self, trainer):
        _check_monitor("ModelCheckpoint", self.monitor, trainer)
        self._model = trainer.model

    def on_epoch_end(self, epoch, logs):
        value = float(logs[self.monitor])
        improved = self._improved(value)
        if improved:
            self.best, self.best_epoch = value, epoch
        if improved or not self.save_best_only:
            io.save_model(self._model, self.path, {"epoch": epoch, self.monitor: value})
            self.saved += 1
        return False


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, on_epoch_end=None, on_train_begin=None, on_train_end=None):
        self._end, self._begin, self._train_end = on_epoch_end, on_train_begin, on_train_end

    def on_train_begin(self, trainer):
        if self._begin is not None:
            self._begin(trainer)

    def on_epoch_end(self, epoch, logs):
        return bool(self._end(epoch, logs)) if self._end is not None else False

    def on_train_end(self, trainer):
        if self._train_end is not None:
            self._train_end(trainer)


__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "LambdaCallback"]
