"""``compute_dtype='bfloat16'``: bfloat16 matrix products on float32 networks.

The products go to oneDNN's ``dnnl_gemm_bf16bf16f32`` (PyPI's ``onednn``, the optional
extra ``fastnn[bf16]``), called from kernels/bf16.py as an external symbol: the library
is loaded into the process (``llvmlite.binding.load_library_permanently``) before those
kernels are compiled or loaded from the cache. Nothing here runs, and neither oneDNN
nor kernels/bf16.py is imported, until a network asks for bfloat16.

oneDNN's wheel runs its threads on TBB; ``threads_limited`` holds TBB to fastnn's thread
budget (``fastnn.set_num_threads``) around each call, through TBB's ``global_control``.
The bf16 epoch calls no OpenBLAS product (the L2 penalty's sum excepted), so the two
pools are not busy at once.
"""
import contextlib
import ctypes
import os
import re
import threading

import numpy as np

from . import engine, precompile, threads
from ..errors import BFloat16Unavailable
from .fpu import flushing_subnormals

COMPUTE_DTYPES = ("bfloat16",)
EXTRA = "bf16"
CPU_FEATURE = "avx512_bf16"  # /proc/cpuinfo's name; LLVM's is avx512bf16

_lock = threading.Lock()
_kernels = None
_tbb = None


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16), as LLVM sees it."""
    import llvmlite.binding as llb

    return "+avx512bf16" in llb.get_host_cpu_features().flatten().split(",")


def library_path():
    """Path of libdnnl from the installed ``onednn`` distribution, or None."""
    from importlib import metadata

    try:
        files = metadata.distribution("onednn").files or []
    except metadata.PackageNotFoundError:
        return None
    libs = [f for f in files if f.name.startswith("libdnnl.so")]
    return os.path.normpath(min(libs, key=lambda f: len(f.name)).locate()) if libs else None


def availability():
    """None when bfloat16 compute can run here, else why not (a sentence)."""
    if not cpu_has_bf16():
        return (f"compute_dtype='bfloat16' needs a CPU with bfloat16 arithmetic ({CPU_FEATURE}); "
                "this CPU has none. Use compute_dtype=None (float32 products).")
    if library_path() is None:
        return (f"compute_dtype='bfloat16' needs oneDNN: pip install 'fastnn[{EXTRA}]' "
                "(the onednn and tbb packages).")
    return None


def _load(path, depth=0):
    """Load the shared library ``path`` for the whole process, first loading those of its
    dependencies that sit next to it (the wheels set no RPATH): each failure names one.
    Raises BFloat16Unavailable when a dependency is not there (oneDNN installed without
    its dependencies, e.g. ``pip install --no-deps onednn``)."""
    import llvmlite.binding as llb

    for _ in range(32):
        try:
            llb.load_library_permanently(path)
            return
        except RuntimeError as err:
            missing = re.match(r"\s*([^:\s]+): cannot open shared object", str(err))
            if missing is None or depth > 8:
                raise
            beside = os.path.join(os.path.dirname(os.path.realpath(path)), os.path.basename(missing.group(1)))
            if not os.path.exists(beside):
                raise BFloat16Unavailable(
                    f"compute_dtype='bfloat16': oneDNN's {os.path.basename(path)} needs "
                    f"{os.path.basename(beside)}, which is not installed (looked in {os.path.dirname(beside)}). "
                    f"Install oneDNN with its dependencies: pip install 'fastnn[{EXTRA}]'.") from None
            _load(beside, depth + 1)


def kernels():
    """kernels/bf16.py, with oneDNN loaded; raises BFloat16Unavailable when it cannot run."""
    global _kernels
    with _lock:
        if _kernels is None:
            reason = availability()
            if reason is not None:
                raise BFloat16Unavailable(reason)
            _load(library_path())
            from ..kernels import bf16

            _kernels = bf16
            precompile.announce(precompile.BFLOAT16, np.float32)  # warns when they will compile now
        return _kernels


# -- threads -------------------------------------------------------------------------------
class _GlobalControl(ctypes.Structure):
    # oneTBB's tbb::detail::d1::global_control, whose layout is its binary interface.
    _fields_ = [("value", ctypes.c_size_t), ("reserved", ctypes.c_size_t), ("param", ctypes.c_int)]


def _tbb_functions():
    """(create, destroy) of TBB's global_control, from the libtbb oneDNN loaded."""
    global _tbb
    if _tbb is None:
        lib = ctypes.CDLL("libtbb.so.12", mode=ctypes.RTLD_GLOBAL)
        create = lib["_ZN3tbb6detail2r16createERNS0_2d114global_controlE"]
        destroy = lib["_ZN3tbb6detail2r17destroyERNS0_2d114global_controlE"]
        for f in (create, destroy):
            f.argtypes, f.restype = [ctypes.POINTER(_GlobalControl)], None
        _tbb = (create, destroy)
    return _tbb


