"""The thread counts every other benchmark ran with (FASTNN_ASV_THREADS, default 1),
recorded with the results so that a change of setting shows up as a step in the plots."""
from .common import fix_threads


class Threads:
    unit = "threads"
    rounds = 1

    def setup(self):
        import fastnn  # noqa: F401  (loads Numba; fix_threads loads SciPy's BLAS)

        fix_threads()

    def track_blas_threads(self):
        """Threads of the BLAS libraries (NumPy's and SciPy's OpenBLAS) as limited."""
        from .common import blas_threads

        return blas_threads()

    def track_numba_threads(self):
        """Numba's thread pool size (NUMBA_NUM_THREADS), used by any prange kernel."""
        import numba

        return numba.config.NUMBA_NUM_THREADS
