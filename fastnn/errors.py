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
