"""fastnn.sklearn against scikit-learn itself: same random_state, same trajectory.

Tolerances (float64): loss_curve_ entry by entry rtol 1e-10, coefs_/intercepts_ 1e-8
relative to each array's largest entry, n_iter_ equal, classifier predictions identical
(regressor predictions rtol 1e-10). float32: rtol 1e-5 on the first 5 epochs.
"""
import io
import pickle
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.neural_network as skn
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import LabelBinarizer, StandardScaler
from sklearn.utils import check_random_state

import fastnn
from fastnn._core import dropout as _dropout
from fastnn._core import engine as core_engine, sk_engine as engine
from fastnn.sklearn import MLPClassifier, MLPRegressor

RNG = np.random.RandomState(0)
X = RNG.randn(200, 10)
Y_BIN = (X[:, 0] + X[:, 1] > 0).astype(int)
Y_MULTI = np.digitize(X[:, 0] - X[:, 2], [-0.6, 0.6])  # 3 classes
Y_ML = np.c_[Y_BIN, X[:, 2] > 0, X[:, 3] > 0.5].astype(int)  # multi-label
Y_REG = X @ RNG.randn(10) + 0.1 * RNG.randn(200)
Y_REG2 = np.c_[Y_REG, np.tanh(X[:, 1])]
Y_POIS = RNG.poisson(np.exp(0.4 * X[:, 0]))
SW = RNG.rand(200) * 2
TARGETS = {"bin": Y_BIN, "multi": Y_MULTI, "ml": Y_ML, "reg": Y_REG, "reg2": Y_REG2, "pois": Y_POIS}

# (estimator, target, sample_weight?, params): adam and sgd (each schedule, Nesterov on/off),
# each activation, one and two hidden layers, with and without alpha, early stopping.
CASES = [
    ("clf", "bin", False, dict(hidden_layer_sizes=(8,))),
    ("clf", "multi", False, dict(hidden_layer_sizes=(8, 6), activation="tanh", alpha=0.1)),
    ("clf", "ml", False, dict(hidden_layer_sizes=(8,), activation="logistic", alpha=0.0)),
    ("clf", "multi", True, dict(hidden_layer_sizes=(8,), activation="identity")),
    ("clf", "multi", False, dict(solver="sgd", learning_rate_init=0.05)),
    ("clf", "bin", True, dict(solver="sgd", nesterovs_momentum=False, hidden_layer_sizes=(8, 6), alpha=0.01)),
    ("clf", "ml", False, dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.5, power_t=0.3)),
    ("clf", "bin", False, dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.2, tol=1e-3,
                                n_iter_no_change=3)),
    ("clf", "multi", True, dict(early_stopping=True, hidden_layer_sizes=(8,), learning_rate_init=0.01)),
    ("clf", "bin", False, dict(early_stopping=True, solver="sgd", learning_rate="adaptive", validation_fraction=0.2)),
    ("clf", "multi", False, dict(shuffle=False, batch_size=64, activation="logistic")),
    ("reg", "reg", False, dict(hidden_layer_sizes=(8, 6), learning_rate_init=0.01)),
    ("reg", "reg2", True, dict(solver="sgd", activation="logistic", learning_rate_init=0.01, alpha=0.5)),
    ("reg", "reg", False, dict(solver="sgd", momentum=0.0, nesterovs_momentum=False, activation="tanh",
                               learning_rate="invscaling", learning_rate_init=0.05)),
    ("reg", "pois", True, dict(loss="poisson", learning_rate_init=0.01)),
    ("reg", "reg", True, dict(early_stopping=True, learning_rate_init=0.01, activation="tanh")),
]


def _pair(kind, params):
    base = dict(hidden_layer_sizes=(6,), batch_size=32, max_iter=200, random_state=3)
    base.update(params)
    if kind == "clf":
        return skn.MLPClassifier(**base), MLPClassifier(**base)
    return skn.MLPRegressor(**base), MLPRegressor(**base)


def _fit_both(sk, fa, X_, y, sw=None):
    with warnings.catch_warnings(record=True) as w_sk:
        warnings.simplefilter("always")
        sk.fit(X_, y, sample_weight=sw)
    with warnings.catch_warnings(record=True) as w_fa:
        warnings.simplefilter("always")
        fa.fit(X_, y, sample_weight=sw)
    assert [str(w.message) for w in w_fa] == [str(w.message) for w in w_sk]


