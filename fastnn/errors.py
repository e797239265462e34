"""Exceptions of fastnn."""


class DivergenceError(FloatingPointError):
    """A batch's loss, or the update it would make, was not finite.

    That update is not made: the model and the optimizer state are those of the last
    finite step, ``step - 1`` steps into the epoch. ``epoch`` is the 1-based number of
    the epoch that diverged (not recorded in the trainer's ``train_loss`` or history),
    ``step`` the 1-based number of the batch within it.
    """

    def __init__(self, message: str, epoch: int, step: int = None):
        super().__init__(message)
        self.epoch = epoch
        self.step = step


class ModelFileError(ValueError):
    """A model or checkpoint file is not a valid fastnn file.

    Raised by ``fastnn.load`` and ``fastnn.load_checkpoint`` with a message saying
    what is wrong (not a zip archive, truncated, checksum mismatch, unknown format
    version, missing or extra arrays, wrong shape or dtype, non-finite values, an
    object array, a bad header). Nothing from a file is ever executed.
    """


class BFloat16Unavailable(RuntimeError):
    """``compute_dtype='bfloat16'`` was asked for where it cannot run: oneDNN is not
    installed (``pip install 'fastnn[bf16]'``) or the CPU has no bfloat16 arithmetic
    (AVX512-BF16). The message says which."""
