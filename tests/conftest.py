"""Shared fixtures of fastnn's tests, and the hypothesis profiles.

The property tests run derandomized by default: each test draws the same examples on
every run of the same commit, so the suite's verdict never depends on chance, and no
example database is read (a failure found on one machine does not replay on another).
To explore new examples while developing, select the ``explore`` profile:

    FASTNN_HYPOTHESIS=explore python -m pytest tests/test_robustness.py
    python -m pytest -m slow tests/test_robustness.py     # 10x the examples, same profile rule

A failure found that way prints a ``@reproduce_failure`` blob and the example; add the
example to the test (``@example``) before fixing it.
"""
import os

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("FASTNN_HYPOTHESIS", "ci"))


@pytest.fixture(autouse=True, scope="session")
def _compiles_are_expected():
    """The suite compiles kernel variants the install does not (odd layouts, direct kernel
    calls): no compile notice (fastnn._core.precompile.CompileNotice) in whichever test
    compiles first, so a test's warnings never depend on the order; the notice's own
    tests turn it back on."""
    from fastnn._core import precompile

    precompile._compile_said = True


@pytest.fixture(scope="session")
def digits():
    """The tutorial's digits task: MinMax-scaled pixels, one-hot targets, 80/20 split.

    Returns (X_train, X_test, y_train, y_test) exactly as the tutorial builds them.
    Loaded once per session; tests must not modify the arrays (they are read-only).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder

    data = load_digits()
    X = MinMaxScaler().fit_transform(data.data)
    y = OneHotEncoder(sparse_output=False).fit_transform(data.target.reshape(-1, 1))
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
    for a in (X_train, X_test, y_train, y_test):
        a.setflags(write=False)
    return X_train, X_test, y_train, y_test


@pytest.fixture
def rng():
    """A fresh seeded generator per test, so tests do not depend on their order."""
    return np.random.default_rng(12345)


@pytest.fixture
def one_blas_thread():
    """Run the test with BLAS (numpy's and SciPy's OpenBLAS, which Numba's np.dot calls)
    limited to one thread.

    Results do not depend on it; time does: on this shared 2-core machine under load,
    OpenBLAS's two busy-waiting threads made the tutorial's 1000 full-batch epochs ~20x
    slower (measured: 6.5 s vs 0.34 s per 100 epochs). Thread speed-ups are the
    benchmarks' business, not the tests'.
    """
    from threadpoolctl import threadpool_limits

    import fastnn

    # Load the kernels (and with them SciPy's BLAS) first, so that the limit reaches it.
    fastnn.NeuralNetwork(2, 2, 2, seed=0).forward(np.ones((1, 2)))
    with threadpool_limits(limits=1, user_api="blas"):
        yield
