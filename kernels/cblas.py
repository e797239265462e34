"""The CBLAS interface the kernels call (kernels/blas.py): its constants, and the types of
the four functions, row-major with 64-bit integers (OpenBLAS's ILP64 build, as NumPy ships it)."""
from numba import types

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

_i32, _i64 = types.int32, types.int64


def _gemm_type(t):
    p = types.CPointer(t)
    return types.void(_i32, _i32, _i32, _i64, _i64, _i64, t, p, _i64, p, _i64, t, p, _i64)


def _dot_type(t):
    p = types.CPointer(t)
    return t(_i64, p, _i64, p, _i64)


# Each routine's type; the kernels call it as the symbol ``fastnn_<routine>``.
SIGNATURES = {
    "sgemm": _gemm_type(types.float32),
    "dgemm": _gemm_type(types.float64),
    "sdot": _dot_type(types.float32),
    "ddot": _dot_type(types.float64),
}
