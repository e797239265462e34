"""L-BFGS's loss and gradient split between two cores (kernels/split.py's LOSS_GRAD): the
same J and gradient as the one-core kernel (epoch.loss_grad) and as the oracles, with
sample weights, CSR rows, odd row counts and several chunks per block; fits that agree
with one core and leave no helper thread behind."""
import threading

import numpy as np
import pytest
import scipy.sparse as sp

import fastnn
from fastnn import reference
from fastnn._core import engine as core, sk_engine
from fastnn.sklearn import MLPClassifier, MLPRegressor
from test_kernels import NETS, TOL, as_float64, check, data_for, make_net
from test_split import two_cores  # noqa: F401 - the fixture

F64 = np.float64
# J and the gradient summed in another order: float64 to rounding, float32 to its epsilon.
SPLIT_TOL = {np.float64: dict(rtol=1e-12), np.float32: dict(rtol=2e-5)}


def _no_helper():
    return not any(t.name == "fastnn-split" for t in threading.enumerate())


def _problem(n, dtype, weighted, sparse, rng):
    X = rng.standard_normal((n, 10))
    X[np.abs(X) < 0.6] = 0.0  # sparse-ish rows
    Y = np.eye(3)[rng.integers(0, 3, n)]
    sw = rng.random(n) * 2 + 0.1 if weighted else None
    spec = sk_engine.Spec([10, 7, 5, 3], "tanh", "softmax", dtype)
    theta = (rng.standard_normal(spec.n_params) * 0.4).astype(dtype)
    data = sk_engine.data(sp.csr_matrix(X) if sparse else X, Y, sw, dtype)
    return spec, theta, data


# -- the kernel --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, rows", [(1, 1), (2, 2), (3, 3), (8, 8), (200, 200), (200, 37), (201, 4)],
                         ids=["1-row", "2-rows", "3-rows", "8-rows", "200-rows", "chunked", "many-chunks"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unit", "weighted"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_split_loss_grad_equals_the_unsplit_kernel(dtype, n, rows, weighted, sparse, rng, two_cores):  # noqa: F811
    spec, theta, data = _problem(n, dtype, weighted, sparse, rng)
    idx = rng.permutation(n).astype(np.int64)  # any rows, in any order (L-BFGS passes all, in order)
    one_core = sk_engine.workspace(spec, rows)
    want = sk_engine.loss_grad(spec, data, idx, theta, 0.3, one_core)
    work = core.Workspace(spec, rows, split_batch=True)  # blocks of ceil(rows / 2) rows, chunk by chunk
    got = sk_engine.loss_grad(spec, data, idx, theta, 0.3, work)
    assert work.grad.dtype == dtype
    assert got == pytest.approx(want, rel=SPLIT_TOL[dtype]["rtol"])
    scale = np.abs(one_core.grad).max()
    np.testing.assert_allclose(work.grad, one_core.grad, atol=SPLIT_TOL[dtype]["rtol"] * scale, **SPLIT_TOL[dtype])
    assert work.helper is None and _no_helper()  # a lone call stops its helper
    # Deterministic: the same bits again, inside a fit's block (the helper kept between calls).
    first = work.grad.copy()
    with sk_engine.lbfgs_calls(work):
        for _ in range(3):
            assert sk_engine.loss_grad(spec, data, idx, theta, 0.3, work) == got
            assert work.grad.tobytes() == first.tobytes()
        assert work.helper is not None
    assert work.helper is None and _no_helper()


def test_split_loss_grad_equals_scikit_learns(two_cores):  # noqa: F811
    from test_sklearn import SW, X, Y_MULTI, _sklearn_loss_grad
    from sklearn.neural_network import MLPClassifier as SkMLP
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state

    sk = SkMLP(hidden_layer_sizes=(7, 5), activation="tanh", alpha=0.3)
    sk._label_binarizer = LabelBinarizer().fit(Y_MULTI)
    Y = sk._label_binarizer.transform(Y_MULTI)
    sk._random_state = check_random_state(0)
    sk._initialize(Y, [10, 7, 5, 3], np.float64)
    assert sk.out_activation_ == "softmax"
    loss_sk, grad_sk = _sklearn_loss_grad(sk, X, Y.astype(bool), SW)
    spec = sk_engine.Spec([10, 7, 5, 3], "tanh", "softmax", np.float64)
    theta = np.empty(spec.n_params)
    coefs, intercepts = spec.unpack(theta)
    for W, b, W_sk, b_sk in zip(coefs, intercepts, sk.coefs_, sk.intercepts_):
        W[...], b[...] = W_sk, b_sk
    for rows in (200, 37):
        work = core.Workspace(spec, rows, split_batch=True)
        loss = sk_engine.loss_grad(spec, sk_engine.data(X, Y, SW, np.float64), np.arange(200), theta, 0.3, work)
        assert loss == pytest.approx(loss_sk, rel=1e-12)
        np.testing.assert_allclose(work.grad[spec.sklearn_order()], grad_sk, rtol=1e-12,
                                   atol=1e-15 * np.abs(grad_sk).max())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [1, 3, 8])
