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

A kernel that is not inlined, called with a literal int (``0``, a module constant), is
typed and compiled for ``Literal[int](0)``, a specialization of its own beside the int64
one its other calls use; a loop-carried ``off = 0`` compiles both. Such arguments are
written ``np.int64(0)`` (a cold L-BFGS fit compiled ``summed_gradient`` twice:
docs/performance.md).

Loading from the cache (``KernelCache``): Numba's own cache refreshes the whole target
context before each load, which is what a compile needs (every typing and lowering
registry, imports of half of Numba) and machine code read from the cache does not: it
links against the runtime's symbols only. In a process's first fit that refresh was
0.2 s of 0.3 s of loading (docs/performance.md, "The first kernel load"). The kernels'
cache loads with the runtime initialised alone, and the runtime's own module from the
cache folder too (``_runtime.py``); a compile still refreshes everything first (Numba's
compiler does so itself). A kernel's entry also lists the symbols its machine code
defines, so that its load need not parse its LLVM bitcode (``_library.py``).
"""
import numba
import numba.extending
from numba.core.caching import FunctionCache
from numba.core.runtime import rtsys

from . import _library, _runtime


class KernelCache(FunctionCache):
    """Numba's cache of compiled functions (same files, same checks), loading without
    the target context's full refresh: only the runtime the loaded code links against;
    and without parsing each kernel's LLVM bitcode (``_library.py``)."""

    if _library.available():
        _impl_class = _library.KernelCacheImpl

    def load_overload(self, sig, target_context):
        if _RUNTIME_CACHED:
            _runtime.initialize(target_context, self.cache_path)
        else:
            rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)


# Numba's cache internals that KernelCache relies on; without them, Numba's own cache.
_LEAN_LOADS = all(hasattr(FunctionCache, name) for name in ("_guard_against_spurious_io_errors", "_load_overload"))
_RUNTIME_CACHED = _runtime.available()


def jit(func=None, **options):
    """``numba.njit`` with fastnn's options (module docstring), cached in a ``KernelCache``:
    ``@jit`` or ``@jit(inline="always")``."""

    def decorate(f):
        dispatcher = numba.njit(f, cache=not _LEAN_LOADS, nogil=True, error_model="numpy", **options)
        if _LEAN_LOADS and hasattr(dispatcher, "_cache"):  # not a dispatcher under NUMBA_DISABLE_JIT
            dispatcher._cache = KernelCache(dispatcher.py_func)  # what cache=True does, with this class
        if hasattr(dispatcher, "_compilation_chain_init_hook"):
            dispatcher._compilation_chain_init_hook = _no_extensions_needed
        return dispatcher

    return decorate if func is None else decorate(func)


def _no_extensions_needed():
    """A kernel's first call for a signature, before it looks in the cache, would run
    Numba's hook that loads every installed Numba extension: a scan of all installed
    packages' entry points, and the extensions' imports (docs/performance.md, "The import
    and the first load, again"). Machine code from the cache needs none of them, and a
    compile still loads them (the target context's refresh runs the same
    ``entrypoints.init_all``). The user's own ``@njit`` functions keep Numba's hook."""


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
