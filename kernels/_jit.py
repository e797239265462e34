"""The one place where Numba options are chosen.

``error_model='numpy'`` drops the zero-division check that Numba's default
('python') puts on every float division: that branch stops LLVM from vectorising
the loop (Adam over 1.86M parameters ran 3x faster: docs/performance.md).

No fastmath flag at all. 'nnan'/'ninf' would make np.isfinite always True (divergence
checks); reassociation moves results away from ``fastnn.reference``; and even
'contract' (fused multiply-add) breaks run-to-run determinism: the JIT and the object
code Numba writes to its cache fuse different operations, so a process that compiled
the kernels and one that loaded them from the cache disagreed in the last bit.

Subnormal numbers are flushed by the CPU's mode during each kernel call instead (FTZ
and DAZ, see ``fpu.py``): no compiler flag does that for BLAS's code as well.
"""
import functools

import numba
import numba.extending

jit = functools.partial(numba.njit, cache=True, nogil=True, error_model="numpy")


def cast_like(x, arr):
    """``x`` converted to ``arr``'s dtype (compiled: see the overload below).

    Python float literals and arguments are float64 in Numba, and one float64 operand
    turns a float32 loop into float64 arithmetic (half the SIMD width, extra
    conversions). Hot loops cast their scalars once with this.
    """
    return arr.dtype.type(x)


@numba.extending.overload(cast_like, inline="always")
def _cast_like(x, arr):
    dtype = arr.dtype

    def impl(x, arr):
        return dtype(x)

    return impl


def tiny_like(arr):
    """The smallest normal number of ``arr``'s dtype, as a constant of that dtype."""
    import numpy as np

    return np.finfo(arr.dtype).tiny


@numba.extending.overload(tiny_like, inline="always")
def _tiny_like(arr):
    import numpy as np

    tiny = np.finfo(numba.np.numpy_support.as_dtype(arr.dtype)).tiny
    dtype = arr.dtype

    def impl(arr):
        return dtype(tiny)

    return impl


def limits_like(arr):
    """(the largest finite number, the machine epsilon) of ``arr``'s dtype, as float64s."""
    import numpy as np

    info = np.finfo(arr.dtype)
    return float(info.max), float(info.eps)


@numba.extending.overload(limits_like, inline="always")
def _limits_like(arr):
    import numpy as np

    info = np.finfo(numba.np.numpy_support.as_dtype(arr.dtype))
    largest, eps = float(info.max), float(info.eps)

    def impl(arr):
        return largest, eps

    return impl
