"""The scikit-learn face's minibatches split between two cores (the engine's rule, as the
tutorial face's): the same answers as one core to rounding, the same bits whether or not
the helper takes part, only dense unweighted minibatches without weight decay, and no
helper thread left behind."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastnn
from fastnn._core import sk_engine, split as _split
from fastnn.sklearn import MLPClassifier
from test_split import two_cores  # noqa: F401 - the fixture
from test_split_lbfgs import _no_helper


@pytest.fixture(scope="module")
def digits_all():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture
def workspaces(monkeypatch):
    """The workspaces the fits make, in order."""
    made = []

    def recording(*args, **kwargs):
        made.append(workspace(*args, **kwargs))
        return made[-1]

    workspace = sk_engine.workspace
    monkeypatch.setattr(sk_engine, "workspace", recording)
    return made


def _fit(X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged in a few epochs: on purpose
        return MLPClassifier(random_state=0, max_iter=8, **params).fit(X, y)


def test_the_default_minibatches_split_and_agree_with_one_core(digits_all, workspaces, two_cores):  # noqa: F811
    X, y = digits_all  # 64-100-10 with scikit-learn's batch of 200 rows: 1.5M multiply-adds a step
    split_fit = _fit(X, y)
    assert workspaces[-1].split_grads is not None
    assert _no_helper() and fastnn.get_num_threads() == 2
    fastnn.set_num_threads(1)  # no split: each batch in one pass
    one_core = _fit(X, y)
    assert workspaces[-1].split_grads is None
    assert split_fit.n_iter_ == one_core.n_iter_
    np.testing.assert_allclose(split_fit.loss_curve_, one_core.loss_curve_, rtol=1e-12)
    for a, b in zip(split_fit.coefs_ + split_fit.intercepts_, one_core.coefs_ + one_core.intercepts_):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(b).max())


def test_a_split_fit_gives_the_same_bits_with_or_without_the_helper(digits_all, monkeypatch, two_cores):  # noqa: F811
    X, y = digits_all
    fits = [_fit(X.astype(np.float32), y, early_stopping=True)]  # validation rows gathered too
    monkeypatch.setattr(_split.Pace, "helper_joins", lambda self: False)  # the caller computes every block
    fits.append(_fit(X.astype(np.float32), y, early_stopping=True))
    a, b = fits
    assert a.coefs_[0].dtype == np.float32 and a.loss_curve_ == b.loss_curve_
    for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert u.tobytes() == v.tobytes()


@pytest.mark.parametrize("case", ["full batch", "weighted", "sparse", "weight decay", "dropout", "small steps"])
def test_only_dense_unweighted_minibatches_of_a_mid_size_split(digits_all, workspaces, case, two_cores):  # noqa: F811
    X, y = digits_all
    kwargs, fit_kwargs = {}, {}
    if case == "full batch":
        kwargs["batch_size"] = X.shape[0]
    elif case == "weighted":
        fit_kwargs["sample_weight"] = np.ones(X.shape[0])
    elif case == "sparse":
        X = sp.csr_matrix(X)
    elif case == "weight decay":
        kwargs["weight_decay"] = 1e-4
    elif case == "dropout":
        kwargs["dropout"] = 0.1
    else:
        kwargs["batch_size"] = 32  # 0.24M multiply-adds a step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MLPClassifier(random_state=0, max_iter=2, **kwargs).fit(X, y, **fit_kwargs)
    assert workspaces[-1].split_grads is None


def test_partial_fit_splits_and_stops_its_helper(digits_all, workspaces, two_cores):  # noqa: F811
    X, y = digits_all
    clf = MLPClassifier(random_state=0, batch_size=200)
    for _ in range(3):
        clf.partial_fit(X, y, classes=np.arange(10))
        assert workspaces[-1].split_grads is not None and _no_helper()
    assert clf.t_ == 3 * X.shape[0] and np.isfinite(clf.loss_)
