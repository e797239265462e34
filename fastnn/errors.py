"""Exceptions of fastnn."""


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or non-finite weights.

    The model keeps the weights it had at the end of the last finite epoch; the
    trainer's ``train_loss`` holds that epoch's losses. ``epoch`` is the 1-based
    number of the epoch that diverged.
    """

    def __init__(self, message: str, epoch: int):
        super().__init__(message)
        self.epoch = epoch
