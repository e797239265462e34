"""compute_dtype='bfloat16' on the scikit-learn face (MLPClassifier, MLPRegressor).

The oracle is scikit-learn itself, in float32, with its matrix products replaced by
bfloat16 ones (``bf16_sklearn``: both operands rounded to bfloat16 by the reference's
``round_bf16``, accumulated in float32): the same random draws, batches, objective,
sample weights, alpha, early stopping and updates as fastnn, and the same bfloat16
operands, computed by an independent implementation.

Tolerance. Where both sides round the same operands, they differ only in the order of
float32 sums and in float32 steps done in another order (scikit-learn adds alpha W and
divides by the weight sum s after its product, fastnn scales the output delta by 1 / s
before it); tests/test_bf16.py's argument then applies: about sqrt(K) u relative per
product (u = 2^-24), and a rare rounding flip where a value lies that close to a bfloat16
midpoint. The operands are the same only if 1 / s is a power of two: fastnn rounds
w (a - y) / s, scikit-learn w (a - y), and bfloat16 rounding commutes with a scaling by
2^k only. So the cases below use full batches of 32 rows (or one full batch whose
weights, 1 and 2, sum to 256). Measured: losses within 5e-8 relative over 5 epochs,
parameters within 3e-5 lr. Allowed: 1e-5 on losses, 1e-3 lr on parameters (30x room),
which the float32 products miss by far (losses 3e-4, parameters 0.9 to 5 lr).

Dropout (a fastnn extension, which scikit-learn lacks): its kernels are the tutorial
face's, checked against the reference in tests/test_bf16.py; here, the estimators draw
the float32 fit's masks (the same stream, the same counter after the fit), resume
exactly, and stay near the float32 fit: a product of operands rounded to 8 bits is
within ~2^-8 of the float32 one, and a loss, a mean over many of them, moves less.
Measured over 5 epochs: 2.4e-4 relative; allowed 2^-9 ~ 2e-3 (DROPOUT_RTOL), while the
same fit without dropout is 2e-2 away.

Compiled signatures: one bfloat16 epoch of scikit-learn's objective (dense or CSR rows
and sample weights share it), one with weight decay, one with dropout; ``predict`` is the
tutorial face's.
"""
import contextlib
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.neural_network as skn
import sklearn.neural_network._multilayer_perceptron as sk_mlp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.estimator_checks import check_estimator

import fastnn
from fastnn import BFloat16Unavailable, reference
from fastnn._core import bf16 as core_bf16
from fastnn.sklearn import MLPClassifier, MLPRegressor

WHY = core_bf16.availability()
needs_onednn = pytest.mark.skipif(WHY is not None, reason=f"bfloat16 kernels cannot run here: {WHY}")

RNG = np.random.RandomState(0)
N = 192  # six batches of 32
X = RNG.randn(N, 10).astype(np.float32)
Y_BIN = (X[:, 0] + X[:, 1] > 0).astype(int)
Y_MULTI = np.digitize(X[:, 0] - X[:, 2], [-0.6, 0.6])
Y_ML = np.c_[Y_BIN, X[:, 2] > 0, X[:, 3] > 0.5].astype(int)
Y_REG = (X @ RNG.randn(10) + 0.1 * RNG.randn(N)).astype(np.float32)
Y_REG2 = np.c_[Y_REG, np.tanh(X[:, 1])].astype(np.float32)
Y_POIS = RNG.poisson(np.exp(0.4 * X[:, 0])).astype(np.float32)
SW = np.ones(N, dtype=np.float32)
SW[RNG.permutation(N)[:64]] = 2.0  # sum 256: 1 / s is a power of two (module docstring)
TARGETS = {"bin": Y_BIN, "multi": Y_MULTI, "ml": Y_ML, "reg": Y_REG, "reg2": Y_REG2, "pois": Y_POIS}


def bf16_dot(a, b, dense_output=False):
    """scikit-learn's ``safe_sparse_dot`` with bfloat16 operands, float32 accumulation."""
    r = reference.round_bf16
    if sp.issparse(a):
        a = a.copy()
        a.data = r(a.data)
        return np.asarray(a @ r(b), dtype=np.float32)
    return r(a) @ r(b)


@contextlib.contextmanager
def bf16_sklearn():
    """scikit-learn's MLP with its matrix products in bfloat16 (the oracle)."""
    saved = sk_mlp.safe_sparse_dot
    sk_mlp.safe_sparse_dot = bf16_dot
    try:
        yield
    finally:
        sk_mlp.safe_sparse_dot = saved


