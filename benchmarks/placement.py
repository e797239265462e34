"""Where the kernels' buffers start: NumPy's placement against fastnn's (``fastnn._core.buffers``).

    python benchmarks/placement.py [--dtype float64] [--rounds 5] [--workloads S L]

1. ``adam_update`` over the parameters of ``fastnn bench``'s L (20.0M) with theta, g, m and v
   placed three ways: as NumPy places large arrays (16 bytes past a page boundary, all
   four alike), on cache lines at one offset in a page, and on cache lines 1 KiB apart
   (fastnn's slots). Per placement the best of 5 calls, then the median over rounds.
2. Epochs of the bench's workloads (one ``train`` call each, as ``fastnn bench`` times
   them), two models in one process, alternated: one whose buffers ``buffers.empty``
   places, one whose buffers come from ``np.empty`` as before. Medians over rounds.
Prints Markdown tables. Run it with nothing else busy: the effect is a few percent of an epoch.
"""
import argparse
import statistics
import time
from unittest import mock

import numpy as np

import fastnn
from fastnn._app import bench
from fastnn._core import buffers
from fastnn.kernels.optimizers import adam_update

L_PARAMS = 20_037_642


def adam_table(dtype, rounds):
    placements = {
        "NumPy's (16 B past a page, all alike)": (16, 16, 16, 16),
        "cache lines, one page offset": (0, 0, 0, 0),
        "cache lines, 1 KiB apart (fastnn)": (0, 1024, 2048, 3072),
    }
    arrays = {}
    for name, offsets in placements.items():
        theta, g, m, v = (buffers.placed(L_PARAMS, dtype, offset) for offset in offsets)
        theta[:], g[:], m[:], v[:] = 0.5, 1e-3, 0.0, 0.0
        arrays[name] = (theta, g, m, v)
    times = {name: [] for name in placements}
    for _ in range(rounds):
        for name, (theta, g, m, v) in arrays.items():
            best = np.inf
            for _ in range(5):
                start = time.perf_counter()
                adam_update(theta, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 1)
                best = min(best, time.perf_counter() - start)
            times[name].append(best)
    gigabytes = 7 * L_PARAMS * np.dtype(dtype).itemsize / 1e9  # reads theta, g, m, v; writes three
    rows = ["| placement of theta, g, m, v | adam_update | GB/s |", "|---|---|---|"]
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append(f"| {name} | {med * 1e3:.1f} ms [{min(ts) * 1e3:.1f}-{max(ts) * 1e3:.1f}] | {gigabytes / med:.1f} |")
    return "\n".join(rows)


def numpy_empty(size, dtype, slot):
    return np.empty(size, dtype=dtype)


def epoch_table(names, dtype, rounds):
    rows = ["| workload | fastnn's placement | NumPy's | NumPy's / fastnn's |", "|---|---|---|---|"]
    for w in bench.workloads(1.0, names):
        X, y = bench.make_data(w, dtype)
        runs = {}
        for name, empty in (("fastnn", buffers.empty), ("numpy", numpy_empty)):
            with mock.patch.object(buffers, "empty", empty):
                run_epoch = bench._fastnn_runner(fastnn, w, X, y, dtype)
                run_epoch()  # warm-up: kernel load, the moments' first touch

            def timed(run_epoch=run_epoch, empty=empty):
                with mock.patch.object(buffers, "empty", empty):  # the Workspace of every call too
                    start = time.perf_counter()
                    run_epoch()
                    return time.perf_counter() - start

            runs[name] = timed
        # S's epochs are short: the median of 20 per round.
        per_round = 20 if w.name == "S" else 1
        times = {name: [] for name in runs}
        for _ in range(rounds):
            for name, timed in runs.items():
                times[name].append(statistics.median(timed() for _ in range(per_round)))
        ours, theirs = statistics.median(times["fastnn"]), statistics.median(times["numpy"])
        rows.append(f"| {w.label()} | {bench.fmt_seconds(ours)} | {bench.fmt_seconds(theirs)} | {theirs / ours:.3f}x |")
        del runs
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workloads", nargs="*", default=["S", "L"], choices=["S", "M", "L"])
    parser.add_argument("--no-adam", action="store_true", help="skip the adam_update table")
    args = parser.parse_args(argv)
    dtype = np.dtype(args.dtype)
    print(f"{dtype.name}, {args.rounds} rounds, {fastnn.kernels.blas.library()}\n")
    if not args.no_adam:
        print(adam_table(dtype, args.rounds) + "\n")
    if args.workloads:
        print(epoch_table(args.workloads, dtype, args.rounds))


if __name__ == "__main__":
    main()
