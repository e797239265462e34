"""asv benchmark suite of fastnn: the Numba kernels against the NumPy reference.

The thread count is fixed here, before any benchmark module imports numpy or numba,
so that BLAS and Numba size their pools once: FASTNN_ASV_THREADS (default 1; one
thread keeps a shared machine's timings stable). ``common.fix_threads`` enforces the
same limit again at run time and ``bench_threads`` records it with every run.
"""
import os

_threads = os.environ.get("FASTNN_ASV_THREADS", "1")
# FASTNN_NUM_THREADS is fastnn's own setting (fastnn.set_num_threads at import).
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "FASTNN_NUM_THREADS"):
    os.environ[_name] = _threads
