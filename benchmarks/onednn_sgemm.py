"""oneDNN's float32 GEMM (``dnnl_sgemm``, from the ``fastnn[bf16]`` extra) against the
OpenBLAS the kernels call (NumPy's), per product shape and per epoch.

    python benchmarks/onednn_sgemm.py [--rounds 5] [--workloads M,L] [--epochs-rounds 2]

Needs the bf16 extra (``pip install 'fastnn[bf16]'``: the onednn and tbb wheels).

1. Each product of a training step of the bench's M and L workloads (forward ``A W``,
   weight gradient ``A^T D``, delta ``D W^T``), called through ctypes from one thread of
   Python, the two libraries alternated 0.3 s apart (an idle pool's workers spin for a
   while, on the cores the other library needs): GFLOP/s, median of ``--rounds``.
2. Whole epochs (``fastnn bench --full``, one fresh process each, alternated), with the
   kernels' ``fastnn_sgemm`` symbol pointed at: NumPy's OpenBLAS; oneDNN for every
   product; or, per shape, whichever library part 1 measured faster. The symbol is
   re-pointed before any kernel is linked (and ``FASTNN_BLAS=numpy`` keeps fastnn's own
   router out), so the cached kernels run unchanged; oneDNN's TBB threads are held to
   fastnn's thread count for the run.

fastnn itself sends a wide float32 step's products all to one library, chosen by a
shorter measurement of the same kind (fastnn/_core/products.py); this script is the
longer look behind that rule. docs/performance.md keeps the dated results.
"""
import argparse
import ctypes
import json
import os
import subprocess
import sys
import time

import numpy as np

from fastnn._core import onednn, products
from fastnn.kernels import blas, cblas

WIDTH = {"M": 1024, "L": 4096}
ROUTES = ("openblas", "onednn", "per-shape")


def shape_speeds(shape, openblas, dnnl, rounds):
    """GFLOP/s of (OpenBLAS, oneDNN) on one product shape, and their results' max relative difference."""
    m, k, n, ta, tb = shape
    rng = np.random.default_rng(0)
    A = rng.random((k, m) if ta else (m, k), dtype=np.float32)
    B = rng.random((n, k) if tb else (k, n), dtype=np.float32)
    C = {"openblas": np.empty((m, n), np.float32), "onednn": np.empty((m, n), np.float32)}
    args = (1.0, A.ctypes.data, A.shape[1], B.ctypes.data, B.shape[1], 0.0)
    calls = {
        "openblas": lambda: openblas(cblas.ROW_MAJOR, cblas.TRANS if ta else cblas.NO_TRANS,
                                     cblas.TRANS if tb else cblas.NO_TRANS, m, n, k, *args, C["openblas"].ctypes.data, n),
        "onednn": lambda: dnnl(b"T" if ta else b"N", b"T" if tb else b"N", m, n, k, *args, C["onednn"].ctypes.data, n),
    }
    reps = max(3, int(2e9 / (2 * m * n * k)))
    speeds = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            call()
            start = time.perf_counter()
            for _ in range(reps):
                call()
            speeds[name].append(2 * m * n * k * reps / (time.perf_counter() - start) / 1e9)
            time.sleep(0.3)  # the other pool's idle workers stop spinning first (benchmarks/blas_choice.py)
    difference = float(np.abs(C["openblas"] - C["onednn"]).max() / np.abs(C["openblas"]).max())
    return float(np.median(speeds["openblas"])), float(np.median(speeds["onednn"])), difference


