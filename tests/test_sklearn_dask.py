"""GridSearchCV over a dask.distributed cluster of worker processes, through joblib's dask
backend: how a search that outgrows one machine runs on a cluster. It must find what a
sequential search finds, and the workers must load the kernels from Numba's cache."""
import warnings

import numpy as np
import pytest

pytest.importorskip("distributed")  # the test extra installs dask[distributed]

import joblib
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from fastnn.sklearn import MLPClassifier, MLPRegressor

RNG = np.random.RandomState(0)
X = RNG.randn(120, 6)
Y_MULTI = np.digitize(X[:, 0] - X[:, 2], [-0.6, 0.6])
Y_REG = X @ RNG.randn(6)
GRID = dict(alpha=[1e-4, 1e-1], hidden_layer_sizes=[(4,), (8,)])


def _kernel_cache_stats():
    """(compilations, loads from the cache) of the epoch kernel in this process."""
    from fastnn.kernels import epoch

    stats = epoch.fit_epoch.stats
    return sum(stats.cache_misses.values()), sum(stats.cache_hits.values())


def test_grid_search_on_dask_cluster_matches_sequential():
    clf = MLPClassifier(max_iter=20, learning_rate_init=0.01, random_state=0)
    reg = MLPRegressor(max_iter=20, learning_rate_init=0.01, random_state=0, solver="sgd")
    # The sequential searches compile (or load) the kernels here first, so that the
    # cache files exist before the workers start.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        seq_clf = GridSearchCV(clf, GRID, cv=3, n_jobs=1).fit(X, Y_MULTI)
        seq_reg = GridSearchCV(reg, GRID, cv=3, n_jobs=1).fit(X, Y_REG)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        with joblib.parallel_config(backend="dask"), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            dist_clf = GridSearchCV(clf, GRID, cv=3, n_jobs=-1).fit(X, Y_MULTI)
            dist_reg = GridSearchCV(reg, GRID, cv=3, n_jobs=-1).fit(X, Y_REG)
        per_worker = client.run(_kernel_cache_stats)
    for seq, dist in ((seq_clf, dist_clf), (seq_reg, dist_reg)):
        assert dist.best_params_ == seq.best_params_
        # The same fits in other processes: the same scores (seeded runs are deterministic).
        for key in ("mean_test_score", "split0_test_score", "split2_test_score"):
            np.testing.assert_allclose(dist.cv_results_[key], seq.cv_results_[key], rtol=1e-12, atol=0)
        np.testing.assert_allclose(dist.best_estimator_.loss_curve_, seq.best_estimator_.loss_curve_, rtol=1e-12)
    # The workers trained, loading the epoch kernel from Numba's cache: no compilation.
    assert len(per_worker) == 2
    assert all(misses == 0 for misses, _ in per_worker.values()), per_worker
    assert sum(hits for _, hits in per_worker.values()) >= 1, per_worker
