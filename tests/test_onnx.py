"""fastnn.to_onnx: the exported graphs, run by onnxruntime, give fastnn's own predictions
(labels identical; outputs and probabilities within 1e-5 in float32, 1e-10 in float64) on
random architectures (hypothesis), for one row and for many; scikit-learn estimators and
pipelines go through skl2onnx with fastnn's converters; every bad input is a clear error.
``fastnn export`` is in test_cli_export.py."""
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

pytest.importorskip("onnx")  # the test extra installs fastnn[onnx] and onnxruntime
ort = pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")

import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import fastnn
from fastnn import reference
from fastnn._core import tables
from fastnn.onnx import to_onnx
from fastnn.sklearn import MLPClassifier, MLPRegressor

TOL = {np.dtype("float32"): 1e-5, np.dtype("float64"): 1e-10}
EXAMPLES = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SK_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "leaky_relu", "elu")


def run(proto, X):
    """onnxruntime's outputs for input X, by output name."""
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: X})))


def assert_close(actual, expected, tol_dtype):
    """Same dtype, equal within the tolerance of ``tol_dtype`` (the coarser dtype involved)."""
    assert actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=TOL[np.dtype(tol_dtype)], atol=TOL[np.dtype(tol_dtype)])


def fit_quietly(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


# -- the tutorial face: NeuralNetwork ------------------------------------------------------------
@st.composite
def networks(draw, engine=fastnn):
    """A NeuralNetwork of any depth (0-3 hidden layers), activation, output, loss and dtype,
    with random biases (they start at zero), and a seed for its input."""
    loss = draw(st.sampled_from(tuple(tables.LOSSES)))
    activation = draw(st.sampled_from(tuple(tables.ACTIVATIONS)))
    nn = engine.NeuralNetwork(
        draw(st.integers(1, 6)), draw(st.lists(st.integers(1, 6), max_size=3)), draw(st.integers(1, 4)), loss,
        activation=activation, output_activation=draw(st.sampled_from(tables.ALLOWED_OUTPUTS[loss])),
        alpha=draw(st.sampled_from([None, 0.3, 2.0])), init=draw(st.sampled_from(tables.INITS)),
        dtype=draw(st.sampled_from(tables.DTYPES)), seed=draw(st.integers(0, 2**32 - 1)),
    )
    rng = np.random.RandomState(draw(st.integers(0, 2**32 - 1)))
    for b in nn.biases:
        b[...] = rng.randn(*b.shape)
    return nn, rng


def check_network(nn, proto, X):
    """ONNX's outputs for X (one row, then all) against forward and predict."""
    for rows in (X[:1], X):
        out = run(proto, rows)
        assert_close(out["output"], nn.forward(rows), nn.dtype)
        if nn.loss_func == "mse":  # predict returns the outputs themselves: no label
            assert set(out) == {"output"}
        else:
            assert out["label"].dtype == np.int64
            np.testing.assert_array_equal(out["label"], nn.predict(rows))


@EXAMPLES
@given(networks())
def test_network_matches_forward_and_predict(case):
    nn, rng = case
    check_network(nn, to_onnx(nn), (2 * rng.randn(37, nn.input_size)).astype(nn.dtype))


def test_reference_network_exports_too():
    nn = reference.NeuralNetwork(4, [5, 3], 3, "categorical_crossentropy", activation="elu", seed=0)
    check_network(nn, to_onnx(nn), np.random.RandomState(1).randn(20, 4))


@pytest.mark.parametrize("model_dtype, input_dtype", [("float64", "float32"), ("float32", "float64")])
def test_network_input_type_follows_X_sample(model_dtype, input_dtype):
    # The graph casts the input to the network's dtype, as forward does.
    nn = fastnn.NeuralNetwork(3, [4], 2, "log_loss", activation="tanh", dtype=model_dtype, seed=0)
    X = np.random.RandomState(0).randn(9, 3).astype(input_dtype)
    proto = to_onnx(nn, X[:2])
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.helper.np_dtype_to_tensor_dtype(X.dtype)
    check_network(nn, proto, X)


@pytest.mark.parametrize("opset", [13, None, onnx.defs.onnx_opset_version()])
def test_network_every_supported_opset(opset):
    nn = fastnn.NeuralNetwork(3, [4, 4], 3, "categorical_crossentropy", activation="leaky_relu", seed=0)
    proto = to_onnx(nn, opset=opset)
    assert proto.opset_import[0].version == (opset or 17)
    check_network(nn, proto, np.random.RandomState(0).randn(5, 3))


def test_path_writes_the_model(tmp_path):
    nn = fastnn.NeuralNetwork(3, [4], 2, "mse", output_activation="identity", seed=0)
    proto = to_onnx(nn, path=tmp_path / "model.onnx")
    assert (tmp_path / "model.onnx").read_bytes() == proto.SerializeToString()
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left behind
    onnx.checker.check_model(onnx.load(tmp_path / "model.onnx"))


# -- the scikit-learn face: MLPClassifier and MLPRegressor ----------------------------------------
TARGETS = ("binary", "binary text", "multiclass", "multilabel", "regression", "two outputs", "poisson")


@st.composite
def estimators(draw):
    """A fitted MLPClassifier or MLPRegressor (every activation, 1-3 hidden layers, either
    dtype, every kind of target) and rows of input in its dtype."""
    kind, dtype = draw(st.sampled_from(TARGETS)), draw(st.sampled_from(tables.DTYPES))
    rng = np.random.RandomState(draw(st.integers(0, 2**32 - 1)))
    X = rng.randn(40, draw(st.integers(1, 5))).astype(dtype)
    s = X[:, 0] + 0.5 * rng.randn(40)
    y = {"binary": (s > 0).astype(int), "binary text": np.where(s > 0, "yes", "no"),
         "multiclass": np.digitize(s, [-0.5, 0.5]) * 3 - 2, "multilabel": (X[:, :1] + rng.randn(40, 3) > 0).astype(int),
         "regression": 3 * s, "two outputs": np.c_[s, -s], "poisson": np.exp(s)}[kind]
    params = dict(hidden_layer_sizes=draw(st.lists(st.integers(1, 6), min_size=1, max_size=3)),
                  activation=draw(st.sampled_from(SK_ACTIVATIONS)), max_iter=5, learning_rate_init=0.05, random_state=0)
    if kind in ("regression", "two outputs", "poisson"):
        est = MLPRegressor(loss="poisson" if kind == "poisson" else "squared_error", **params)
    else:
        est = MLPClassifier(**params)
    return fit_quietly(est, X, y), X


def check_estimator(model, proto, X):
    """ONNX's outputs for X (one row, then all) against the predict (and predict_proba) of
    ``model``, a fastnn estimator or a pipeline ending in one. The outputs have X's
    dtype; the network computes in the estimator's."""
    est = model[-1] if isinstance(model, Pipeline) else model
    tol_dtype = np.float32 if np.float32 in (X.dtype, est.coefs_[0].dtype) else np.float64
    for rows in (X[:1], X):
        out = run(proto, rows)
        if isinstance(est, MLPClassifier):
            assert list(out) == ["label", "probabilities"]
            np.testing.assert_array_equal(out["label"], model.predict(rows))
            assert_close(out["probabilities"], model.predict_proba(rows).astype(X.dtype), tol_dtype)
        else:
            assert list(out) == ["variable"]
            assert out["variable"].shape == (len(rows), est.n_outputs_)
            assert_close(out["variable"].reshape(-1), model.predict(rows).reshape(-1).astype(X.dtype), tol_dtype)


@EXAMPLES
@given(estimators())
def test_estimator_matches_predict(case):
    est, X = case
    check_estimator(est, to_onnx(est), X)


@pytest.mark.parametrize("model_dtype, input_dtype", [("float64", "float32"), ("float32", "float64")])
def test_estimator_outputs_take_the_input_type(model_dtype, input_dtype):
    # As skl2onnx's converters: the graph computes in the estimator's dtype and gives
    # the input's float type (so that its ZipMap, float32 only, can follow).
    X = np.random.RandomState(0).randn(30, 3)
    clf = fit_quietly(MLPClassifier((5,), max_iter=5, random_state=0, dtype=model_dtype), X, X[:, 0] > 0)
    X = X.astype(input_dtype)
    check_estimator(clf, to_onnx(clf, X[:1]), X)


def test_estimator_opsets():
    X = np.random.RandomState(0).randn(30, 3)
    clf = fit_quietly(MLPClassifier((5,), activation="elu", max_iter=5, random_state=0), X,
                      np.digitize(X[:, 0], [0, 1]))
    for opset in (13, skl2onnx.get_latest_tested_opset_version()):
        proto = to_onnx(clf, opset=opset)
        assert {o.domain: o.version for o in proto.opset_import}[""] == opset
        check_estimator(clf, proto, X)


def test_ties_break_as_fastnn_does():
    # An output of exactly 0.5 is not above it; equal probabilities give the first class.
    X = np.random.RandomState(0).randn(6, 3)
    nn = fastnn.NeuralNetwork(3, [4], 2, "log_loss", seed=0)
    nn.weights[-1][...] = 0
    check_network(nn, to_onnx(nn), X)
    assert (nn.forward(X) == 0.5).all()
    for y in ([1, 2] * 3, [3, 1, 2] * 2):
        clf = fit_quietly(MLPClassifier((4,), max_iter=2, random_state=0), X, y)
        clf.coefs_[-1][...] = 0
        clf.intercepts_[-1][...] = 0
        assert (clf.predict(X) == 1).all()
        check_estimator(clf, to_onnx(clf), X)


# -- pipelines, through skl2onnx ------------------------------------------------------------------
@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = 5 + 3 * rng.randn(60, 4)  # far from standardised: the scaler matters
    return X, np.where(X[:, 0] + X[:, 1] > 10, "big", "small")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pipeline_with_a_classifier(data, dtype):
    X, y = data
    pipe = fit_quietly(make_pipeline(StandardScaler(), MLPClassifier((6, 4), activation="leaky_relu", max_iter=10,
                                                                     random_state=0, dtype=dtype)), X, y)
    proto = to_onnx(pipe)  # no X_sample: the input has the fastnn estimator's dtype
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    check_estimator(pipe, proto, X.astype(dtype))


def test_pipeline_through_skl2onnx_itself(data):
    # skl2onnx's own entry point converts fastnn's estimators once fastnn.onnx is imported,
    # with its conventions: a regressor's 'variable', a classifier's ZipMap of probabilities.
    X, y = data
    X32 = X.astype(np.float32)
    reg = fit_quietly(make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(5,), max_iter=10,
                                                                   random_state=0, dtype="float32")), X, X[:, 0])
    out = run(skl2onnx.to_onnx(reg, X32[:1]), X32)
    assert_close(out["variable"].ravel(), reg.predict(X32), "float32")

    clf = fit_quietly(make_pipeline(StandardScaler(), MLPClassifier((5,), max_iter=10, random_state=0,
                                                                    dtype="float32")), X, y)
    out = run(skl2onnx.to_onnx(clf, X32[:1]), X32)
    np.testing.assert_array_equal(out["output_label"], clf.predict(X32))
    zipped = np.array([[row[c] for c in clf.classes_] for row in out["output_probability"]], dtype=np.float32)
    assert_close(zipped, clf.predict_proba(X32), "float32")


