"""Learning-rate schedules: the rate of each epoch, from the initial rate and the history.

A schedule is any object with ``rate(epoch, lr0, history) -> float``: ``epoch`` counts
the epochs already in ``history`` (0 for the first epoch a trainer runs), ``lr0`` is
``Trainer.train``'s ``learning_rate`` and ``history`` the trainer's ``History``. The
rate is constant within an epoch (one compiled call) and recorded as ``history['lr']``.
Schedules hold no state: reduce-on-plateau replays the history, so a schedule
continues across ``train`` calls (and across one-epoch calls in a loop).
"""
from dataclasses import dataclass
import math

from ._core.validation import check_float, check_int


class Schedule:
    """Base class; subclasses define ``rate``. ``monitor`` is None unless the schedule reads the history."""

    monitor = None

    def rate(self, epoch: int, lr0: float, history) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Schedule):
    """lr_e = lr0."""

    def rate(self, epoch, lr0, history):
        return lr0


@dataclass(frozen=True)
class InverseScaling(Schedule):
    """lr_e = lr0 / (e + 1)^power_t (scikit-learn's 'invscaling', per epoch instead of per sample)."""

    power_t: float = 0.5

    def __post_init__(self):
        check_float("InverseScaling power_t", self.power_t, 0.0, low_open=False)

    def rate(self, epoch, lr0, history):
        return lr0 / (epoch + 1) ** self.power_t


@dataclass(frozen=True)
class StepDecay(Schedule):
    """lr_e = lr0 * gamma^floor(e / step_size)."""

    step_size: int = 10
    gamma: float = 0.5

    def __post_init__(self):
        check_int("StepDecay step_size", self.step_size)
        check_float("StepDecay gamma", self.gamma, 0.0, 1.0)

    def rate(self, epoch, lr0, history):
        return lr0 * self.gamma ** (epoch // self.step_size)


@dataclass(frozen=True)
class ExponentialDecay(Schedule):
    """lr_e = lr0 * gamma^e."""

    gamma: float = 0.95

    def __post_init__(self):
        check_float("ExponentialDecay gamma", self.gamma, 0.0, 1.0)

    def rate(self, epoch, lr0, history):
        return lr0 * self.gamma**epoch


@dataclass(frozen=True)
class ReduceLROnPlateau(Schedule):
    """Multiply the rate by ``factor`` when ``monitor`` has not improved by more than
    ``min_delta`` for ``patience`` epochs (then wait ``patience`` epochs again); never
    below ``min_lr``. As Keras' callback, replayed from the history: starting from lr0,
    for each recorded epoch, an improvement (lower loss, higher accuracy) resets the
    count, anything else adds one, and reaching ``patience`` reduces the rate and resets it.
    """

    monitor: str = "val_loss"
    factor: float = 0.1
    patience: int = 10
    min_delta: float = 1e-4
    min_lr: float = 0.0

    def __post_init__(self):
        check_float("ReduceLROnPlateau factor", self.factor, 0.0, 1.0, high_open=True)
        check_int("ReduceLROnPlateau patience", self.patience)
        check_float("ReduceLROnPlateau min_delta", self.min_delta, 0.0, low_open=False)
        check_float("ReduceLROnPlateau min_lr", self.min_lr, 0.0, low_open=False)

    def rate(self, epoch, lr0, history):
        sign = -1.0 if "acc" in self.monitor else 1.0  # minimise losses, maximise accuracies
        lr, best, wait = lr0, math.inf, 0
        for value in history[self.monitor][:epoch] if self.monitor in history else ():
            if math.isnan(value):
                continue
            if sign * value < best - self.min_delta:
                best, wait = sign * value, 0
            else:
                wait += 1
                if wait >= self.patience:
                    lr, wait = max(lr * self.factor, self.min_lr), 0
        return lr


SCHEDULES = {
    "constant": Constant,
    "invscaling": InverseScaling,
    "step": StepDecay,
    "exponential": ExponentialDecay,
    "plateau": ReduceLROnPlateau,
}


def resolve(schedule):
    """A schedule name (defaults of its class), object or None (constant) -> a schedule object."""
    if schedule is None:
        return Constant()
    if isinstance(schedule, str) and schedule in SCHEDULES:
        return SCHEDULES[schedule]()
    if hasattr(schedule, "rate") and callable(schedule.rate):
        return schedule
    valid = ", ".join(repr(k) for k in SCHEDULES)
    raise ValueError(f"lr_schedule must be one of {valid} or an object with a rate(epoch, lr0, history) method; "
                     f"got {schedule!r}.")


__all__ = ["Schedule", "Constant", "InverseScaling", "StepDecay", "ExponentialDecay", "ReduceLROnPlateau"]
