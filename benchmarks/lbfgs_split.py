"""L-BFGS fits, split vs unsplit (the rule forced on/off), same process, interleaved, median of REPS
(docs/performance.md, "L-BFGS on two cores"). Usage: python benchmarks/lbfgs_split.py [REPS] [CASE...]"""
import sys
import time
import warnings

import numpy as np

import fastnn
from fastnn._core import engine as core
from fastnn.sklearn import MLPClassifier, MLPRegressor
from sklearn.datasets import load_digits
rule = core.should_split_full_batch

def workload(name):
    rng = np.random.default_rng(0)
    if name.startswith("digits"):
        X, y = load_digits(return_X_y=True)
        return X / 16.0, y
    n, d = {"20000x64": (20000, 64), "1000x64": (1000, 64), "300x64": (300, 64)}[name.split()[0]]
    X = rng.standard_normal((n, d))
    y = (X[:, :10] @ rng.standard_normal((10, 10)) + 2 * rng.standard_normal((n, 10))).argmax(1)  # noisy: no early convergence
    if "reg" in name:
        y = np.tanh(X[:, :5]).sum(1) + 0.1 * rng.standard_normal(n)
    if "f32" in name:
        X = X.astype(np.float32)
    return X, y

CASES = [
    ("digits clf (100,) max_iter=200", dict(hidden_layer_sizes=(100,), max_iter=200)),
    ("300x64 clf (64,) max_iter=50", dict(hidden_layer_sizes=(64,), max_iter=50)),
    ("1000x64 clf (32,) max_iter=50", dict(hidden_layer_sizes=(32,), max_iter=50)),
    ("20000x64 clf (256,) max_iter=50", dict(hidden_layer_sizes=(256,), max_iter=50)),
    ("20000x64 clf f32 (256,) max_iter=50", dict(hidden_layer_sizes=(256,), max_iter=50)),
    ("20000x64 reg (256,) max_iter=50", dict(hidden_layer_sizes=(256,), max_iter=50)),
    ("20000x64 clf (256, 256) max_iter=50", dict(hidden_layer_sizes=(256, 256), max_iter=50)),
]
def main():
    warnings.simplefilter("ignore")
    REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    only = sys.argv[2:]
    print(f"threads {fastnn.get_num_threads()}, median of {REPS}")
    for name, kw in CASES:
        if only and not any(o in name for o in only):
            continue
        X, y = workload(name)
        Est = MLPRegressor if "reg" in name else MLPClassifier
        times = {"split": [], "unsplit": []}
        res = {}
        for r in range(REPS):
            for mode in ("split", "unsplit"):
                core.should_split_full_batch = (lambda s, n: True) if mode == "split" else (lambda s, n: False)
                time.sleep(0.5)  # let OpenBLAS's spinning workers (of the previous fit) rest
                est = Est(solver="lbfgs", random_state=0, **kw)
                t0 = time.perf_counter(); est.fit(X, y); times[mode].append(time.perf_counter() - t0)
                res[mode] = (est.n_iter_, est.loss_)
        core.should_split_full_batch = rule
        s, u = np.median(times["split"]), np.median(times["unsplit"])
        print(f"{name:38s} rule={rule(np.array([X.shape[1], *kw['hidden_layer_sizes'], 10]), X.shape[0])!s:5s} "
              f"split {s:7.3f} s  unsplit {u:7.3f} s  x{u/s:.2f}  n_iter {res['split'][0]}/{res['unsplit'][0]} "
              f"loss {res['split'][1]:.10g}/{res['unsplit'][1]:.10g}", flush=True)


if __name__ == "__main__":
    main()