# -- what is not imported, and what registers -----------------------------------------------------
def test_import_fastnn_imports_no_optional_package():
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import fastnn
        optional = ("onnx", "skl2onnx", "onnxruntime", "dask", "distributed", "dask_ml", "pandas", "polars", "pyarrow")
        print(sorted(m for m in optional if m in sys.modules))
        from fastnn import MLPRegressor  # imports scikit-learn, which imports pandas when installed
        print(sorted(m for m in optional[:6] if m in sys.modules))
        import skl2onnx
        X = np.random.RandomState(0).randn(20, 3)
        reg = MLPRegressor(hidden_layer_sizes=(3,), max_iter=2).fit(X, X[:, 0])
        try:
            skl2onnx.to_onnx(reg, X[:1])
        except Exception as err:
            print(type(err).__name__)
        import fastnn.onnx  # registers fastnn's converters
        print([o.name for o in skl2onnx.to_onnx(reg, X[:1]).graph.output])
    """)
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "[]", "MissingShapeCalculator", "['variable']"]


# -- bad input: clear errors ----------------------------------------------------------------------
def test_untrained_estimator_is_refused():
    with pytest.raises(NotFittedError, match="not fitted"):
        to_onnx(MLPClassifier())
    with pytest.raises(NotFittedError, match="not fitted"):
        to_onnx(make_pipeline(StandardScaler(), MLPRegressor()))


@pytest.mark.parametrize("model", ["model.npz", None, fastnn.Trainer(fastnn.NeuralNetwork(2, 2, 1), "mse")])
def test_other_objects_are_refused(model):
    with pytest.raises(TypeError, match="to_onnx exports a fastnn NeuralNetwork, a fitted MLPClassifier"):
        to_onnx(model)


@pytest.mark.parametrize("opset", [12, 10**3, True, 17.0, "17"])
def test_opset_out_of_range(opset):
    nn = fastnn.NeuralNetwork(2, 2, 1)
    with pytest.raises(ValueError, match=r"opset must be an int from 13 to \d+ .* got"):
        to_onnx(nn, opset=opset)


def test_opset_newer_than_skl2onnx_knows():
    clf = fit_quietly(MLPClassifier((2,), max_iter=2), np.eye(4), [0, 1, 0, 1])
    newest = skl2onnx.get_latest_tested_opset_version()
    with pytest.raises(ValueError, match=f"opset must be an int from 13 to {newest} "):
        to_onnx(clf, opset=newest + 1)


def test_X_sample_must_fit_the_model():
    nn = fastnn.NeuralNetwork(3, 2, 1)
    with pytest.raises(ValueError, match=r"X_sample must be 2-D with 3 columns .* got shape \(2, 4\)"):
        to_onnx(nn, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="X_sample must hold float32 or float64 numbers .* got dtype int64"):
        to_onnx(nn, np.zeros((2, 3), dtype=np.int64))
    clf = fit_quietly(MLPClassifier((2,), max_iter=2), np.eye(4), [0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"X_sample must be 2-D with 4 columns .* got shape \(4,\)"):
        to_onnx(clf, np.zeros(4))


def test_one_class_classifier_is_refused():
    clf = fit_quietly(MLPClassifier((2,), max_iter=2), np.eye(4), ["a"] * 4)
    with pytest.raises(ValueError, match=r"fitted on one class \('a'\); an ONNX classifier needs at least two"):
        to_onnx(clf)


@pytest.mark.parametrize("missing, model", [
    ("onnx", fastnn.NeuralNetwork(2, 2, 1)),
    ("skl2onnx", fit_quietly(MLPRegressor(hidden_layer_sizes=(2,), max_iter=2), np.eye(3), [0.0, 1.0, 2.0])),
])
def test_missing_package_says_which_extra(monkeypatch, missing, model):
    monkeypatch.setitem(sys.modules, missing, None)  # import fails as if not installed
    with pytest.raises(ImportError, match=rf"needs the '{missing}' package, .* pip install 'fastnn\[onnx\]'"):
        to_onnx(model)