def _assert_same_params(sk, fa, rtol=1e-8):
    for a, b in zip(sk.coefs_ + sk.intercepts_, fa.coefs_ + fa.intercepts_):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert np.max(np.abs(a - b)) <= rtol * np.max(np.abs(a))


@pytest.mark.parametrize("kind, target, weighted, params", CASES, ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_trajectory_matches_sklearn(kind, target, weighted, params):
    sk, fa = _pair(kind, params)
    y = TARGETS[target]
    sw = SW if weighted else None
    _fit_both(sk, fa, X, y, sw)
    assert fa.n_iter_ == sk.n_iter_ and fa.t_ == sk.t_
    np.testing.assert_allclose(fa.loss_curve_, sk.loss_curve_, rtol=1e-10, atol=0)
    assert fa.loss_ == pytest.approx(sk.loss_, rel=1e-10)
    _assert_same_params(sk, fa)
    for name in ("n_layers_", "n_outputs_", "out_activation_", "n_features_in_"):
        assert getattr(fa, name) == getattr(sk, name)
    if sk.validation_scores_ is not None:
        np.testing.assert_allclose(fa.validation_scores_, sk.validation_scores_, rtol=1e-12)
        # The best of those scores, at their tolerance: an R^2 can differ in its last bits.
        assert fa.best_validation_score_ == pytest.approx(sk.best_validation_score_, rel=1e-12)
        assert fa.best_validation_score_ == max(fa.validation_scores_)
    else:
        assert fa.validation_scores_ is None and fa.best_loss_ == pytest.approx(sk.best_loss_, rel=1e-10)
        assert fa.best_validation_score_ is None and sk.best_validation_score_ is None
    if kind == "clf":
        np.testing.assert_array_equal(fa.classes_, sk.classes_)
        np.testing.assert_array_equal(fa.predict(X), sk.predict(X))
        np.testing.assert_allclose(fa.predict_proba(X), sk.predict_proba(X), rtol=1e-8, atol=1e-12)
        assert fa.score(X, y) == sk.score(X, y)
    else:
        np.testing.assert_allclose(fa.predict(X), sk.predict(X), rtol=1e-8, atol=1e-10)


def test_float32_stays_float32_and_tracks_sklearn():
    X32 = X.astype(np.float32)
    sk, fa = _pair("clf", dict(max_iter=5, hidden_layer_sizes=(16,)))
    _fit_both(sk, fa, X32, Y_MULTI)
    assert all(c.dtype == np.float32 for c in fa.coefs_ + fa.intercepts_)
    assert fa.predict_proba(X32).dtype == np.float32
    np.testing.assert_allclose(fa.loss_curve_, sk.loss_curve_, rtol=1e-5)
    # Trained to the end, the float32 models agree on accuracy within 1%.
    sk, fa = _pair("clf", dict(hidden_layer_sizes=(16,)))
    _fit_both(sk, fa, X32, Y_MULTI)
    assert abs(fa.score(X32, Y_MULTI) - sk.score(X32, Y_MULTI)) <= 0.01


def test_sparse_input_matches_dense_sklearn():
    Xs = sp.csr_matrix(np.where(np.abs(X) > 0.8, X, 0.0))
    for Xin in (Xs, Xs.tocsc()):
        sk, fa = _pair("clf", dict(max_iter=30))
        _fit_both(sk, fa, Xin, Y_MULTI)
        np.testing.assert_allclose(fa.loss_curve_, sk.loss_curve_, rtol=1e-10)
        np.testing.assert_array_equal(fa.predict(Xin), sk.predict(Xin))
    # predict densifies chunk by chunk: force several chunks (the bound is the engine's)
    old = core_engine.WORK_ELEMENTS
    try:
        core_engine.WORK_ELEMENTS = 7 * 30
        np.testing.assert_array_equal(fa.predict(Xs), sk.predict(Xs))
    finally:
        core_engine.WORK_ELEMENTS = old


# -- L-BFGS ---------------------------------------------------------------------------------
def _sklearn_loss_grad(sk, X_, Y, sw):
    L = sk.n_layers_ - 1
    acts = [X_] + [None] * L
    loss, cg, ig = sk._backprop(X_, Y, sw, acts, [None] * L, [None] * L, [None] * L)
    return loss, np.hstack([g.ravel() for g in cg + ig])


@pytest.mark.parametrize("kind, target, out, alpha, weighted", [
    ("clf", "bin", "logistic", 1e-4, False), ("clf", "multi", "softmax", 0.3, True),
    ("clf", "ml", "logistic", 0.0, True), ("reg", "reg2", "identity", 0.1, False), ("reg", "pois", "exp", 0.1, True),
])
def test_lbfgs_loss_and_gradient_at_initial_point(kind, target, out, alpha, weighted):
    sk, fa = _pair(kind, dict(solver="lbfgs", alpha=alpha, hidden_layer_sizes=(7, 5), activation="tanh"))
    if target == "pois":
        sk.loss = fa.loss = "poisson"
    y = TARGETS[target]
    sw = SW if weighted else None
    if kind == "clf":
        lb = LabelBinarizer().fit(y)
        Y = lb.transform(y).astype(bool)
        sk._label_binarizer = fa._label_binarizer = lb
    else:
        Y = y.reshape(len(y), -1).astype(float)
    units = [10, 7, 5, Y.shape[1]]
    for est in (sk, fa):
        est._random_state = check_random_state(0)
        est._initialize(Y, units, np.float64)
    assert fa.out_activation_ == sk.out_activation_ == out
    _assert_same_params(sk, fa, rtol=0)  # the same draws, bit for bit
    loss_sk, grad_sk = _sklearn_loss_grad(sk, X, Y, sw)
    spec = fa._spec()
    work = engine.workspace(spec, 200)
    loss_fa = engine.loss_grad(spec, engine.data(X, Y, sw, np.float64), np.arange(200), fa._packed, alpha, work)
    assert loss_fa == pytest.approx(loss_sk, rel=1e-12)
    np.testing.assert_allclose(work.grad[spec.sklearn_order()], grad_sk, rtol=1e-12, atol=1e-15 * np.abs(grad_sk).max())
    # in chunks of 37 rows: the same up to summation order
    work = engine.workspace(spec, 37)
    assert engine.loss_grad(spec, engine.data(X, Y, sw, np.float64), np.arange(200), fa._packed, alpha, work) == (
        pytest.approx(loss_sk, rel=1e-12))


# Smooth problems: on ReLU regression plateaus, last-ulp differences grow over hundreds of
# L-BFGS iterations until the two runs stop at different points (seen: 1.8e-4 apart).
@pytest.mark.parametrize("kind, target, activation", [("clf", "multi", "relu"), ("reg", "reg", "tanh"),
                                                      ("clf", "bin", "logistic")])
def test_lbfgs_converges_to_sklearn_loss(kind, target, activation):
    sk, fa = _pair(kind, dict(solver="lbfgs", alpha=1.0, max_iter=1000, tol=1e-6, activation=activation))
    _fit_both(sk, fa, X, TARGETS[target])
    assert sk.n_iter_ < 1000 and fa.n_iter_ < 1000
    assert fa.loss_ == pytest.approx(sk.loss_, rel=1e-5)
    assert not hasattr(fa, "loss_curve_")


def test_finite_difference_gradient_of_extensions():
    """leaky_relu and elu have no scikit-learn counterpart: central differences instead."""
    for act in ("leaky_relu", "elu"):
        spec = engine.Spec([10, 6, 3], act, "softmax", np.float64)
        theta = np.random.RandomState(1).randn(spec.n_params) * 0.5
        Y = np.eye(3)[Y_MULTI]
        data, idx, work = engine.data(X, Y, SW, np.float64), np.arange(200), engine.workspace(spec, 200)
        engine.loss_grad(spec, data, idx, theta, 0.2, work)
        g = work.grad.copy()
        h = 1e-6
        for i in range(0, spec.n_params, 7):
            tp, tm = theta.copy(), theta.copy()
            tp[i] += h
            tm[i] -= h
            fd = (engine.loss_grad(spec, data, idx, tp, 0.2, work) - engine.loss_grad(spec, data, idx, tm, 0.2, work)) / (2 * h)
            assert fd == pytest.approx(g[i], rel=1e-5, abs=1e-8)
        clf = MLPClassifier((8,), act, max_iter=300, learning_rate_init=0.01, random_state=0).fit(X, Y_MULTI)
        assert clf.score(X, Y_MULTI) > 0.9


# -- the estimator API ------------------------------------------------------------------------
def test_signatures_match_sklearn():
    import inspect

    for ours, theirs in ((MLPClassifier, skn.MLPClassifier), (MLPRegressor, skn.MLPRegressor)):
        p_ours = inspect.signature(ours).parameters
        p_theirs = inspect.signature(theirs).parameters
        assert list(p_ours)[: len(p_theirs)] == list(p_theirs)
        for name, p in p_theirs.items():
            assert p_ours[name].default == p.default and p_ours[name].kind == p.kind
        extensions = ["dtype", "dropout", "weight_decay", "compute_dtype"]
        assert list(p_ours)[len(p_theirs):] == extensions
        assert all(p_ours[name].kind == inspect.Parameter.KEYWORD_ONLY for name in extensions)
        assert p_ours["dtype"].default is None and p_ours["dropout"].default == 0.0
        assert p_ours["weight_decay"].default == 0.0 and p_ours["compute_dtype"].default is None
    assert list(inspect.signature(MLPRegressor).parameters)[0] == "loss"
    assert fastnn.MLPClassifier is MLPClassifier and fastnn.MLPRegressor is MLPRegressor


@pytest.mark.parametrize("params", [dict(alpha=-1), dict(solver="newton"), dict(hidden_layer_sizes=0),
                                    dict(momentum=2.0), dict(batch_size=0), dict(n_iter_no_change=0)])
def test_parameter_errors_are_sklearns(params):
    with pytest.raises(ValueError) as theirs:
        skn.MLPClassifier(**params).fit(X, Y_BIN)
    with pytest.raises(ValueError) as ours:
        MLPClassifier(**params).fit(X, Y_BIN)
    assert str(ours.value) == str(theirs.value)


def test_verbose_and_convergence_warning_match_sklearn():
    outs = []
    for cls in (skn.MLPClassifier, MLPClassifier):
        buf = io.StringIO()
        with redirect_stdout(buf), pytest.warns(ConvergenceWarning, match="Maximum iterations \\(20\\)"):
            cls((5,), max_iter=20, verbose=True, random_state=0, early_stopping=True, n_iter_no_change=50).fit(X, Y_BIN)
        outs.append(buf.getvalue())
    lines = [o.splitlines() for o in outs]
    assert len(lines[0]) == len(lines[1]) == 40
    for a, b in zip(*lines):  # the printed numbers are rounded: compare them as text
        assert a == b


def test_partial_fit_and_warm_start_match_sklearn():
    sk, fa = _pair("clf", dict(max_iter=5, random_state=np.random.RandomState(4)))
    sk.set_params(random_state=np.random.RandomState(4))
    fa.set_params(random_state=np.random.RandomState(4))
    for _ in range(3):
        sk.partial_fit(X[:120], Y_MULTI[:120], classes=[0, 1, 2])
        fa.partial_fit(X[:120], Y_MULTI[:120], classes=[0, 1, 2])
    assert fa.n_iter_ == sk.n_iter_ == 1 and fa.t_ == sk.t_ == 360
    np.testing.assert_allclose(fa.loss_curve_, sk.loss_curve_, rtol=1e-10)
    with pytest.raises(ValueError, match="`y` has classes not in `self.classes_`"):
        fa.partial_fit(X, Y_MULTI + 1)
    sk, fa = _pair("reg", dict(max_iter=10, warm_start=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for est in (sk, fa):
            est.fit(X, Y_REG)
            est.set_params(max_iter=15, solver="sgd", learning_rate_init=0.01)
            est.fit(X, Y_REG)
    np.testing.assert_allclose(fa.loss_curve_, sk.loss_curve_, rtol=1e-10)
    assert len(fa.loss_curve_) == 25
    for est in (skn.MLPClassifier(solver="lbfgs"), MLPClassifier(solver="lbfgs")):
        assert not hasattr(est, "partial_fit")


def test_clone_pickle_pipeline_and_model_selection(tmp_path):
    clf = MLPClassifier((10,), max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, Y_MULTI)
        assert clone(clf).get_params() == clf.get_params()
        again = pickle.loads(pickle.dumps(clf))
        np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
        pipe = make_pipeline(StandardScaler(), MLPClassifier((10,), max_iter=50, learning_rate_init=0.01, random_state=0)).fit(X, Y_MULTI)
        assert pipe.score(X, Y_MULTI) > 0.8
        scores = cross_val_score(MLPRegressor(hidden_layer_sizes=(8,), max_iter=100, random_state=0, learning_rate_init=0.01), X, Y_REG, cv=3)
        assert scores.shape == (3,) and np.all(scores > 0.5)
        grid = dict(alpha=[1e-4, 1e-1], hidden_layer_sizes=[(5,), (10,)])
        est = MLPClassifier(max_iter=30, random_state=0)
        par = GridSearchCV(est, grid, cv=3, n_jobs=2).fit(X, Y_MULTI)
        seq = GridSearchCV(est, grid, cv=3, n_jobs=1).fit(X, Y_MULTI)
        assert par.best_params_ == seq.best_params_
        np.testing.assert_array_equal(par.cv_results_["mean_test_score"], seq.cv_results_["mean_test_score"])
    # read-only memmapped input, as joblib passes large arrays to workers
    path = tmp_path / "X.npy"
    np.save(path, X)
    Xm = np.load(path, mmap_mode="r")
    assert not Xm.flags.writeable
    a = MLPClassifier((6,), max_iter=5, random_state=0).fit(Xm, Y_BIN)
    b = MLPClassifier((6,), max_iter=5, random_state=0).fit(X, Y_BIN)
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)
    np.testing.assert_array_equal(a.predict_proba(Xm), b.predict_proba(X))


def test_dtype_extension_and_feature_names():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier((6,), max_iter=5, random_state=0, dtype="float32").fit(X, Y_BIN)
        assert clf.coefs_[0].dtype == np.float32 and clf.predict_proba(X).dtype == np.float32
        reg = MLPRegressor(hidden_layer_sizes=(6,), max_iter=5, random_state=0, dtype=np.float64)
        assert reg.fit(X.astype(np.float32), Y_REG).coefs_[0].dtype == np.float64
        pd = pytest.importorskip("pandas")
        df = pd.DataFrame(X, columns=[f"f{i}" for i in range(10)])
        clf.fit(df, Y_BIN)
    np.testing.assert_array_equal(clf.feature_names_in_, df.columns)
    assert clf.n_features_in_ == 10


# -- dropout (fastnn extension) ---------------------------------------------------------------
def _quiet_fit(est, X_, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X_, y)


def _assert_same_fit(a, b):
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("cls, target, params", [
    (MLPClassifier, "multi", dict(hidden_layer_sizes=(8,))),
    (MLPRegressor, "reg", dict(hidden_layer_sizes=(8, 6), solver="sgd", early_stopping=True)),
])
def test_dropout_zero_is_bitwise_no_dropout(cls, target, params):
    base = dict(max_iter=15, random_state=0, learning_rate_init=0.01, **params)
    plain = _quiet_fit(cls(**base), X, TARGETS[target])
    for rate in (0.0, [0.0] * len(params["hidden_layer_sizes"])):
        _assert_same_fit(_quiet_fit(cls(**base, dropout=rate), X, TARGETS[target]), plain)


# -- decoupled weight decay (fastnn extension) --------------------------------------------------
def test_weight_decay_zero_is_bitwise_no_decay():
    base = dict(hidden_layer_sizes=(8,), max_iter=10, random_state=0, learning_rate_init=0.01)
    _assert_same_fit(_quiet_fit(MLPClassifier(**base, weight_decay=0.0), X, Y_MULTI),
                     _quiet_fit(MLPClassifier(**base), X, Y_MULTI))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weight_decay_is_the_decoupled_rule(dtype):
    # One full-batch step of plain SGD from the same weights: the gradient is the same, so
    # the decayed step differs from the plain one by exactly lr * wd * W_0 on the weights
    # (W_0 the weights before the step), and not at all on the intercepts.
    lr, wd = 0.05, 0.3
    base = dict(hidden_layer_sizes=(7, 5), solver="sgd", momentum=0.0, batch_size=200, max_iter=1, shuffle=False,
                learning_rate_init=lr, random_state=0, alpha=1e-3, dtype=dtype)
    plain = _quiet_fit(MLPRegressor(**base), X, Y_REG)
    decayed = _quiet_fit(MLPRegressor(**base, weight_decay=wd), X, Y_REG)
    init = MLPRegressor(**base)  # the initial weights both fits started from
    init._random_state = check_random_state(0)
    init._initialize(Y_REG.reshape(-1, 1), [10, 7, 5, 1], np.dtype(dtype))
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    for W0, Wp, Wd in zip(init.coefs_, plain.coefs_, decayed.coefs_):
        assert np.abs(Wp - Wd).max() > 0
        np.testing.assert_allclose(Wp - Wd, lr * wd * W0.astype(np.float64), rtol=rtol * 100, atol=rtol * np.abs(W0).max())
    for bp, bd in zip(plain.intercepts_, decayed.intercepts_):
        np.testing.assert_array_equal(bp, bd)


def test_weight_decay_adamw_shrinks_the_weights_and_lbfgs_refuses_it():
    base = dict(hidden_layer_sizes=(16,), max_iter=30, random_state=0, learning_rate_init=0.01)
    plain = _quiet_fit(MLPClassifier(**base), X, Y_MULTI)
    adamw = _quiet_fit(MLPClassifier(**base, weight_decay=0.5), X, Y_MULTI)
    norm = lambda m: sum(float(np.sum(W * W)) for W in m.coefs_)  # noqa: E731
    assert norm(adamw) < 0.9 * norm(plain)
    assert adamw.score(X, Y_MULTI) > 0.8
    with pytest.raises(ValueError, match="weight_decay is an update rule of the stochastic solvers"):
        MLPClassifier(solver="lbfgs", weight_decay=0.1).fit(X, Y_MULTI)
    with pytest.raises(ValueError, match="weight_decay"):
        MLPClassifier(weight_decay=-1.0).fit(X, Y_MULTI)


def test_dropout_is_reproducible_and_changes_the_trajectory():
    base = dict(hidden_layer_sizes=(8, 6), max_iter=10, random_state=0, learning_rate_init=0.01)
    plain = _quiet_fit(MLPClassifier(**base), X, Y_MULTI)
    a = _quiet_fit(MLPClassifier(**base, dropout=0.2), X, Y_MULTI)
    _assert_same_fit(_quiet_fit(MLPClassifier(**base, dropout=0.2), X, Y_MULTI), a)
    _assert_same_fit(_quiet_fit(MLPClassifier(**base, dropout=(0.2, 0.2)), X, Y_MULTI), a)
    # The same RandomState instance state, twice: the same masks too.
    b1 = _quiet_fit(MLPClassifier(**{**base, "random_state": np.random.RandomState(3)}, dropout=0.2), X, Y_MULTI)
    b2 = _quiet_fit(MLPClassifier(**{**base, "random_state": np.random.RandomState(3)}, dropout=0.2), X, Y_MULTI)
    _assert_same_fit(b1, b2)
    others = [plain, _quiet_fit(MLPClassifier(**{**base, "random_state": 1}, dropout=0.2), X, Y_MULTI)]
    others += [_quiet_fit(MLPClassifier(**base, dropout=rates), X, Y_MULTI) for rates in ([0.0, 0.2], [0.2, 0.0])]
    for other in others:
        assert other.loss_curve_[0] != a.loss_curve_[0]


def test_dropout_predict_is_deterministic_and_never_drops():
    clf = _quiet_fit(MLPClassifier((8, 6), activation="tanh", max_iter=10, random_state=0, dropout=0.5), X, Y_MULTI)
    P = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.predict_proba(X), P)
    (W0, W1, W2), (b0, b1, b2) = clf.coefs_, clf.intercepts_
    Z = np.tanh(np.tanh(X @ W0 + b0) @ W1 + b1) @ W2 + b2  # the undropped network
    expected = np.exp(Z - Z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(P, expected / expected.sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[P.argmax(axis=1)])


def test_dropout_errors():
    with pytest.raises(ValueError, match="dropout needs a stochastic solver .*L-BFGS needs a deterministic objective"):
        MLPClassifier(solver="lbfgs", dropout=0.3).fit(X, Y_BIN)
    with pytest.raises(ValueError, match="dropout needs a stochastic solver"):
        MLPRegressor(solver="lbfgs", hidden_layer_sizes=(4, 4), dropout=[0.0, 0.1]).fit(X, Y_REG)
    _quiet_fit(MLPClassifier((4,), solver="lbfgs", max_iter=5, dropout=0.0), X, Y_BIN)  # rate 0 is no dropout
    with pytest.raises(ValueError, match=r"The 'dropout' parameter of MLPClassifier must be a float in the range "
                                         r"\[0.0, 1.0\) or an array-like. Got 1.0 instead."):
        MLPClassifier(dropout=1.0).fit(X, Y_BIN)
    with pytest.raises(ValueError, match=r"one rate per hidden layer \(2\); got 1"):
        MLPClassifier((4, 4), dropout=[0.1]).fit(X, Y_BIN)
    with pytest.raises(ValueError, match=r"dropout\[1\] must be a finite number in \[0.0, 1.0\)"):
        MLPClassifier((4, 4), dropout=[0.1, 1.5]).fit(X, Y_BIN)


def test_dropout_passes_clone_and_get_params():
    est = MLPRegressor(hidden_layer_sizes=(5, 5), dropout=(0.1, 0.25), max_iter=3, random_state=0)
    assert est.get_params()["dropout"] == (0.1, 0.25)
    twin = clone(est)
    assert twin.get_params() == est.get_params() and twin.dropout == (0.1, 0.25)
    est.set_params(dropout=0.3)
    assert clone(est).dropout == 0.3
    _assert_same_fit(_quiet_fit(clone(est), X, Y_REG), _quiet_fit(est, X, Y_REG))
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(X), est.predict(X))


def test_dropout_sgd_step_by_hand():
    # One full-batch SGD step (momentum 0, alpha 0, no shuffle) with rate p after the tanh
    # layer: theta_1 = theta_0 - lr * grad of the dropped network's loss, with the masks
    # of the documented stream (key from SeedSequence([random_state, 0x64726F70]), counter 0).
    p, lr, h = 0.4, 0.1, 8
    clf = MLPClassifier((h,), activation="tanh", solver="sgd", momentum=0.0, learning_rate_init=lr, alpha=0.0,
                        batch_size=200, shuffle=False, max_iter=1, random_state=0, dropout=p)
    _quiet_fit(clf, X, Y_BIN)
    rs = np.random.RandomState(0)  # scikit-learn's initialisation: weights then biases, per layer
    params = []
    for fan_in, fan_out in ((10, h), (h, 1)):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        params += [rs.uniform(-bound, bound, (fan_in, fan_out)), rs.uniform(-bound, bound, fan_out)]
    W0, b0, W1, b1 = params
    key = int(np.random.SeedSequence([0, 0x64726F70]).generate_state(1, np.uint64)[0])
    thr = int(_dropout.thresholds([p])[0])
    M = _dropout.keep_mask(key, 0, thr, (200, h)) * (2.0**32 / (2.0**32 - thr))  # inverted: kept units x 1/(1-p)
    T = np.tanh(X @ W0 + b0)
    H = M * T
    out = 1.0 / (1.0 + np.exp(-(H @ W1 + b1)))
    y = Y_BIN[:, None]
    loss = -np.mean(y * np.log(out) + (1 - y) * np.log(1 - out))
    D1 = (out - y) / 200  # logistic output + binary log loss: delta = out - y
    D0 = (D1 @ W1.T) * M * (1 - T**2)  # through the mask and tanh' = 1 - tanh^2
    expected = [W0 - lr * X.T @ D0, b0 - lr * D0.sum(0), W1 - lr * H.T @ D1, b1 - lr * D1.sum(0)]
    np.testing.assert_allclose(clf.loss_curve_[0], loss, rtol=1e-12)
    for got, want in zip([clf.coefs_[0], clf.intercepts_[0], clf.coefs_[1], clf.intercepts_[1]], expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    assert 0.3 < 1 - M.astype(bool).mean() < 0.5  # about p of the units dropped


def test_dropout_costs_training_loss_but_learns_an_easy_problem():
    base = dict(hidden_layer_sizes=(32,), max_iter=150, learning_rate_init=0.01, random_state=0)
    plain = _quiet_fit(MLPClassifier(**base), X, Y_BIN)
    drop = _quiet_fit(MLPClassifier(**base, dropout=0.5), X, Y_BIN)
    assert drop.loss_curve_[-1] > plain.loss_curve_[-1]  # the dropped network fits the training set worse
    assert drop.score(X, Y_BIN) > 0.95 and plain.score(X, Y_BIN) > 0.95