def quiet(call, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return call(*args, **kwargs)


def outputs(est, X_):
    return est.predict_proba(X_) if hasattr(est, "predict_proba") else est.predict(X_)


def max_param_diff(a, b):
    return max(float(np.max(np.abs(p - q))) for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_))


# (estimator, target, sample weights?, params): every scikit-learn loss (softmax and binary
# log loss, multi-label, squared error with one and two outputs, Poisson with its exp
# output), alpha, adam and sgd (Nesterov, momentum, invscaling), early stopping.
CASES = [
    ("clf", "multi", False, dict(hidden_layer_sizes=(16, 8), alpha=0.1)),
    ("clf", "bin", True, dict(solver="sgd", activation="tanh", batch_size=N, learning_rate_init=0.1)),
    ("clf", "ml", False, dict(activation="logistic", learning_rate_init=0.01, alpha=0.0)),
    ("clf", "multi", False, dict(early_stopping=True, validation_fraction=0.5, learning_rate_init=0.01,
                                 n_iter_no_change=2, max_iter=8)),
    ("reg", "reg2", False, dict(solver="sgd", nesterovs_momentum=False, learning_rate="invscaling",
                                learning_rate_init=0.05)),
    ("reg", "pois", True, dict(loss="poisson", batch_size=N, learning_rate_init=0.01)),
]


def pair(kind, params, **extra):
    base = {**dict(hidden_layer_sizes=(12,), batch_size=32, max_iter=5, random_state=3), **params}
    if kind == "clf":
        return MLPClassifier(**base, **extra), skn.MLPClassifier(**base)
    return MLPRegressor(**base, **extra), skn.MLPRegressor(**base)


