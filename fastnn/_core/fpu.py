"""The kernels' floating-point mode: subnormal numbers flushed to zero (``fastnn.kernels.fpu``).

The mode is a per-thread CPU setting. Kernels are called inside ``flushing_subnormals``,
which sets it for the call and puts the caller's mode back afterwards, even when the
call raises: NumPy code around them (and a user's callbacks) keeps IEEE subnormals.
"""
from ..kernels import fpu


class _FlushingSubnormals:
    __slots__ = ("mode",)

    def __enter__(self):
        self.mode = fpu.flush_subnormals()
        return self

    def __exit__(self, *exc_info):
        fpu.restore_mode(self.mode)
        return False


def flushing_subnormals():
    """Context in which this thread's kernel calls run with FTZ and DAZ on."""
    return _FlushingSubnormals()


def run_flushing_subnormals(kernel, *args):
    """``kernel(*args)`` with subnormals flushed (a thread's target: the helper's loop)."""
    with flushing_subnormals():
        return kernel(*args)
