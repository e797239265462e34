"""Optimizer settings (hyperparameters) and their state buffers.

The learning rate is not here: it is ``Trainer.train``'s ``learning_rate``, as in the
tutorial. Update rules are in ``fastnn.kernels.optimizers`` (and, in NumPy, in
``fastnn.reference``).
"""
from dataclasses import dataclass

from ._core.engine import OptimizerState  # noqa: F401 (re-exported: the state Trainer keeps)
from ._core.validation import check_float
from .kernels import codes


@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    Parameters
    ----------
    momentum : float in [0, 1), default 0
        Velocity decay mu: v = mu v - lr g; theta += v.
    nesterov : bool, default False
        Use Nesterov's momentum: theta += mu v - lr g.
    """

    momentum: float = 0.0
    nesterov: bool = False

    def __post_init__(self):
        check_float("SGD momentum", self.momentum, 0.0, 1.0, low_open=False, high_open=True)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("SGD(nesterov=True) needs momentum > 0; got momentum=0.")

    @property
    def code(self) -> int:
        if self.momentum == 0.0:
            return codes.SGD
        return codes.NESTEROV if self.nesterov else codes.MOMENTUM


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba), bias correction folded into the step size.

    Parameters
    ----------
    beta1, beta2 : float in [0, 1), defaults 0.9 and 0.999
        Decay rates of the first and second moment estimates.
    epsilon : float > 0, default 1e-8
        Added to sqrt(v) in the denominator.
    """

    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8

    def __post_init__(self):
        check_float("Adam beta1", self.beta1, 0.0, 1.0, low_open=False, high_open=True)
        check_float("Adam beta2", self.beta2, 0.0, 1.0, low_open=False, high_open=True)
        check_float("Adam epsilon", self.epsilon)

    code = codes.ADAM
    momentum = 0.0


OPTIMIZERS = {
    "gd": SGD(),
    "sgd": SGD(),
    "momentum": SGD(momentum=0.9),
    "nesterov": SGD(momentum=0.9, nesterov=True),
    "adam": Adam(),
}


def resolve(optimizer):
    """An optimizer name or object -> an optimizer object."""
    if isinstance(optimizer, (SGD, Adam)):
        return optimizer
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS:
        return OPTIMIZERS[optimizer]
    valid = ", ".join(repr(k) for k in OPTIMIZERS)
    raise ValueError(f"optimizer must be one of {valid} or an SGD/Adam object; got {optimizer!r}.")
