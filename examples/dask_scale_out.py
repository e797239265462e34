"""Scaling fastnn out with dask: out-of-core training and a distributed search.

On a dask ``LocalCluster`` (worker processes on this machine; point ``Client`` at a
scheduler's address for a real cluster, nothing else changes):

1. ``dask_ml.wrappers.Incremental`` trains a ``fastnn.MLPClassifier`` on a dask array one
   block at a time (``partial_fit``), so the data never has to fit in memory at once;
2. ``dask_ml.model_selection.HyperbandSearchCV`` searches hidden sizes, activations
   (fastnn's leaky ReLU and ELU too), L2 and step size, giving the promising models more
   ``partial_fit`` calls and dropping the others, on the cluster's workers.

Needs ``pip install dask-ml "dask[distributed]<2025.3"`` (dask-ml's adaptive searches fail
on dask 2025.3 and later: dask/dask-ml#1016). Run ``python examples/dask_scale_out.py``;
``--small`` runs it in seconds (CI does). docs/deploying.md explains each step.
"""
import argparse
import time

import numpy as np
from dask_ml.datasets import make_classification
from dask_ml.model_selection import HyperbandSearchCV, train_test_split
from dask_ml.wrappers import Incremental
from distributed import Client, LocalCluster
from scipy.stats import loguniform

from fastnn import MLPClassifier


def main(n_samples=200_000, block=10_000, passes=5, max_iter=27, workers=2):
    # A table too big to hold at once stands in as a dask array: blocks made on demand.
    X, y = make_classification(n_samples=n_samples, n_features=20, n_informative=10,
                               chunks=block, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    classes = np.arange(2)

    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        print(f"cluster: {len(client.scheduler_info()['workers'])} workers; data: {n_samples} rows in blocks "
              f"of {block}")

        # 1. Out of core: one partial_fit per block, the blocks in a seeded random order.
        start = time.perf_counter()
        inc = Incremental(MLPClassifier(hidden_layer_sizes=(64,), random_state=0), scoring="accuracy",
                          random_state=0)
        for _ in range(passes):
            inc.partial_fit(X_train, y_train, classes=classes)
        print(f"Incremental: {passes} passes, test accuracy {inc.score(X_test, y_test):.3f} "
              f"({time.perf_counter() - start:.1f} s)")

        # 2. Successive halving over random draws of the parameters, on the workers.
        start = time.perf_counter()
        params = {
            # One hidden layer of each width: dask-ml's cv_results_ needs values of one shape.
            "hidden_layer_sizes": [16, 32, 64, 128],
            "activation": ["relu", "tanh", "leaky_relu", "elu"],
            "alpha": loguniform(1e-6, 1e-2),
            "learning_rate_init": loguniform(1e-4, 1e-2),
        }
        search = HyperbandSearchCV(MLPClassifier(random_state=0), params, max_iter=max_iter, random_state=0)
        search.fit(X_train, y_train, classes=classes)
        print(f"HyperbandSearchCV: {search.metadata_['n_models']} models, "
              f"{search.metadata_['partial_fit_calls']} partial_fit calls ({time.perf_counter() - start:.1f} s)")
        best = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in search.best_params_.items())
        print(f"best: {best}; validation accuracy {search.best_score_:.3f}, test accuracy "
              f"{search.score(X_test, y_test):.3f}")
    return inc, search


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a few thousand rows and a short search (seconds)")
    args = parser.parse_args()
    if args.small:
        main(n_samples=4000, block=500, passes=2, max_iter=9)
    else:
        main()
