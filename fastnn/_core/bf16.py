"""``compute_dtype='bfloat16'``: bfloat16 matrix products on float32 networks.

The products go to oneDNN's ``dnnl_gemm_bf16bf16f32`` (PyPI's ``onednn``, the optional
extra ``fastnn[bf16]``), called from kernels/bf16.py as an external symbol: the library
is loaded into the process (``llvmlite.binding.load_library_permanently``) before those
kernels are compiled or loaded from the cache. Nothing here runs, and neither oneDNN
nor kernels/bf16.py is imported, until a network asks for bfloat16.

Finding and loading oneDNN, and holding its TBB threads to fastnn's budget around each
call (``threads_limited``), are ``onednn``'s. The bf16 epoch calls no OpenBLAS product (the L2 penalty's sum excepted), so the two
pools are not busy at once.
"""
import threading

import numpy as np

from . import engine, onednn, precompile
from .onednn import EXTRA, library_path, threads_limited
from ..errors import BFloat16Unavailable
from .fpu import flushing_subnormals

COMPUTE_DTYPES = ("bfloat16",)
CPU_FEATURE = "avx512_bf16"  # /proc/cpuinfo's name; LLVM's is avx512bf16

_lock = threading.Lock()
_kernels = None


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16), as LLVM sees it."""
    import llvmlite.binding as llb

    return "+avx512bf16" in llb.get_host_cpu_features().flatten().split(",")


def availability():
    """None when bfloat16 compute can run here, else why not (a sentence)."""
    if not cpu_has_bf16():
        return (f"compute_dtype='bfloat16' needs a CPU with bfloat16 arithmetic ({CPU_FEATURE}); "
                "this CPU has none. Use compute_dtype=None (float32 products).")
    if library_path() is None:
        return (f"compute_dtype='bfloat16' needs oneDNN: pip install 'fastnn[{EXTRA}]' "
                "(the onednn and tbb packages).")
    return None


def kernels():
    """kernels/bf16.py, with oneDNN loaded; raises BFloat16Unavailable when it cannot run."""
    global _kernels
    with _lock:
        if _kernels is None:
            reason = availability()
            if reason is not None:
                raise BFloat16Unavailable(reason)
            onednn.load(library_path())
            from ..kernels import bf16

            _kernels = bf16
            precompile.announce(precompile.BFLOAT16, np.float32)  # warns when they will compile now
        return _kernels


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
