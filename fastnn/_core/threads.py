"""How many threads fastnn uses: ``fastnn.set_num_threads``.

fastnn's threads do two kinds of work, chosen by problem size:
- BLAS's threads split each GEMM (minibatches, and wide layers), and element-wise work
  stays on the calling thread: Numba's parallel pool and OpenBLAS's pool spin against
  each other on 2 cores, so the two are never busy at once. Steps under ``SMALL_STEP_MACS`` multiply-adds keep BLAS on one
  thread for the training call: there its second thread costs more than it gains.
- For a full-batch epoch (one step per epoch, as in the tutorial), and minibatch steps
  from ``engine.SPLIT_MIN_MACS`` up to ``SMALL_STEP_MACS``, fastnn splits each
  batch's rows between the calling thread and a helper thread instead
  (``fastnn.kernels.split``, ``fastnn._core.split``), with BLAS held to one thread for
  the whole training call (``serial_blas``): small GEMMs gain little from BLAS
  threads, and the element-wise passes get both cores too. L-BFGS's full-batch loss
  and gradient splits the same way (``engine.should_split_full_batch``).
By default BLAS keeps its own setting (all cores, or ``OPENBLAS_NUM_THREADS``), but
wide steps on OpenBLAS give up the cores other processes keep busy (``busy``). The
BLAS thread count is per process, so this setting is too: it also applies to NumPy's
and SciPy's own matrix products, which also run on one thread while a small or
full-batch model trains. The measurements behind these rules: docs/performance.md.
"""
import contextlib
import ctypes
import os
import threading

import numpy as np

from .validation import check_int

_lock = threading.Lock()
_controller = None
_budget = None  # threads fastnn may use: set_num_threads, else BLAS's count when first asked
_fixed = False  # set_num_threads was called: the count is the user's, kept whatever the load
_serial_lock = threading.Lock()
_serial_users = 0
_serial_saved = None  # (library controller, its thread count) pairs to restore


def _blas():
    """Controllers of the BLAS libraries' thread counts, once Numba's (SciPy's) is loaded:
    NumPy's and SciPy's bundled OpenBLAS through their own functions where their wheels
    bundle one (``OpenBLASPools``), else threadpoolctl's view of every BLAS in the process.
    threadpoolctl's scan resolves the path of every shared library loaded (about 240 with
    scikit-learn imported), in every process's first fit (docs/performance.md)."""
    global _controller
    with _lock:
        if _controller is None:
            scipy_openblas = _load_scipy_blas()
            _controller = OpenBLASPools.bundled(scipy_openblas)
            if _controller is None:
                from threadpoolctl import ThreadpoolController

                _controller = ThreadpoolController().select(user_api="blas")
        return _controller


def _load_scipy_blas():
    """Load SciPy's BLAS before the controllers are made: a controller made before that
    never limited it (FASTNN_NUM_THREADS=1 left it two threads, and on a busy machine its spinning
    worker made the tutorial's script 6x slower). The kernels call NumPy's OpenBLAS where
    it has one (kernels/blas.py), but SciPy's where not. Returns the path of SciPy's
    OpenBLAS, or None when it is another BLAS.

    Where SciPy bundles its OpenBLAS (its wheels), the library alone, by path: 3 ms, where
    importing ``scipy.linalg`` for it was 0.15 s of a NumPy-only script's first fit. When
    ``scipy.linalg`` is imported later, it links to this same library. Else (SciPy on
    another BLAS) ``scipy.linalg.cython_blas``, which loads whichever it is."""
    import scipy  # numba imports it: only its location is read

    from ..kernels.blas import bundled_openblas

    for path in bundled_openblas(scipy):
        try:
            ctypes.CDLL(path)
            return path
        except OSError:
            continue
    import scipy.linalg.cython_blas  # noqa: F401
    return None


class OpenBLASPool:
    """One OpenBLAS library's thread count, through its own functions (those threadpoolctl's
    controller calls)."""

    def __init__(self, path, lib, symbol):
        self.filepath = path
        self._get = getattr(lib, symbol.format("get"))
        self._get.restype = ctypes.c_int
        self._set = getattr(lib, symbol.format("set"))
        self._set.argtypes = [ctypes.c_int]

    @classmethod
    def load(cls, path):
        """The pool of the OpenBLAS at ``path`` (already loaded: the same handle), or None."""
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            return None
        for prefix in ("scipy_", ""):
            for suffix in ("64_", ""):
                symbol = f"{prefix}openblas_{{}}_num_threads{suffix}"
                if hasattr(lib, symbol.format("get")) and hasattr(lib, symbol.format("set")):
                    return cls(path, lib, symbol)
        return None

    def get_num_threads(self):
        return self._get()

    def set_num_threads(self, n):
        self._set(n)