@needs_onednn
@pytest.mark.parametrize("kind, target, weighted, params", CASES, ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_fit_matches_sklearn_with_bf16_products(kind, target, weighted, params):
    ours, oracle = pair(kind, params, compute_dtype="bfloat16")
    y, sw = TARGETS[target], SW if weighted else None
    quiet(ours.fit, X, y, sample_weight=sw)
    with bf16_sklearn():
        quiet(oracle.fit, X, y, sample_weight=sw)
    lr = ours.learning_rate_init
    assert ours.n_iter_ == oracle.n_iter_ and all(c.dtype == np.float32 for c in ours.coefs_)
    np.testing.assert_allclose(ours.loss_curve_, oracle.loss_curve_, rtol=1e-5)
    assert max_param_diff(ours, oracle) <= 1e-3 * lr
    if oracle.validation_scores_ is not None:  # validation scored with bfloat16 products
        np.testing.assert_allclose(ours.validation_scores_, oracle.validation_scores_, rtol=1e-5)
    # Outputs at fastnn's own weights: the same operands, so summation order only.
    for a, b in zip(oracle.coefs_ + oracle.intercepts_, ours.coefs_ + ours.intercepts_):
        a[...] = b
    with bf16_sklearn():
        expected = outputs(oracle, X)
    got = outputs(ours, X)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # The test can tell: float32 products, on the same weights and from the same start, do not fit.
    assert not np.allclose(outputs(oracle, X), expected, rtol=1e-5, atol=1e-6)
    f32 = pair(kind, params, dtype="float32")[0]
    quiet(f32.fit, X, y, sample_weight=sw)
    assert max_param_diff(f32, oracle) > 1e-3 * lr


@needs_onednn
def test_partial_fit_and_warm_start_match_sklearn_with_bf16_products():
    ours, oracle = pair("clf", {}, compute_dtype="bfloat16")
    with bf16_sklearn():
        for _ in range(3):
            ours.partial_fit(X, Y_MULTI, classes=[0, 1, 2])
            oracle.partial_fit(X, Y_MULTI, classes=[0, 1, 2])
    np.testing.assert_allclose(ours.loss_curve_, oracle.loss_curve_, rtol=1e-5)
    assert max_param_diff(ours, oracle) <= 1e-3 * ours.learning_rate_init
    ours, oracle = pair("reg", dict(warm_start=True, max_iter=3), compute_dtype="bfloat16")
    with bf16_sklearn():
        for est in (ours, oracle):
            quiet(est.fit, X, Y_REG)
            quiet(est.set_params(solver="sgd", learning_rate_init=0.01).fit, X, Y_REG)
    assert len(ours.loss_curve_) == 6
    np.testing.assert_allclose(ours.loss_curve_, oracle.loss_curve_, rtol=1e-5)
    assert max_param_diff(ours, oracle) <= 1e-3 * 0.01


@needs_onednn
def test_sparse_input_is_bitwise_the_dense_fit():
    """CSR rows are gathered into the same dense batch before they are rounded."""
    Xs = np.where(np.abs(X) > 0.8, X, 0).astype(np.float32)
    base = dict(hidden_layer_sizes=(12,), max_iter=4, random_state=0, compute_dtype="bfloat16")
    dense = quiet(MLPClassifier(**base).fit, Xs, Y_MULTI, sample_weight=SW)
    for container in (sp.csr_matrix, sp.csc_matrix):
        sparse = quiet(MLPClassifier(**base).fit, container(Xs), Y_MULTI, sample_weight=SW)
        np.testing.assert_array_equal(sparse.loss_curve_, dense.loss_curve_)
        assert max_param_diff(sparse, dense) == 0
        np.testing.assert_array_equal(sparse.predict_proba(container(Xs)), dense.predict_proba(Xs))


@needs_onednn
def test_float64_input_trains_float32_weights_and_predict_follows_compute_dtype():
    X64 = X.astype(np.float64)
    clf = quiet(MLPClassifier((12,), max_iter=5, random_state=0, compute_dtype="bfloat16").fit, X64, Y_MULTI)
    same = quiet(MLPClassifier((12,), max_iter=5, random_state=0, compute_dtype="bfloat16", dtype="float32").fit,
                 X, Y_MULTI)
    assert all(c.dtype == np.float32 for c in clf.coefs_ + clf.intercepts_)
    np.testing.assert_array_equal(clf.loss_curve_, same.loss_curve_)  # float64 input is cast once
    P = clf.predict_proba(X64)
    spec = clf._spec()
    np.testing.assert_array_equal(P, core_bf16.predict(spec, clf._theta(spec), X))
    # set_params(compute_dtype=None): the same weights with float32 products.
    clf.set_params(compute_dtype=None)
    P32 = clf.predict_proba(X64)
    assert P32.dtype == np.float32 and 0 < np.max(np.abs(P32 - P)) < 2.0**-5


@needs_onednn
def test_weight_decay_is_the_decoupled_rule_in_bf16():
    # As test_sklearn's float test: one full-batch SGD step from the same weights has the
    # same bfloat16 gradient with and without decay, so the decayed weights differ by
    # lr * wd * W_0 (to float32 rounding), and the intercepts not at all.
    lr, wd = 0.05, 0.3
    base = dict(hidden_layer_sizes=(7, 5), solver="sgd", momentum=0.0, batch_size=N, max_iter=1, shuffle=False,
                learning_rate_init=lr, random_state=0, alpha=1e-3, compute_dtype="bfloat16")
    plain = quiet(MLPRegressor(**base).fit, X, Y_REG)
    decayed = quiet(MLPRegressor(**base, weight_decay=wd).fit, X, Y_REG)
    init = MLPRegressor(**base)
    init._random_state = check_random_state(0)
    init._initialize(Y_REG.reshape(-1, 1), [10, 7, 5, 1], np.dtype(np.float32))
    for W0, Wp, Wd in zip(init.coefs_, plain.coefs_, decayed.coefs_):
        np.testing.assert_allclose(Wp - Wd, lr * wd * W0.astype(np.float64), rtol=1e-4, atol=1e-6 * np.abs(W0).max())
    for bp, bd in zip(plain.intercepts_, decayed.intercepts_):
        np.testing.assert_array_equal(bp, bd)


@needs_onednn
def test_divergence_raises_sklearns_error_and_keeps_finite_weights():
    reg = MLPRegressor(hidden_layer_sizes=(4,), solver="sgd", learning_rate_init=1e30, max_iter=3, random_state=0,
                       compute_dtype="bfloat16")
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        quiet(reg.fit, X, Y_REG * np.float32(1e30))
    assert all(np.isfinite(c).all() for c in reg.coefs_ + reg.intercepts_)


@needs_onednn
def test_digits_accuracy_within_a_point_of_float32():
    """The issue's check: 64-256-256-10 ReLU Adam, 30 epochs, test accuracy within 1 point
    (measured: equal for random_state 0, 1 and 2; ~0.15 s a fit)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler

    digits = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(MinMaxScaler().fit_transform(digits.data), digits.target,
                                                        test_size=0.2, random_state=42)
    scores = {}
    for compute_dtype in (None, "bfloat16"):
        clf = MLPClassifier((256, 256), max_iter=30, random_state=0, dtype="float32", compute_dtype=compute_dtype)
        scores[compute_dtype] = quiet(clf.fit, X_train, y_train).score(X_test, y_test)
    assert scores["bfloat16"] > 0.95 and abs(scores["bfloat16"] - scores[None]) <= 0.01, scores


@needs_onednn
def test_clone_get_params_and_pickle_keep_compute_dtype():
    clf = quiet(MLPClassifier((8,), max_iter=3, random_state=0, compute_dtype="bfloat16").fit, X, Y_MULTI)
    twin = clone(clf)
    assert twin.get_params() == clf.get_params() and twin.compute_dtype == "bfloat16"
    again = pickle.loads(pickle.dumps(clf))
    assert again.compute_dtype == "bfloat16"
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


@needs_onednn
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_sklearn_estimator_checks_in_bf16(cls):
    """scikit-learn's own checks pass, but for sample-weight equivalence: weights w and w
    repeated rows give the same float gradient, but w (a - y) rounds to bfloat16 other than
    a - y does, so the two fits agree to bfloat16's precision, not the check's 1e-7."""
    est = cls(hidden_layer_sizes=(8,), max_iter=30, learning_rate_init=0.01, random_state=0, compute_dtype="bfloat16")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, on_fail=None)
    failed = sorted(r["check_name"] for r in results if r["status"] == "failed")
    assert failed == ["check_sample_weight_equivalence_on_dense_data", "check_sample_weight_equivalence_on_sparse_data"]
    assert sum(r["status"] == "passed" for r in results) >= 50


@needs_onednn
def test_onnx_export_computes_float32_products():
    """The graph has the trained float32 weights and float32 products (documented): it
    matches predict with compute_dtype=None, not the bfloat16 one."""
    pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    clf = quiet(MLPClassifier((16,), max_iter=5, random_state=0, compute_dtype="bfloat16").fit, X, Y_MULTI)
    proto = fastnn.to_onnx(clf)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {"X": X})
    P16 = clf.predict_proba(X)
    P32 = clf.set_params(compute_dtype=None).predict_proba(X)
    np.testing.assert_array_equal(labels, clf.classes_[P32.argmax(axis=1)])
    np.testing.assert_allclose(probabilities, P32, rtol=1e-5, atol=1e-5)  # test_onnx.py's float32 tolerance
    assert np.max(np.abs(probabilities - P16)) > 1e-4


@needs_onednn
def test_fastnn_compile_covers_the_sklearn_bfloat16_epochs():
    from fastnn._app.compile import _warm_sklearn_bfloat16
    from fastnn.kernels import bf16 as kernels_bf16
    from fastnn.kernels.bundles import Dropout, SklearnObjective

    _warm_sklearn_bfloat16()
    compiled = {(sig[4].instance_class, str(sig[6]), getattr(sig[7], "instance_class", None))
                for sig in kernels_bf16.fit_epoch.signatures}
    assert {(SklearnObjective, "none", None), (SklearnObjective, "float64", None),
            (SklearnObjective, "none", Dropout)} <= compiled  # weight decay, dropout
    assert kernels_bf16.predict.signatures


def test_fastnn_compile_skips_the_sklearn_bfloat16_epochs_where_they_cannot_run(monkeypatch):
    from fastnn._app.compile import _warm_sklearn_bfloat16

    monkeypatch.setattr(core_bf16, "availability", lambda: "no oneDNN (test)")
    monkeypatch.setattr(fastnn.sklearn, "MLPClassifier", lambda *a, **k: pytest.fail("an estimator was built"))
    _warm_sklearn_bfloat16()


# -- dropout ----------------------------------------------------------------------------------
DROPOUT = dict(hidden_layer_sizes=(12, 8, 6), dropout=[0.2, 0.0, 0.3], batch_size=32, random_state=3)  # rate 0 between
DROPOUT_RTOL = 2.0**-9  # module docstring


@needs_onednn
@pytest.mark.parametrize("cls, target", [(MLPClassifier, Y_MULTI), (MLPRegressor, Y_REG)])
def test_dropout_draws_the_float32_masks_and_stays_near_the_float32_fit(cls, target):
    ours = quiet(cls(**DROPOUT, max_iter=5, compute_dtype="bfloat16").fit, X, target)
    f32 = quiet(cls(**DROPOUT, max_iter=5, dtype="float32").fit, X, target)
    plain = quiet(cls(**{**DROPOUT, "dropout": 0.0}, max_iter=5, compute_dtype="bfloat16").fit, X, target)
    assert ours._dropout_stream == f32._dropout_stream
    assert ours._dropout_stream[1] == 5 * N * (12 + 8 + 6)  # every hidden unit of every row, rate 0 too
    np.testing.assert_allclose(ours.loss_curve_, f32.loss_curve_, rtol=DROPOUT_RTOL)
    assert not np.allclose(plain.loss_curve_, f32.loss_curve_, rtol=DROPOUT_RTOL)  # the masks matter


@needs_onednn
def test_dropout_resumes_exactly_through_pickle():
    """partial_fit, a pickled checkpoint, partial_fit: the weights and counter of two
    partial_fit calls on one estimator, bit for bit."""
    a, b = (MLPClassifier(**DROPOUT, compute_dtype="bfloat16") for _ in range(2))
    for _ in range(2):
        a.partial_fit(X, Y_MULTI, classes=[0, 1, 2])
    b.partial_fit(X, Y_MULTI, classes=[0, 1, 2])
    b = pickle.loads(pickle.dumps(b))
    b.partial_fit(X, Y_MULTI)
    assert a._dropout_stream == b._dropout_stream and a._dropout_stream[1] == 2 * N * (12 + 8 + 6)
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(p, q)


# -- error paths: these need no oneDNN ---------------------------------------------------------
@pytest.mark.parametrize("params, message", [
    (dict(solver="lbfgs"), r"compute_dtype='bfloat16' needs a stochastic solver \('adam' or 'sgd'\); "
                           r"got solver='lbfgs'"),
    (dict(dtype="float64"), r"compute_dtype='bfloat16' trains float32 weights .*got dtype='float64'"),
    (dict(dtype=np.float64), r"compute_dtype='bfloat16' trains float32 weights .*got dtype=<class 'numpy.float64'>"),
])
def test_what_bf16_cannot_do_is_refused_before_loading_onednn(params, message, monkeypatch):
    monkeypatch.setattr(core_bf16, "kernels", lambda: pytest.fail("oneDNN was asked for"))
    for cls, y in ((MLPClassifier, Y_BIN), (MLPRegressor, Y_REG)):
        with pytest.raises(ValueError, match=message):
            cls(**params, compute_dtype="bfloat16").fit(X, y)


def test_compute_dtype_values_are_validated_as_sklearn_does():
    with pytest.raises(ValueError, match=r"The 'compute_dtype' parameter of MLPClassifier must be None or a str "
                                         r"among \{'bfloat16'\}. Got 'float16' instead."):
        MLPClassifier(compute_dtype="float16").fit(X, Y_BIN)
    est = MLPRegressor(compute_dtype="bfloat16")
    assert est.get_params()["compute_dtype"] == "bfloat16" and clone(est).compute_dtype == "bfloat16"
    assert MLPClassifier().compute_dtype is None


def test_float64_weights_refuse_bf16_products_after_set_params(monkeypatch):
    reg = quiet(MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit, X.astype(np.float64), Y_REG)
    reg.set_params(compute_dtype="bfloat16")
    with pytest.raises(ValueError, match="compute_dtype='bfloat16' computes with float32 weights; these are float64"):
        reg.predict(X)
    monkeypatch.setattr(core_bf16, "kernels", lambda: None)  # as if oneDNN were there: the weights decide
    with pytest.raises(ValueError, match="computes with float32 weights; these are float64"):
        reg.set_params(warm_start=True).fit(X.astype(np.float64), Y_REG)


def test_missing_onednn_names_the_extra_at_fit(monkeypatch):
    monkeypatch.setattr(core_bf16, "_kernels", None)
    monkeypatch.setattr(core_bf16, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(core_bf16, "library_path", lambda: None)
    with pytest.raises(BFloat16Unavailable, match=r"pip install 'fastnn\[bf16\]'"):
        MLPClassifier(compute_dtype="bfloat16").fit(X, Y_BIN)


def test_missing_cpu_feature_is_named_at_fit(monkeypatch):
    monkeypatch.setattr(core_bf16, "_kernels", None)
    monkeypatch.setattr(core_bf16, "cpu_has_bf16", lambda: False)
    with pytest.raises(BFloat16Unavailable, match="avx512_bf16"):
        MLPRegressor(compute_dtype="bfloat16").fit(X, Y_REG)
