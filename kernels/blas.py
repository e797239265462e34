"""Matrix products from the kernels through NumPy's own OpenBLAS.

Numba's ``np.dot`` calls the BLAS that SciPy ships (``scipy.linalg.cython_blas``): a second
OpenBLAS beside NumPy's, with its own pool of worker threads. The two pools spin against
each other when a process uses both (a user's NumPy code between fits, fastnn's own
evaluation), and importing SciPy's linear algebra is 0.1 s of every process's first fit.
So the kernels call four external symbols, ``fastnn_sgemm``, ``fastnn_dgemm``,
``fastnn_sdot`` and ``fastnn_ddot``, with CBLAS's interface (row-major, 64-bit integers),
and this module, imported before any kernel runs, tells LLVM where they are:

- NumPy's OpenBLAS (the ``scipy-openblas64`` library its wheels bundle: functions
  ``scipy_cblas_sgemm64_``...), found beside NumPy;
- else (a NumPy built on MKL, Accelerate or a system BLAS, or ``FASTNN_BLAS=scipy``)
  Numba ``cfunc`` adapters over ``np.dot``: SciPy's BLAS, as before.

Numba's cache holds only the symbol names, so the same compiled kernels run with either;
``library()`` says which one this process uses (``fastnn info``, ``fastnn bench``).

Where oneDNN is installed beside this Python (PyPI's ``onednn``, the ``fastnn[bf16]``
extra), ``fastnn_sgemm`` is instead a small router (``_router``): it calls oneDNN's
``dnnl_sgemm`` while ``ONEDNN_SLOT`` holds its address, NumPy's OpenBLAS otherwise.
``fastnn._core.products`` fills the slot for the training calls of wide float32 steps
when oneDNN measured faster on this machine.
"""
import ctypes
import glob
import os
import sys
import warnings

import numba
import numba.extending
import numpy as np
from numba import types

from ._jit import jit
from .cblas import NO_TRANS, ROW_MAJOR, SIGNATURES, TRANS

_sgemm, _dgemm, _sdot, _ddot = (types.ExternalFunction(f"fastnn_{routine}", sig) for routine, sig in SIGNATURES.items())


# -- which library: found at import, before any kernel is linked ----------------------------
def bundled_openblas(package):
    """Paths of the OpenBLAS libraries a wheel of ``package`` (an imported module: NumPy,
    SciPy) bundles: ``<name>.libs`` beside it on Linux and Windows, ``.dylibs`` inside it on
    macOS. Empty for a build on another BLAS."""
    inside = os.path.dirname(package.__file__)
    patterns = [os.path.join(os.path.dirname(inside), f"{package.__name__}.libs", "lib*openblas*"),
                os.path.join(inside, ".dylibs", "lib*openblas*")]
    return sorted(p for pattern in patterns for p in glob.glob(pattern))


def _numpy_openblas():
    """(ctypes library, symbol prefix, path) of the OpenBLAS bundled with NumPy, or None."""
    for path in bundled_openblas(np):
        try:
            lib = ctypes.CDLL(path)  # already loaded by NumPy: the same handle
        except OSError:
            continue
        for prefix in ("scipy_", ""):
            if hasattr(lib, f"{prefix}cblas_sgemm64_"):
                return lib, prefix, path
    return None


def _fallback_adapters():
    """{routine: address} of ``cfunc`` adapters with the CBLAS interface over Numba's np.dot."""
    from . import blas_fallback

    return {routine: getattr(blas_fallback, routine).address for routine in SIGNATURES}


# -- oneDNN for float32 products: a router behind fastnn_sgemm ------------------------------
ONEDNN_SLOT = ctypes.c_void_p(0)  # oneDNN's dnnl_sgemm while float32 products go there, else NULL