# -- a bench process with fastnn_sgemm re-pointed ---------------------------------------------------
def _child(route, faster_json, bench_args):
    """Run ``fastnn bench`` with the kernels' float32 products going where ``route`` says."""
    import llvmlite.binding as llvm
    from numba import cfunc, types

    from fastnn._app import bench

    onednn.load(onednn.library_path())
    lib, prefix, _ = blas._numpy_openblas()
    llvm.add_symbol("bench_openblas_sgemm",
                    ctypes.cast(getattr(lib, f"{prefix}cblas_sgemm64_"), ctypes.c_void_p).value)
    openblas = types.ExternalFunction("bench_openblas_sgemm", cblas.SIGNATURES["sgemm"])
    i64, fp = types.int64, types.CPointer(types.float32)
    dnnl = types.ExternalFunction("dnnl_sgemm", types.int32(types.int8, types.int8, i64, i64, i64, types.float32, fp,
                                                            i64, fp, i64, types.float32, fp, i64))
    # (m, n, k, A transposed, B transposed) of the shapes that go to oneDNN; frozen into the router.
    chosen = np.array([[m, n, k, ta, tb] for m, k, n, ta, tb in json.loads(faster_json)] or [[-1] * 5], np.int64)
    everything = route == "onednn"
    trans = cblas.TRANS

    @cfunc(cblas.SIGNATURES["sgemm"])
    def router(order, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
        use = everything
        for i in range(chosen.shape[0]):
            if (chosen[i, 0] == m and chosen[i, 1] == n and chosen[i, 2] == k
                    and chosen[i, 3] == (ta == trans) and chosen[i, 4] == (tb == trans)):
                use = True
        if use:
            dnnl(np.int8(84) if ta == trans else np.int8(78), np.int8(84) if tb == trans else np.int8(78),
                 m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)
        else:
            openblas(order, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)

    if route != "openblas":
        llvm.add_symbol("fastnn_sgemm", router.address)  # before any kernel is linked
    with onednn.threads_limited():
        bench.main(bench_args)


def epoch_time(route, faster, workload):
    """(epoch median s, GEMM floor s, peak RSS MiB) of one bench process."""
    bench_args = ["--full", "--workloads", workload, "--impls", "fastnn", "--repeats", "3"]
    code = f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import onednn_sgemm as o; " \
           f"o._child({route!r}, {json.dumps(faster)!r}, {bench_args!r})"
    # FASTNN_BLAS=numpy: the kernels' own router (fastnn._core.products) stays out; this script's routes.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, FASTNN_BLAS="numpy")).stdout
    rows = [line.split("|") for line in out.splitlines() if line.startswith(f"| {workload} ")]
    epoch = next(r for r in rows if r[2].strip() == "fastnn")[3].split()
    floor = next(r for r in rows if "floor" in r[2])[3].split()
    rss = next(r for r in rows if r[2].strip() == "fastnn")[8].strip()
    seconds = lambda value, unit: float(value) * {"ms": 1e-3, "s": 1.0}[unit]  # noqa: E731
    return seconds(epoch[0], epoch[-1]), seconds(floor[0], floor[-1]), rss


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workloads", default="M,L")
    parser.add_argument("--epochs-rounds", type=int, default=2, help="alternations of the three routes (0: shapes only)")
    args = parser.parse_args()
    path = onednn.library_path()
    if path is None:
        sys.exit("oneDNN is not installed: pip install 'fastnn[bf16]'")
    openblas, dnnl = products.libraries(path)
    print(f"OpenBLAS: {blas.library()}\noneDNN: {path}\n")
    for workload in [w.strip().upper() for w in args.workloads.split(",") if w.strip()]:
        print(f"{workload}: 784-{WIDTH[workload]}-{WIDTH[workload]}-10, batch 256, float32\n")
        print("| product | m x k x n | OpenBLAS GFLOP/s | oneDNN GFLOP/s | oneDNN / OpenBLAS | max rel. difference |")
        print("|---|---|---|---|---|---|")
        faster = []
        for shape in products.step_products(WIDTH[workload]):
            m, k, n, ta, tb = shape
            ob, dn, diff = shape_speeds(shape, openblas, dnnl, args.rounds)
            what = "A^T D" if ta else "D W^T" if tb else "A W"
            print(f"| {what} | {m}x{k}x{n} | {ob:.1f} | {dn:.1f} | {dn / ob:.2f} | {diff:.1e} |", flush=True)
            if dn > ob:
                faster.append(shape)
        if args.epochs_rounds:
            print("\n| round | route | epoch | GEMM floor (np.dot) | epoch / floor | peak RSS +MiB |")
            print("|---|---|---|---|---|---|")
            for r in range(args.epochs_rounds):
                for route in ROUTES:
                    epoch, floor, rss = epoch_time(route, faster, workload)
                    print(f"| {r + 1} | {route} | {epoch:.2f} s | {floor:.2f} s | {epoch / floor:.2f} | {rss} |", flush=True)
        print()


if __name__ == "__main__":
    main()