@pytest.mark.parametrize("spec", NETS[:3], ids=lambda s: f"{s[0]}-{s[1]}-{s[2]}-{s[3]}-{s[4]}-{s[5]}")
def test_split_loss_grad_of_the_tutorials_objective_equals_the_reference(spec, n, dtype, rng, two_cores):  # noqa: F811
    net = make_net(spec, dtype)
    X, Y = data_for(spec, n, dtype, rng)
    l2 = 0.3
    net64 = as_float64(net)
    As = reference.forward(net64, X.astype(F64))
    want = reference.gradients(net64, As, Y.astype(F64), l2)
    objective = net._spec.objective(net.loss_code, l2=l2)
    work = core.Workspace(net._spec, n, split_batch=True)
    J = core.loss_grad(net._spec, net.params, core.dense_data(X, Y), np.arange(n), objective, work)
    check(work.grad, want, dtype, "network")
    penalty = 0.5 * l2 * sum(float(np.sum(W ** 2)) for W in net64.weights)
    want_J = reference.mean_loss(As[-1], Y.astype(F64), net.loss_code, net.clip_eps) + penalty
    np.testing.assert_allclose(J, want_J, **TOL[dtype]["network"])


# -- when L-BFGS splits, and the fits ------------------------------------------------------------
def test_lbfgs_splits_large_full_batches_on_two_cores(two_cores):  # noqa: F811
    assert core.should_split_full_batch(np.array([64, 256, 10]), 20000)
    assert core.should_split_full_batch(np.array([64, 100, 10]), 1797)  # digits
    assert not core.should_split_full_batch(np.array([10, 100, 3]), 200)  # too small to pay
    assert not core.should_split_full_batch(np.array([64, 16, 10]), 100)
    spec = sk_engine.Spec([64, 256, 10], "relu", "softmax", np.float64)
    assert sk_engine.lbfgs_workspace(spec, 20000).split_grads is not None
    fastnn.set_num_threads(1)
    assert not core.should_split_full_batch(np.array([64, 256, 10]), 20000)
    assert sk_engine.lbfgs_workspace(spec, 20000).split_grads is None


def _lbfgs_fits(monkeypatch, est, X, y, sw=None):
    """(split fit, one-core fit) of clones of ``est``, the split forced on and off."""
    from sklearn.base import clone

    fits = []
    for split in (True, False):
        monkeypatch.setattr(core, "should_split_full_batch", lambda sizes, rows, split=split: split)
        fits.append(clone(est).fit(X, y, sample_weight=sw))
    return fits


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_split_lbfgs_fits_agree_with_one_core_and_stop_their_helper(monkeypatch, two_cores):  # noqa: F811
    rng = np.random.default_rng(3)
    X = rng.standard_normal((301, 10))  # odd: blocks of 151 and 150 rows
    y = (X[:, 0] - X[:, 2] > 0).astype(int) + (X[:, 1] > 0.5)
    sw = rng.random(301) * 2
    clf = MLPClassifier((16,), solver="lbfgs", activation="tanh", alpha=0.1, max_iter=15, random_state=0)
    for Xin in (X, sp.csr_matrix(np.where(np.abs(X) > 0.5, X, 0.0))):
        split_fit, one_core = _lbfgs_fits(monkeypatch, clf, Xin, y, sw)
        assert _no_helper() and fastnn.get_num_threads() == 2
        assert split_fit.n_iter_ == one_core.n_iter_
        assert split_fit.loss_ == pytest.approx(one_core.loss_, rel=1e-10)
        for a, b in zip(split_fit.coefs_ + split_fit.intercepts_, one_core.coefs_ + one_core.intercepts_):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-8 * np.abs(b).max())
    reg = MLPRegressor(hidden_layer_sizes=(8, 8), solver="lbfgs", max_iter=15, random_state=0)
    split_fit, one_core = _lbfgs_fits(monkeypatch, reg, X.astype(np.float32), X[:, 0] * X[:, 1])
    assert split_fit.coefs_[0].dtype == np.float32 and _no_helper()
    assert split_fit.loss_ == pytest.approx(one_core.loss_, rel=1e-4)


def test_an_interrupted_lbfgs_fit_stops_the_helper(two_cores):  # noqa: F811
    spec, theta, data = _problem(50, np.float64, True, False, np.random.default_rng(0))
    work = core.Workspace(spec, 50, split_batch=True)
    with pytest.raises(KeyboardInterrupt):
        with sk_engine.lbfgs_calls(work):
            sk_engine.loss_grad(spec, data, np.arange(50), theta, 0.1, work)
            assert work.helper is not None
            raise KeyboardInterrupt
    assert work.helper is None and _no_helper()
    assert fastnn.get_num_threads() == 2
