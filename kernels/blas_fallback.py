"""CBLAS-shaped adapters over Numba's ``np.dot`` (SciPy's BLAS), for a NumPy without a
bundled OpenBLAS: ``blas.py`` points the kernels' symbols here. Compiled only there
(``cfunc`` with the cache), on the first import that needs them.

Only what the kernels ask for is supported: alpha = 1 and beta = 0 for the products
(``blas.matmul``), positive increments for the dots (``blas.dot``).
"""
import warnings

import numpy as np
from numba import carray, cfunc, njit
from numba.core.errors import NumbaPerformanceWarning

from .cblas import NO_TRANS, SIGNATURES


@njit(inline="always")
def _op(X, trans, rows, cols, ld):
    """op(X) (rows, cols) from its memory, as CBLAS reads it."""
    if trans == NO_TRANS:
        return carray(X, (max(rows, 1), ld))[:rows, :cols]
    return carray(X, (max(cols, 1), ld))[:cols, :rows].T


def _gemm(order, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    if ldc == n and lda == (k if ta == NO_TRANS else m) and ldb == (n if tb == NO_TRANS else k):
        # Tight operands, as the kernels pass them: views whose layouts Numba knows, so its
        # np.dot hands BLAS transpose flags rather than copies (four compiled products).
        out = carray(C, (m, n))
        if ta == NO_TRANS and tb == NO_TRANS:
            np.dot(carray(A, (m, k)), carray(B, (k, n)), out)
        elif ta == NO_TRANS:
            np.dot(carray(A, (m, k)), carray(B, (n, k)).T, out)
        elif tb == NO_TRANS:
            np.dot(carray(A, (k, m)).T, carray(B, (k, n)), out)
        else:
            np.dot(carray(A, (k, m)).T, carray(B, (n, k)).T, out)
    else:
        carray(C, (max(m, 1), ldc))[:m, :n] = np.dot(_op(A, ta, m, k, lda), _op(B, tb, k, n, ldb))


def _dot(n, x, incx, y, incy):
    return np.dot(carray(x, (max((n - 1) * incx + 1, 0),))[::incx], carray(y, (max((n - 1) * incy + 1, 0),))[::incy])


with warnings.catch_warnings():  # np.dot on views: as np.dot in the kernels did before
    warnings.simplefilter("ignore", NumbaPerformanceWarning)
    sgemm = cfunc(SIGNATURES["sgemm"], cache=True)(_gemm)
    dgemm = cfunc(SIGNATURES["dgemm"], cache=True)(_gemm)
    sdot = cfunc(SIGNATURES["sdot"], cache=True)(_dot)
    ddot = cfunc(SIGNATURES["ddot"], cache=True)(_dot)
