"""How many threads fastnn uses: ``fastnn.set_num_threads``.

fastnn's only threads are BLAS's (the GEMMs). Element-wise work stays on the calling
thread: measured here, Numba's parallel pool and OpenBLAS's pool spin against each
other on 2 cores (one workload got 4x slower), and the element-wise passes are a few
percent of an epoch. By default BLAS keeps its own setting (all cores, or
``OPENBLAS_NUM_THREADS``). The BLAS thread count is per process, so this setting is
too: it also applies to NumPy's and SciPy's own matrix products.
"""
import os
import threading

from ._validation import check_int

_lock = threading.Lock()
_controller = None


def _blas():
    """threadpoolctl's view of the BLAS libraries, once Numba's (SciPy's) is loaded."""
    global _controller
    with _lock:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            from .kernels import epoch  # noqa: F401  (loads SciPy's BLAS, which np.dot in @njit calls)

            _controller = ThreadpoolController().select(user_api="blas")
        return _controller


def set_num_threads(n: int) -> None:
    """Use ``n`` BLAS threads in this process (fastnn's GEMMs, and NumPy's and SciPy's).

    When several models train at once from Python threads, give each model's share:
    2 models x 2 BLAS threads on 2 cores oversubscribe, and OpenBLAS threads that
    wait for a descheduled sibling spin: a loaded machine ran 20x slower.
    The environment variable ``FASTNN_NUM_THREADS`` sets it at import.
    """
    _blas().limit(limits=check_int("n", n))


def get_num_threads() -> int:
    """The largest thread count among the process's BLAS libraries."""
    return max(lib["num_threads"] for lib in _blas().info())


if os.environ.get("FASTNN_NUM_THREADS"):
    set_num_threads(int(os.environ["FASTNN_NUM_THREADS"]))