# fastnn_sgemm's CBLAS interface (cblas.SIGNATURES) in LLVM IR: the call goes to the function
# in ONEDNN_SLOT when it holds one (dnnl_sgemm: row-major, transposes as 'N'/'T'), else to
# OpenBLAS, which also redoes a product oneDNN refused (a status other than dnnl_success).
# One load and a branch per product: nothing measurable beside the product.
_ROUTER_IR = """
define void @fastnn_sgemm_router(i32 %order, i32 %ta, i32 %tb, i64 %m, i64 %n, i64 %k, float %alpha, ptr %A,
                                 i64 %lda, ptr %B, i64 %ldb, float %beta, ptr %C, i64 %ldc) {{
entry:
  %onednn = load ptr, ptr inttoptr (i64 {slot} to ptr)
  %none = icmp eq ptr %onednn, null
  br i1 %none, label %to_openblas, label %to_onednn
to_openblas:
  call void inttoptr (i64 {openblas} to ptr)(i32 %order, i32 %ta, i32 %tb, i64 %m, i64 %n, i64 %k, float %alpha,
                                             ptr %A, i64 %lda, ptr %B, i64 %ldb, float %beta, ptr %C, i64 %ldc)
  ret void
to_onednn:
  %a_t = icmp eq i32 %ta, {trans}
  %b_t = icmp eq i32 %tb, {trans}
  %a = select i1 %a_t, i8 84, i8 78
  %b = select i1 %b_t, i8 84, i8 78
  %status = call i32 %onednn(i8 signext %a, i8 signext %b, i64 %m, i64 %n, i64 %k, float %alpha, ptr %A, i64 %lda,
                             ptr %B, i64 %ldb, float %beta, ptr %C, i64 %ldc)
  %done = icmp eq i32 %status, 0
  br i1 %done, label %exit, label %to_openblas
exit:
  ret void
}}
"""


def onednn_beside():
    """Whether oneDNN's library sits where PyPI's ``onednn`` wheel installs it, beside this
    Python: a quick look at import; ``fastnn._core.products`` finds it properly when used."""
    return any(glob.glob(os.path.join(prefix, "lib", "libdnnl.so*")) for prefix in {sys.prefix, sys.base_prefix})


def _router(openblas_sgemm, slot=ONEDNN_SLOT):
    """Address of ``fastnn_sgemm_router`` (``_ROUTER_IR``) over OpenBLAS's ``openblas_sgemm``,
    reading ``slot`` (a ctypes.c_void_p) at each call; None where this LLVM does not read
    the IR (opaque pointers: LLVM 15 and later). Compiled by Numba's code generator at
    import: only where oneDNN is installed."""
    import llvmlite.binding as llvm
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target

    ir = _ROUTER_IR.format(slot=ctypes.addressof(slot), openblas=openblas_sgemm, trans=TRANS)
    try:
        module = llvm.parse_assembly(ir)
    except RuntimeError:
        return None
    with global_compiler_lock:
        library = cpu_target.target_context.codegen().create_library("fastnn_sgemm_router")
        library.add_llvm_module(module)
        library.finalize()
        return library.get_pointer_to_function("fastnn_sgemm_router")


def _register():
    """Point the four symbols at a library: (the description ``library()`` gives, whether
    it is NumPy's OpenBLAS, whether fastnn_sgemm is the router that can call oneDNN)."""
    import llvmlite.binding as llvm

    asked = os.environ.get("FASTNN_BLAS", "").strip().lower()
    if asked not in ("", "numpy", "scipy", "onednn"):
        warnings.warn(f"FASTNN_BLAS={os.environ['FASTNN_BLAS']!r} is not 'numpy', 'scipy' or 'onednn'; using "
                      "NumPy's OpenBLAS where NumPy has one, else SciPy's BLAS.", RuntimeWarning, stacklevel=2)
        asked = ""
    found = None if asked == "scipy" else _numpy_openblas()
    routed = False
    if found is not None:
        lib, prefix, path = found
        addresses = {routine: ctypes.cast(getattr(lib, f"{prefix}cblas_{routine}64_"), ctypes.c_void_p).value
                     for routine in SIGNATURES}
        describe = getattr(lib, f"{prefix}openblas_get_config64_", None)
        config = ""
        if describe is not None:
            describe.restype = ctypes.c_char_p
            config = describe().decode(errors="replace")
        what = f"NumPy's OpenBLAS ({config or os.path.basename(path)})"
        router = _router(addresses["sgemm"]) if asked in ("", "onednn") and onednn_beside() else None
        if router is not None:
            addresses["sgemm"], routed = router, True
    else:
        addresses = _fallback_adapters()
        reason = "FASTNN_BLAS=scipy" if asked == "scipy" else "this NumPy bundles no OpenBLAS"
        what = f"SciPy's BLAS through Numba's np.dot ({reason})"
    for routine, address in addresses.items():
        llvm.add_symbol(f"fastnn_{routine}", address)
    return what, found is not None, routed


