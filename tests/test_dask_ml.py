"""dask-ml over fastnn's estimators: ``Incremental`` (out-of-core partial_fit over the blocks
of a dask array) and ``HyperbandSearchCV`` (successive halving on a dask.distributed
cluster). Both drive only partial_fit, along which fastnn follows scikit-learn's trajectory,
so each must give what scikit-learn's own estimators give in the same wrapper. And the
example in examples/ runs."""
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dask_ml")  # the test extra installs dask-ml and dask[distributed]

import dask.array as da
from dask_ml.model_selection import HyperbandSearchCV
from dask_ml.wrappers import Incremental
from distributed import Client, LocalCluster
from sklearn import neural_network

from fastnn.sklearn import MLPClassifier, MLPRegressor

RNG = np.random.RandomState(0)
X = RNG.randn(800, 6)
Y_MULTI = np.digitize(X[:, 0] - X[:, 2], [-0.6, 0.6])
Y_REG = X @ RNG.randn(6)
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dask_scale_out.py"


def blocks(a):
    return da.from_array(a, chunks=100)


def assert_same_network(a, b):
    for x, y in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fastnn_cls, sklearn_cls, y, fit_params", [
    (MLPClassifier, neural_network.MLPClassifier, Y_MULTI, {"classes": [0, 1, 2]}),
    (MLPRegressor, neural_network.MLPRegressor, Y_REG, {}),
])
def test_incremental_matches_scikit_learn(fastnn_cls, sklearn_cls, y, fit_params):
    wrapped = []
    for cls in (fastnn_cls, sklearn_cls):
        # random_state: the wrapper visits the blocks in a random order, the same for both.
        inc = Incremental(cls(hidden_layer_sizes=(8,), learning_rate_init=0.01, random_state=0), random_state=0)
        for _ in range(3):  # passes over the 8 blocks
            inc.partial_fit(blocks(X), blocks(y), **fit_params)
        wrapped.append(inc)
    ours, theirs = wrapped
    assert ours.estimator_.t_ == theirs.estimator_.t_ == 3 * len(X)
    assert_same_network(ours.estimator_, theirs.estimator_)
    np.testing.assert_allclose(ours.estimator_.loss_curve_, theirs.estimator_.loss_curve_, rtol=1e-10)
    predicted = ours.predict(blocks(X))  # blockwise, lazily
    assert isinstance(predicted, da.Array)
    np.testing.assert_allclose(predicted.compute(), theirs.predict(blocks(X)).compute(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.estimator_.score(X, y), theirs.estimator_.score(X, y), rtol=1e-10)


def test_hyperband_search_matches_scikit_learn():
    params = {"alpha": [1e-4, 1e-2, 1.0], "hidden_layer_sizes": [4, 8, 16], "learning_rate_init": [1e-3, 1e-2],
              "activation": ["relu", "tanh"]}
    searches = []
    # Threads in this process: the search's scheduling is what is tested, not process start-up.
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # dask-ml's own
        for cls in (MLPClassifier, neural_network.MLPClassifier):
            search = HyperbandSearchCV(cls(random_state=0), params, max_iter=9, random_state=0)
            searches.append(search.fit(blocks(X), blocks(Y_MULTI), classes=[0, 1, 2]))
    ours, theirs = searches
    # The same models, trained as long, scored the same, so the same decisions.
    assert ours.metadata_ == theirs.metadata_ and ours.metadata_["n_models"] == 17
    assert ours.best_params_ == theirs.best_params_
    np.testing.assert_allclose(ours.cv_results_["test_score"], theirs.cv_results_["test_score"], rtol=1e-10)
    np.testing.assert_array_equal(ours.cv_results_["partial_fit_calls"], theirs.cv_results_["partial_fit_calls"])
    assert_same_network(ours.best_estimator_, theirs.best_estimator_)


def test_example_runs():
    result = subprocess.run([sys.executable, str(EXAMPLE), "--small"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "cluster: 2 workers; data: 4000 rows in blocks of 500"
    assert lines[1].startswith("Incremental: 2 passes, test accuracy ")
    assert lines[2].startswith("HyperbandSearchCV: 17 models, 69 partial_fit calls")
    assert lines[3].startswith("best: ") and float(lines[3].rsplit("test accuracy ", 1)[1]) > 0.6
