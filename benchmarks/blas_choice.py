"""NumPy's OpenBLAS (what the kernels call, kernels/blas.py) against SciPy's (what Numba's
np.dot calls) at a training step's GEMM shapes, both from compiled code, alternated.

    python benchmarks/blas_choice.py [--rounds 5]

Prints GFLOP/s per library and shape, their ratio, and whether the products are bitwise
equal. Rounds are 0.3 s apart so that one library's idle workers stop spinning before the
other runs (called call by call, the two pools slow each other down).
"""
import argparse
import time

import numba
import numpy as np

from fastnn.kernels import blas

SHAPES = [(32, 64, 64), (32, 64, 10), (200, 64, 100), (1797, 64, 64), (256, 784, 1024), (256, 1024, 1024)]


@numba.njit(nogil=True)
def _kernels_blas(A, B, C, reps):
    for _ in range(reps):
        blas.matmul(A, B, C)


@numba.njit(nogil=True)
def _numba_np_dot(A, B, C, reps):
    for _ in range(reps):
        np.dot(A, B, C)


def compare(m, k, n, dtype, rounds):
    rng = np.random.default_rng(0)
    A, B = rng.random((m, k)).astype(dtype), rng.random((k, n)).astype(dtype)
    C1, C2 = np.empty((m, n), dtype), np.empty((m, n), dtype)
    reps = max(1, int(2e8 / (2 * m * k * n)))
    times = {"kernels": [], "scipy": []}
    for _ in range(rounds):
        for name, fn, C in (("kernels", _kernels_blas, C1), ("scipy", _numba_np_dot, C2)):
            time.sleep(0.3)
            t = time.perf_counter()
            fn(A, B, C, reps)
            times[name].append((time.perf_counter() - t) / reps)
    gflop = 2 * m * k * n / 1e9
    ours, theirs = np.median(times["kernels"]), np.median(times["scipy"])
    return gflop / ours, gflop / theirs, theirs / ours, bool(np.array_equal(C1, C2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"kernels: {blas.library()}")
    print("| m x k x n | dtype | kernels' BLAS GFLOP/s | SciPy's (np.dot) GFLOP/s | ratio | bitwise equal |")
    print("|---|---|---|---|---|---|")
    for dtype in ("float32", "float64"):
        for m, k, n in SHAPES:
            ours, theirs, ratio, same = compare(m, k, n, dtype, args.rounds)
            print(f"| {m}x{k}x{n} | {dtype} | {ours:.1f} | {theirs:.1f} | {ratio:.3f} | {same} |", flush=True)


if __name__ == "__main__":
    main()