@contextlib.contextmanager
def threads_limited():
    """At most ``threads.budget()`` TBB threads (oneDNN's) inside the block."""
    create, destroy = _tbb_functions()
    control = _GlobalControl(threads.budget(), 0, 0)  # 0: max_allowed_parallelism
    create(ctypes.byref(control))
    try:
        yield
    finally:
        destroy(ctypes.byref(control))


# -- the calls -----------------------------------------------------------------------------
def workspace(spec, rows, dropout=False):
    """``engine.Workspace`` for ``rows``-row batches (never split between cores; with the
    dropout gates when ``dropout``) plus the bfloat16 twins of its buffers (kernels/bf16.py's
    ``Half``)."""
    K = kernels()
    work = engine.Workspace(spec, rows, dropout)
    n_acts = rows * spec.width
    u16 = np.uint16
    work.half = K.Half(np.empty(spec.n_params, u16), np.empty(rows * int(spec.sizes[0]), u16),
                       np.empty(n_acts, u16), np.empty(n_acts, u16))
    return work


def fit_epoch(spec, theta, data, idx, batch_size, objective, optimizer, decay, dropout, work, stop):
    """``engine.fit_epoch`` with bfloat16 products, guarded (``stop``: (2,) int64,
    kernels/guard.py); ``dropout`` a bundles.Dropout (``engine.dropout``) or None.
    Returns (mean loss, correct count, new t, the mask stream's new counter, status)."""
    K = kernels()
    with threads_limited(), flushing_subnormals():
        loss, correct, t, counter, status = K.fit_epoch(data, idx, batch_size, spec.net(theta), objective, optimizer,
                                                        decay, dropout, work.scratch, stop, work.half)
    return float(loss), float(correct), int(t), int(counter), int(status)


def evaluate(spec, theta, data, idx, objective, work):
    """``engine.evaluate`` with bfloat16 products."""
    K = kernels()
    with threads_limited(), flushing_subnormals():
        loss, correct = K.evaluate(data, idx, work.rows, spec.net(theta), objective, work.scratch, work.half)
    return float(loss), float(correct)


def predict(spec, theta, X):
    """``engine.predict`` with bfloat16 products."""
    K = kernels()
    n = X.shape[0]
    chunk = spec.chunk_rows(n)
    out = np.empty((n, int(spec.sizes[-1])), dtype=spec.dtype)
    acts = np.empty(chunk * spec.width, dtype=spec.dtype)
    u16 = np.uint16
    half = K.Half(np.empty(spec.n_params, u16), np.empty(chunk * int(spec.sizes[0]), u16),
                  np.empty(chunk * spec.width, u16), np.empty(0, u16))
    with threads_limited(), flushing_subnormals():
        K.predict(X, theta, spec.sizes, spec.act_codes, spec.alpha, chunk, acts, half, out)
    return out