class OpenBLASPools:
    """The BLAS libraries of a process whose NumPy and SciPy bundle OpenBLAS: the two
    ``OpenBLASPool``, with the part of threadpoolctl's controller interface fastnn uses."""

    def __init__(self, pools):
        self.lib_controllers = pools

    @classmethod
    def bundled(cls, scipy_openblas):
        """NumPy's and SciPy's bundled OpenBLAS (``scipy_openblas`` the path of SciPy's),
        or None where either is not one."""
        from ..kernels.blas import bundled_openblas

        paths = bundled_openblas(np)[:1] + ([scipy_openblas] if scipy_openblas else [])
        pools = [OpenBLASPool.load(path) for path in paths]
        return cls(pools) if len(pools) == 2 and None not in pools else None

    def info(self):
        return [{"user_api": "blas", "internal_api": "openblas", "filepath": pool.filepath,
                 "num_threads": pool.get_num_threads()} for pool in self.lib_controllers]

    def limit(self, limits):
        for pool in self.lib_controllers:
            pool.set_num_threads(limits)


def _take_blas_control():
    """Let this thread change OpenBLAS's thread count. threadpoolctl (3.6+) lets only
    the first thread that set OpenBLAS's process-wide count change it, and silently
    ignores the others: a model trained from a worker thread ran its split batches
    on a two-thread BLAS (slower, and other bits). fastnn's own callers coordinate
    (``serial_blas`` counts its users), so they take control first. (``OpenBLASPools``
    calls OpenBLAS itself: no rule to lift.)"""
    if isinstance(_controller, OpenBLASPools):
        return
    import threadpoolctl

    clear = getattr(getattr(threadpoolctl, "OpenBLASController", None), "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


def set_num_threads(n: int) -> None:
    """Use ``n`` BLAS threads in this process (fastnn's GEMMs, and NumPy's and SciPy's),
    and at most ``n`` cores for fastnn's own work (n = 1: full-batch epochs are not
    split between cores).

    When several models train at once from Python threads, give each model's share:
    2 models x 2 BLAS threads on 2 cores oversubscribe, and OpenBLAS threads that
    wait for a descheduled sibling spin (docs/performance.md has the measurements).
    The environment variable ``FASTNN_NUM_THREADS`` sets it at import.
    """
    global _budget, _fixed
    n = check_int("n", n)
    limit_blas(n)
    _budget, _fixed = n, True


def fixed() -> bool:
    """Whether the user set the thread count (``set_num_threads``, ``FASTNN_NUM_THREADS``):
    then wide steps keep it on a busy machine too (``busy``)."""
    return _fixed


def limit_blas(n: int) -> None:
    """Every BLAS library of the process on ``n`` threads from now on; fastnn's budget
    stays as it is (``busy``: fewer threads while other processes hold cores)."""
    controller = _blas()
    _take_blas_control()
    controller.limit(limits=n)


def get_num_threads() -> int:
    """The largest thread count among the process's BLAS libraries."""
    return max(lib["num_threads"] for lib in _blas().info())


def budget() -> int:
    """The number of cores fastnn may use: ``set_num_threads``'s value, else BLAS's
    thread count when first asked (read once: within ``serial_blas`` it reads 1)."""
    global _budget
    if _budget is None:
        _budget = get_num_threads()
    return _budget


def can_split() -> bool:
    """Whether a full-batch epoch may run on 2 cores (``fastnn.kernels.split``)."""
    return budget() >= 2


# Below this many multiply-adds per training step (batch rows x weights), BLAS's second
# thread costs more than it gains: measured per epoch here, 200-row batches of 64-100-10
# ran 1.06-1.17x faster on one thread (scikit-learn's digits defaults: 1.4x, with NumPy's
# and SciPy's two OpenBLAS pools both awake), while 13M multiply-adds a step (128 rows of
# 784-128-10) already ran 1.2x faster on two.
SMALL_STEP_MACS = 4_000_000


def forward_macs(sizes, rows):
    """Multiply-adds of a forward pass of ``rows`` rows through layers ``sizes``: the
    measure of a step's size in ``engine.training`` and the split rule."""
    units = sizes.tolist()  # Python ints: a NumPy product and sum cost more than these few
    return rows * sum(a * b for a, b in zip(units[:-1], units[1:]))


@contextlib.contextmanager
def serial_blas():
    """One BLAS thread inside the block, for every thread of the process; the setting
    before the first of any overlapping blocks comes back after the last one."""
    global _serial_users, _serial_saved
    budget()  # read the thread count before it is limited
    with _serial_lock:
        if _serial_users == 0:
            # Each library's own get and set, not ``controller.limit``: that builds and
            # compares the info of every library, 10 us of each training call.
            _take_blas_control()
            _serial_saved = [(lib, lib.get_num_threads()) for lib in _blas().lib_controllers]
            for lib, count in _serial_saved:
                if count != 1:
                    lib.set_num_threads(1)
        _serial_users += 1
    try:
        yield
    finally:
        with _serial_lock:
            _serial_users -= 1
            if _serial_users == 0:
                _take_blas_control()
                for lib, count in _serial_saved:
                    if count != 1 and count is not None:
                        lib.set_num_threads(count)
                _serial_saved = None


if os.environ.get("FASTNN_NUM_THREADS"):
    set_num_threads(int(os.environ["FASTNN_NUM_THREADS"]))