_LIBRARY, NUMPY_OPENBLAS, ROUTED = (None, False, False) if numba.config.DISABLE_JIT else _register()


def library():
    """Which BLAS the kernels' matrix products call in this process (a sentence; where
    float32 products of wide steps may go to oneDNN, ``fastnn._core.products`` says)."""
    return _LIBRARY or "NumPy's np.dot (NUMBA_DISABLE_JIT: the kernels run as Python)"


# -- the products the kernels use ----------------------------------------------------------
@jit
def _operand(X):
    """(CBLAS transpose flag, leading dimension) under which X's memory is op(X) row-major,
    or (0, 0) when it is not (elements not contiguous along one axis)."""
    rows, cols = X.shape
    s0, s1 = X.strides[0] // X.itemsize, X.strides[1] // X.itemsize
    if (cols <= 1 or s1 == 1) and (rows <= 1 or s0 >= cols):
        return NO_TRANS, max(s0 if rows > 1 else cols, cols, 1)
    if (rows <= 1 or s0 == 1) and (cols <= 1 or s1 >= rows):
        return TRANS, max(s1 if cols > 1 else rows, rows, 1)
    return 0, 0


def matmul(A, B, C):
    """C <- A @ B. A (m, k), B (k, n), C (m, n) written; each may be a transposed view."""
    np.dot(A, B, C)


# Not inlined at Numba's IR level (nor are _operand and other_layout): inlined, their layout
# tests made Numba's SSA pass warn ("NumbaIRAssumptionWarning ... please report") 18 times in
# a user's first fit, and each caller typed and lowered them again (a cold tutorial compile
# took a third longer). A call per product costs nothing measurable (the S epoch is unchanged).
@numba.extending.overload(matmul)
def _matmul(A, B, C):
    gemm = _sgemm if C.dtype == types.float32 else _dgemm
    scalar = numba.np.numpy_support.as_dtype(C.dtype).type
    one, zero = scalar(1.0), scalar(0.0)

    @numba.njit
    def other_layout(A, B, C):
        # Operands BLAS cannot take as they are (no kernel passes one: their buffers are
        # packed), as plain loops summed in float64. Not Numba's np.dot, which compiled its
        # own dispatch into every product and imported numba.np.linalg at each process's
        # first kernel load; not contiguous copies either, which took longer still to compile.
        m, n = C.shape
        for i in range(m):
            for j in range(n):
                total = 0.0
                for p in range(A.shape[1]):
                    total += A[i, p] * B[p, j]
                C[i, j] = total

    def impl(A, B, C):
        m, n = C.shape
        k = A.shape[1]
        ta, lda = _operand(A)
        tb, ldb = _operand(B)
        tc, ldc = _operand(C)
        if ta == 0 or tb == 0 or tc != NO_TRANS:
            other_layout(A, B, C)
        elif m > 0 and n > 0:
            gemm(ROW_MAJOR, ta, tb, m, n, k, one, A.ctypes, lda, B.ctypes, ldb, zero, C.ctypes, ldc)

    return impl


def dot(x, y):
    """x . y of two vectors."""
    return np.dot(x, y)


@numba.extending.overload(dot, inline="always")
def _dot(x, y):
    blas_dot = _sdot if x.dtype == types.float32 else _ddot

    def impl(x, y):
        return blas_dot(x.size, x.ctypes, x.strides[0] // x.itemsize, y.ctypes, y.strides[0] // y.itemsize)

    return impl
