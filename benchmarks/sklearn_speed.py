"""Issue-5 speed check: fastnn.MLPClassifier vs scikit-learn's, same data and parameters,
one process, fit time (median of --repeats runs), printed as a markdown table.

    python benchmarks/sklearn_speed.py [--repeats 3] [--threads 1] [--workloads digits,digits32,M]

Workloads:
  digits      load_digits() as is (1797 x 64, float64), default parameters: hidden 100,
              relu, adam, batch 200, max_iter 200 (converges earlier), random_state 0.
  digits f32  the same data as float32 (both libraries then train in float32).
  M           20000 x 784 synthetic float32, 10 classes, 784-1024-1024-10, adam,
              batch 256, max_iter 2, random_state 0.
Each row is run with BLAS limited to each of --threads (threadpoolctl: numpy's and
SciPy's OpenBLAS, the latter being the one fastnn's kernels call). fastnn is warmed up
first (compilation excluded); the two libraries alternate so that machine noise hits
both alike. "cpu" is the main thread's CPU time (time.thread_time): with one BLAS thread
it is the whole computation and is the stable ratio on a loaded machine (wall time
then includes waiting for a core); with more BLAS threads it undercounts, so compare
wall times there. Not an asv benchmark (no time_* names).
"""
import argparse
import os
import statistics
import time
import warnings

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (load SciPy's BLAS so that the thread limit reaches it)
import sklearn.neural_network as skn
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

import fastnn


def workloads(names):
    """(label, X, y, params) of each named workload: 'digits', 'digits32', 'M'."""
    out = []
    X, y = load_digits(return_X_y=True)
    if "digits" in names:
        out.append(("digits (float64, defaults)", X, y, dict(random_state=0)))
    if "digits32" in names:
        out.append(("digits (float32 input, defaults)", X.astype(np.float32), y, dict(random_state=0)))
    if "M" in names:
        rng = np.random.RandomState(0)
        XM = rng.rand(20000, 784).astype(np.float32)
        yM = rng.randint(0, 10, 20000)
        out.append(("M (20000x784 float32, 784-1024-1024-10, batch 256, 2 epochs)", XM, yM,
                    dict(hidden_layer_sizes=(1024, 1024), batch_size=256, max_iter=2, random_state=0)))
    return out


def fit_once(cls, X, y, params):
    w0, c0 = time.perf_counter(), time.thread_time()
    model = cls(**params).fit(X, y)
    return time.perf_counter() - w0, time.thread_time() - c0, model


def measure(X, y, params, repeats):
    # Warm-up: compile (or load from cache) fastnn's kernels for this dtype.
    fastnn.MLPClassifier(**{**params, "max_iter": 1}).fit(X[:300], y[:300])
    runs = {"fastnn": [], "sklearn": []}
    models = {}
    for _ in range(repeats):
        for name, cls in (("fastnn", fastnn.MLPClassifier), ("sklearn", skn.MLPClassifier)):
            wall, cpu, models[name] = fit_once(cls, X, y, params)
            runs[name].append((wall, cpu))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
    return med, models["fastnn"], models["sklearn"]


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default="1", help="comma-separated BLAS thread counts, e.g. 1,2")
    parser.add_argument("--workloads", default="digits,digits32,M", help="comma-separated: digits, digits32, M")
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    warnings.simplefilter("ignore", ConvergenceWarning)
    load0 = os.getloadavg()[0]
    rows = []
    for label, X, y, params in workloads(args.workloads.split(",")):
        for n in threads:
            with threadpool_limits(limits=n, user_api="blas"):
                med, fa, sk = measure(X, y, params, args.repeats)
            (fw, fc), (sw, sc) = med["fastnn"], med["sklearn"]
            iters = str(fa.n_iter_) if fa.n_iter_ == sk.n_iter_ else f"{fa.n_iter_} vs {sk.n_iter_}"
            rows.append((label, n, iters, fw, fc, sw, sc, abs(fa.loss_ - sk.loss_) / abs(sk.loss_)))
    load1 = os.getloadavg()[0]
    print(f"\n{machine()}; median of {args.repeats} fits; load average {load0:.1f} before, {load1:.1f} after\n")
    print("| workload | BLAS threads | epochs | fastnn wall (cpu) s | scikit-learn wall (cpu) s "
          "| speed-up wall (cpu) | final loss_ rel. diff |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, n, it, fw, fc, sw, sc, diff in rows:
        print(f"| {label} | {n} | {it} | {fw:.3f} ({fc:.3f}) | {sw:.3f} ({sc:.3f}) | {sw / fw:.1f}x (**{sc / fc:.1f}x**) "
              f"| {diff:.0e} |")
    return rows


if __name__ == "__main__":
    main()
