"""What a wide-layer epoch cannot go under: the GEMM floor plus the update's memory traffic.

    python benchmarks/wide_floor.py [--workload L] [--dtype float32] [--rounds 3]

In one process, alternated for ``--rounds`` rounds (medians): one epoch of a ``fastnn
bench`` workload (ReLU, its batch size, the tutorial face) with Adam and with plain SGD;
the bench's GEMM floor (an epoch of ``np.dot`` alone at the epoch's shapes); and the
machine's memory bandwidth, from an in-place NumPy pass over arrays of the parameters'
size (a += b: two arrays read, one written), on one thread and split between two.

An Adam step reads theta, g, m and v and writes theta, m and v: seven arrays of p
parameters that no cache holds at these widths. So an Adam epoch cannot go under
    GEMM floor + steps x 7 p itemsize / bandwidth,
however its passes are threaded; the GEMM floor alone does not count that traffic.
Prints one Markdown table.
"""
import argparse
import statistics
import threading
import time

import numpy as np

import fastnn
from fastnn._app import bench
from fastnn.kernels import blas


def epoch_timer(run_epoch):
    """Seconds of one call of ``run_epoch``, after a warm-up one."""

    def timed():
        start = time.perf_counter()
        run_epoch()
        return time.perf_counter() - start

    timed()  # warm-up: kernel load, first touch of the moments
    return timed


def bandwidth(p, dtype, threads):
    """Bytes per second of ``a += b`` over p elements (3 p itemsize moved), on ``threads``
    threads each taking a contiguous share (NumPy releases the GIL in the loop)."""
    a, b = np.ones(p, dtype=dtype), np.ones(p, dtype=dtype)
    bounds = np.linspace(0, p, threads + 1).astype(int)
    shares = [(a[lo:hi], b[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]

    def once():
        workers = [threading.Thread(target=np.add, args=(x, y), kwargs={"out": x}) for x, y in shares]
        start = time.perf_counter()
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        return time.perf_counter() - start

    once()
    return 3 * p * a.itemsize / min(once() for _ in range(5))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="L", choices=["M", "L"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    w = bench.workloads(1.0, [args.workload])[0]
    X, y = bench.make_data(w, np.dtype(args.dtype))
    p = sum(a * b + b for a, b in zip(w.sizes[:-1], w.sizes[1:]))
    steps = len(bench.batch_sizes(w))
    runs = {name: epoch_timer(bench._fastnn_runner(fastnn, w, X, y, X.dtype, optimizer=name))
            for name in ("adam", "sgd")}
    runs["floor"] = epoch_timer(bench.floor_runner(w, X.dtype))
    times = {key: [] for key in ("adam", "sgd", "floor", "bw1", "bw2")}
    for r in range(args.rounds):
        for name in (("adam", "sgd", "floor") if r % 2 == 0 else ("floor", "sgd", "adam")):
            times[name].append(runs[name]())
        times["bw1"].append(bandwidth(p, X.dtype, 1))
        times["bw2"].append(bandwidth(p, X.dtype, 2))
    med = {key: statistics.median(values) for key, values in times.items()}
    traffic = steps * 7 * p * X.dtype.itemsize / max(med["bw1"], med["bw2"])
    bound = med["floor"] + traffic
    print(f"{args.workload} {w.sizes}, {w.n} rows, batch {w.batch}, {args.dtype}: p = {p:,} parameters, "
          f"{steps} steps; medians of {args.rounds} rounds; {blas.library()}")
    print("| epoch, Adam | epoch, SGD | GEMM floor | bandwidth 1 / 2 threads | floor + Adam's traffic "
          "| Adam epoch / GEMM floor | Adam epoch / (floor + traffic) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {med['adam']:.3f} s | {med['sgd']:.3f} s | {med['floor']:.3f} s | {med['bw1'] / 1e9:.1f} / "
          f"{med['bw2'] / 1e9:.1f} GB/s | {bound:.3f} s ({bound / med['floor']:.3f}x) | "
          f"{med['adam'] / med['floor']:.3f}x | {med['adam'] / bound:.3f}x |")


if __name__ == "__main__":
    main()
