"""Property tests at the public API: whatever goes in, the outcome is a correct result or a
clear exception (ValueError/TypeError/DivergenceError with a message), never a crash, a
hang, a silent NaN model or a changed input. Plus numerical faults: extreme inputs give
finite losses and gradients; divergence stops with an error and keeps the last good weights.

The default run has 200 examples per entry point; ``-m slow`` runs the same properties
with 2000. Models are tiny and float32/float64 only, so Numba compiles few signatures.
"""
import atexit
import decimal
import fractions
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import reference

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TMP = tempfile.mkdtemp(prefix="fastnn-robust-")
atexit.register(shutil.rmtree, TMP, True)
CLEAR = (ValueError, TypeError)
LOSSES = ("mse", "log_loss", "categorical_crossentropy")
RTOL = {np.dtype("float32"): 2e-4, np.dtype("float64"): 1e-9}


# -- arrays of every kind, and an independent statement of what the API accepts --------------------
# The API's rule for scalars (NumPy's and scikit-learn's): a NumPy integer or float is taken
# wherever a Python int or float is; bool is never a number. Every oracle below uses these two.
def is_real(x):
    """A real number the API takes as a float: int, float, NumPy integer or floating, not bool."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def is_int(x, lo=1):
    """An integer >= ``lo`` the API takes as an int: int or NumPy integer, not bool."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)) and x >= lo


SPECIAL = [0.0, 1.0, -1.0, 0.5, 2.0, 1e30, -1e30, 1e-300, 65504.0, 1e300]
DTYPES = ["int8", "int64", "uint8", "bool", "float16", "float32", "float64", "complex128", "object"]
BAD_OBJECTS = ["1.5", None, 1j, [1.0], 10**400, b"1"]
GOOD_OBJECTS = [decimal.Decimal("0.25"), fractions.Fraction(1, 3), True, np.float32(2.0), 7]


def mostly(valid, anything):
    """``valid`` nine times in ten: properties must see many valid inputs, not only errors."""
    return st.integers(0, 9).flatmap(lambda i: valid if i else anything)


@st.composite
def any_array(draw, shape, clean=False):
    """An array-like of ``shape`` (or a nearby wrong one) in any dtype and container,
    with NaN/inf and odd objects sprinkled in; ``clean`` keeps it valid (any real dtype
    and container, the right shape, finite values)."""
    if not clean and draw(st.integers(0, 4)) == 0:  # a wrong number of dimensions or wrong sizes
        shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    size = int(np.prod(shape))
    elements = st.floats(-5, 5) | st.sampled_from([0.0, 1.0, -1.0, 1e-300] if clean else SPECIAL)
    values = np.array(draw(st.lists(elements, min_size=size, max_size=size)), dtype=np.float64).reshape(shape)
    dtype = draw(st.sampled_from([d for d in DTYPES if d != "complex128"] if clean else DTYPES))
    if clean and dtype in ("uint8", "bool"):
        values = np.abs(values)
    with np.errstate(all="ignore"):
        if dtype == "bool":
            a = values > 0
        elif dtype in ("int8", "uint8", "int64"):
            info = np.iinfo(dtype)
            a = np.clip(np.round(values), info.min, info.max).astype(dtype)
        elif dtype == "object":
            a = values.astype(object)
        else:
            a = values.astype(dtype)
    if clean:
        pass
    elif size and a.dtype.kind in "fcO" and draw(st.booleans()):  # non-finite placements
        a.flat[draw(st.integers(0, size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    if size and dtype == "object" and draw(st.booleans()):
        a.flat[draw(st.integers(0, size - 1))] = draw(st.sampled_from(GOOD_OBJECTS if clean else BAD_OBJECTS + GOOD_OBJECTS))
    if dtype == "complex128" and size and draw(st.booleans()):  # never when clean
        a = a + 0.5j
    container = draw(st.sampled_from(["array", "readonly", "memmap", "fortran", "list", "strided"]))
    if container == "readonly":
        a.setflags(write=False)
    elif container == "memmap" and a.dtype.kind != "O" and size:
        mm = np.memmap(tempfile.mktemp(dir=TMP), dtype=a.dtype, mode="w+", shape=a.shape)
        mm[...] = a
        mm.flush()
        a = np.memmap(mm.filename, dtype=a.dtype, mode=draw(st.sampled_from(["r", "r+"])), shape=a.shape)
    elif container == "fortran":
        a = np.asfortranarray(a)
    elif container == "list" and a.dtype.kind != "c":
        a = a.tolist()
    elif container == "strided" and a.ndim >= 1:
        a = np.repeat(a, 2, axis=-1)[..., ::2]  # a non-contiguous view, same values
    return a


def numeric(a):
    """float64 array of ``a`` if the API should take it as numbers, else None (-> TypeError)."""
    try:
        arr = np.asarray(a) if not isinstance(a, list) else np.array(a, dtype=object)
    except ValueError:  # ragged
        return None
    if arr.dtype.kind == "O":
        if not all(isinstance(x, (int, float, bool, np.bool_, np.floating, decimal.Decimal, fractions.Fraction))
                   and not isinstance(x, complex) for x in arr.flat):
            return None
        if any(isinstance(x, int) and abs(x) > 1e308 for x in arr.flat):
            return "overflow"
        return arr.astype(np.float64)
    return arr.astype(np.float64) if arr.dtype.kind in "biuf" else None


def as_model_input(a, dtype):
    with np.errstate(all="ignore"):
        return np.asarray(numeric(a), dtype=np.float64).astype(dtype)


def valid_X(X, d, dtype):
    num = numeric(X)
    if num is None or isinstance(num, str) or num.ndim != 2 or num.shape[0] == 0 or num.shape[1] != d:
        return False
    return bool(np.isfinite(as_model_input(X, dtype)).all())


def valid_y(y, n, loss, k, dtype):
    num = numeric(y)
    if num is None or isinstance(num, str) or num.ndim not in (1, 2) or num.shape[0] != n:
        return False
    if loss == "categorical_crossentropy" and num.ndim == 1:
        return bool(np.isfinite(num).all() and np.all(num == np.round(num)) and num.min() >= 0 and num.max() < k)
    if num.ndim == 1 and k != 1 or num.ndim == 2 and num.shape[1] != k:
        return False
    cast = as_model_input(y, dtype)
    if not np.isfinite(cast).all():
        return False
    return loss == "mse" or bool(cast.min() >= 0 and cast.max() <= 1)


def snapshot(a):
    """What the input looked like: values and, for object arrays, the element identities."""
    arr = np.asarray(a) if not isinstance(a, list) else None
    if arr is None:
        return ("list", repr(a))
    if arr.dtype.kind == "O":
        return ("obj", [id(x) for x in arr.flat], arr.shape)
    return ("arr", arr.copy(), arr.flags.writeable)


def unchanged(a, snap):
    if snap[0] == "list":
        return repr(a) == snap[1]
    arr = np.asarray(a)
    if snap[0] == "obj":
        return [id(x) for x in arr.flat] == snap[1] and arr.shape == snap[2]
    return arr.flags.writeable == snap[2] and np.array_equal(arr, snap[1], equal_nan=True)


# -- models -----------------------------------------------------------------------------------------------
@st.composite
def small_model_args(draw):
    loss = draw(st.sampled_from(LOSSES))
    out = {"mse": ["identity", "sigmoid", "softmax"], "log_loss": ["sigmoid"],
           "categorical_crossentropy": ["softmax"]}[loss]
    return dict(
        input_size=draw(st.integers(1, 4)), hidden_size=draw(st.integers(1, 4) | st.lists(st.integers(1, 3), max_size=2)),
        output_size=draw(st.integers(1, 3)), loss_func=loss, activation=draw(st.sampled_from(["sigmoid", "tanh"])),
        output_activation=draw(st.sampled_from(out)), dtype=draw(st.sampled_from(["float32", "float64"])),
        seed=draw(st.integers(0, 2**32 - 1)), init=draw(st.sampled_from(["normal", "glorot", "he"])),
    )


def build(engine, args):
    args = dict(args)
    return engine.NeuralNetwork(args.pop("input_size"), args.pop("hidden_size"), args.pop("output_size"),
                                args.pop("loss_func"), **args)


def assert_clear(err):
    assert isinstance(err, CLEAR + (fastnn.DivergenceError,)), repr(err)
    assert len(str(err)) > 15, repr(err)


# -- NeuralNetwork(...) ------------------------------------------------------------------------------------
ANY_VALUE = st.sampled_from([None, True, 0, -1, 1.5, float("nan"), "3", [], [0], [2, -1], (2, 3), np.int64(3),
                             np.float64(2.0), 2**40, object()])


@st.composite
def constructor_args(draw):
    def pick(valid, invalid=()):  # one argument in ~25 is wrong
        wrong = st.sampled_from(list(invalid)) | ANY_VALUE if invalid else ANY_VALUE
        return draw(st.sampled_from(valid) if draw(st.integers(0, 24)) else wrong)

    loss = pick(LOSSES, ["hinge", "MSE"])
    outputs = {"mse": [None, "identity", "sigmoid", "softmax"], "log_loss": [None, "sigmoid"],
               "categorical_crossentropy": [None, "softmax"]}.get(loss if isinstance(loss, str) else None, [None])
    return dict(
        input_size=pick([1, 2, 3, np.int64(2)]), hidden_size=pick([1, 3, [2], [2, 3], (1, 2, 1), []]),
        output_size=pick([1, 2, 3]), loss_func=loss,
        activation=pick(["sigmoid", "tanh", "relu", "leaky_relu", "elu", "identity"], ["softmax", "gelu"]),
        output_activation=pick(outputs, ["identity", "sigmoid", "softmax", "tanh"]),
        alpha=pick([None, 0.0, 0.1, 2.0, np.float32(0.5), np.int64(1)], [-0.1, float("inf"), np.int64(-1)]), init=pick(["normal", "glorot", "he"], ["zeros"]),
        dtype=pick(["float32", "float64", np.float32, np.float64, np.dtype("float32"), float],
                   ["float16", "int64", "complex128", object, np.float32(1.0)]),
        seed=pick([None, 0, 7, 2**32 - 1], [-1, 2**32]),
    )


def constructor_is_valid(a):
    hidden = a["hidden_size"]
    hidden_ok = is_int(hidden) or (isinstance(hidden, (list, tuple)) and all(is_int(h) for h in hidden))
    loss = a["loss_func"]
    out = a["output_activation"]
    allowed = {"mse": ("identity", "sigmoid", "softmax"), "log_loss": ("sigmoid",),
               "categorical_crossentropy": ("softmax",)}
    out_ok = isinstance(loss, str) and loss in allowed and (out is None or (isinstance(out, str) and out in allowed[loss]))
    alpha = a["alpha"]
    alpha_ok = alpha is None or (is_real(alpha) and np.isfinite(alpha) and alpha >= 0)
    # A name, a NumPy scalar type, a dtype, or Python's float (float64); never a number.
    dtype_ok = any(a["dtype"] is d or isinstance(a["dtype"], (str, np.dtype)) and a["dtype"] == d
                   for d in ("float32", "float64", np.float32, np.float64, float))
    seed = a["seed"]
    seed_ok = seed is None or (is_int(seed, 0) and seed < 2**32)
    return all([is_int(a["input_size"]), hidden_ok, is_int(a["output_size"]), out_ok, alpha_ok, dtype_ok, seed_ok,
                isinstance(a["activation"], str) and a["activation"] in ("sigmoid", "tanh", "relu", "leaky_relu",
                                                                          "elu", "identity"),
                isinstance(a["init"], str) and a["init"] in ("normal", "glorot", "he")])


def check_constructor(a):
    event("valid input" if constructor_is_valid(a) else "invalid input")
    state = np.random.get_state()
    try:
        model = build(fastnn, a)
    except (MemoryError, ValueError) as err:
        # Sizes of 2**40: NumPy's "Unable to allocate 8 TiB" or "Maximum allowed dimension
        # exceeded" is the answer (fastnn sets no size limit of its own).
        sizes = [a["input_size"], a["output_size"]] + list(np.atleast_1d(np.asarray(a["hidden_size"], dtype=object)))
        huge = constructor_is_valid(a) and max(int(x) for x in sizes) ** 2 > 10**9
        if not huge:
            assert isinstance(err, ValueError) and len(str(err)) > 15
            assert not constructor_is_valid(a), f"valid arguments rejected: {err!r}"
        return
    except Exception as err:  # noqa: BLE001 - the property is about which exceptions escape
        assert_clear(err)
        assert not constructor_is_valid(a), f"valid arguments rejected: {err!r}"
        return
    assert constructor_is_valid(a), f"invalid arguments accepted: {a}"
    assert np.isfinite(model.params).all() and model.params.dtype == np.dtype(a["dtype"])
    assert model.layer_sizes[0] == a["input_size"] and model.layer_sizes[-1] == a["output_size"]
    if a["seed"] is not None:  # a seeded model never touches NumPy's global state
        assert np.array_equal(np.random.get_state()[1], state[1])


@FAST
@given(constructor_args())
@example(dict(input_size=3, hidden_size=1, output_size=1, loss_func="mse", activation="sigmoid",  # np.int64 alpha
              output_activation=None, alpha=np.int64(3), init="normal", dtype="float32", seed=None))
@example(dict(input_size=1, hidden_size=1, output_size=1, loss_func="mse", activation="sigmoid",  # a number as dtype
              output_activation=None, alpha=None, init="normal", dtype=np.float64(2.0), seed=None))
def test_constructor(a):
    check_constructor(a)


# -- forward / predict --------------------------------------------------------------------------------------
@st.composite
def model_X_n(draw, clean_bias=False):
    args = draw(small_model_args())
    n = draw(st.integers(1, 5) if clean_bias else st.integers(0, 5))
    shape = (n, args["input_size"])
    X = draw(mostly(any_array(shape, clean=True), any_array(shape)) if clean_bias else any_array(shape))
    return args, X, n


model_and_X = lambda: model_X_n().map(lambda c: c[:2])  # noqa: E731


def check_forward(args, X, method):
    model = build(fastnn, args)
    before, snap = model.params.copy(), snapshot(X)
    ok = valid_X(X, args["input_size"], model.dtype)
    event("valid input" if ok else "invalid input")
    try:
        out = getattr(model, method)(X)
    except Exception as err:  # noqa: BLE001
        assert_clear(err)
        assert not ok, f"valid X rejected: {err!r}"
    else:
        assert ok, "invalid X accepted"
        expected = build(reference, args).forward(as_model_input(X, model.dtype))
        assert np.isfinite(model.a2).all() and model.a2.dtype == model.dtype
        np.testing.assert_allclose(model.a2, expected, rtol=RTOL[model.dtype], atol=RTOL[model.dtype])
        if method == "predict" and model.loss_func == "categorical_crossentropy":
            assert out.shape == (expected.shape[0],)
        else:
            assert out.shape == expected.shape
    assert unchanged(X, snap), "the input array was modified"
    assert np.array_equal(model.params, before)


@FAST
@given(model_and_X())
def test_forward(case):
    check_forward(*case, "forward")


@FAST
@given(model_and_X())
def test_predict(case):
    check_forward(*case, "predict")


# -- backward ------------------------------------------------------------------------------------------------
LR = st.sampled_from([0.1, 1.0, 1e-3, 0, -0.1, float("nan"), float("inf"), "0.1", None, True, np.float32(0.5),
                     np.int64(1), np.bool_(True)])


def lr_ok(lr):
    return is_real(lr) and np.isfinite(lr) and lr > 0


@st.composite
def targets(draw, n, args):
    k = args["output_size"]
    kind = draw(st.sampled_from([0, 0, 0, 1, 1, 1, 2]))
    if kind == 0 and args["loss_func"] == "categorical_crossentropy":
        labels = st.integers(0, k - 1) if draw(st.integers(0, 5)) else st.integers(-1, k)
        return np.array(draw(st.lists(labels, min_size=n, max_size=n)), dtype=draw(
            st.sampled_from(["int64", "float32", "int8", "object"])))
    if kind == 1:
        return (np.array(draw(st.lists(st.floats(0, 1), min_size=n * k, max_size=n * k))).reshape(n, k))
    return draw(any_array(draw(st.sampled_from([(n, k), (n,)]))))


@st.composite
def backward_case(draw):
    args, X, n = draw(model_X_n(clean_bias=True))
    return args, X, draw(targets(n, args)), draw(mostly(st.sampled_from([0.1, 1.0, 1e-3, np.float32(0.5), 2]), LR))


def well_conditioned(y):
    """Targets of moderate size: beyond, mse through softmax's Jacobian cancels catastrophically
    (G - sum(G A) with |G| ~ 1e18) and two correct orders of summation differ by far more
    than a tolerance; there only finiteness is checked."""
    num = numeric(y)
    return not isinstance(num, (str, type(None))) and np.abs(num).max(initial=0) <= 1e6


def check_backward(args, X, y, lr):
    model = build(fastnn, args)
    snaps = snapshot(X), snapshot(y)
    ok = (valid_X(X, args["input_size"], model.dtype) and lr_ok(lr)
          and valid_y(y, len(numeric(X)), args["loss_func"], args["output_size"], model.dtype))
    event("valid input" if ok else "invalid input")
    before = model.params.copy()
    try:
        model.backward(X, y, lr)
    except fastnn.DivergenceError as err:
        # Valid input can still overflow in the model's dtype (float32 mse with a target of
        # 1e30: (a - y)^2 = 1e60 is inf): as in train, an error, and the model untouched.
        assert ok and "diverged" in str(err), f"invalid input reported as divergence: {err!r}"
        np.testing.assert_array_equal(model.params, before)
    except Exception as err:  # noqa: BLE001
        assert_clear(err)
        assert not ok, f"valid input rejected: {err!r}"
    else:
        assert ok, "invalid input accepted"
        ref = build(reference, args)
        ref.backward(as_model_input(X, model.dtype), y, float(lr))
        assert np.isfinite(model.params).all(), "backward left a non-finite model"
        if well_conditioned(y):
            np.testing.assert_allclose(model.params, ref.params, rtol=RTOL[model.dtype], atol=RTOL[model.dtype])
    assert unchanged(X, snaps[0]) and unchanged(y, snaps[1]), "an input array was modified"


@FAST
@given(backward_case())
def test_backward(case):
    check_backward(*case)


# -- Trainer(...).train ----------------------------------------------------------------------------------------
@st.composite
def train_case(draw):
    args, X, y, lr = draw(backward_case())
    extra = dict(
        epochs=draw(mostly(st.sampled_from([1, 2, 3, np.int64(2)]), st.sampled_from([0, -1, 1.0, True, None]))),
        batch_size=draw(mostly(st.sampled_from([None, 1, 2, 3, 100, np.int64(2)]),
                               st.sampled_from([0, -2, 2.5, "2", np.int64(0), np.float64(2.0)]))),
        optimizer=draw(mostly(st.sampled_from(["gd", "sgd", "momentum", "nesterov", "adam", fastnn.Adam(beta1=0.5),
                                               fastnn.SGD(momentum=0.5, nesterov=True)]),
                              st.sampled_from(["ADAM", None, 3, "rmsprop"]))),
        shuffle=draw(st.booleans()),
    )
    test = draw(mostly(st.sampled_from(["none", "same"]), st.just("X only")))
    return args, X, y, lr, extra, test, draw(mostly(st.sampled_from(LOSSES), st.sampled_from(["l1", None, "MSE"])))


def check_train(args, X, y, lr, extra, test, report_loss):
    model = build(fastnn, args)
    snaps = snapshot(X), snapshot(y)
    Xt, yt = {"none": (None, None), "same": (X, y), "X only": (X, None)}[test]
    n = len(numeric(X)) if valid_X(X, args["input_size"], model.dtype) else None
    e, b, opt = extra["epochs"], extra["batch_size"], extra["optimizer"]
    ok = (n is not None and lr_ok(lr) and valid_y(y, n, args["loss_func"], args["output_size"], model.dtype)
          and test != "X only" and is_int(e) and (b is None or is_int(b))
          and (opt in ("gd", "sgd", "momentum", "nesterov", "adam") or isinstance(opt, (fastnn.Adam, fastnn.SGD)))
          and report_loss in LOSSES)
    event("valid input" if ok else "invalid input")
    try:
        trainer = fastnn.Trainer(model, report_loss)
        trainer.train(X, y, Xt, yt, e, lr, batch_size=b, optimizer=opt, shuffle=extra["shuffle"])
    except fastnn.DivergenceError as err:
        assert ok and f"epoch {err.epoch}" in str(err)
        assert len(trainer.train_loss) == err.epoch - 1 and np.isfinite(model.params).all()
    except Exception as err:  # noqa: BLE001
        assert_clear(err)
        assert not ok, f"valid input rejected: {err!r}"
    else:
        assert ok, "invalid input accepted"
        assert len(trainer.train_loss) == e and np.isfinite(trainer.train_loss).all()
        assert len(trainer.test_loss) == (e if test == "same" else 0) and np.isfinite(trainer.test_loss).all()
        assert np.isfinite(model.params).all()
        ref = build(reference, args)
        if well_conditioned(y):
            reference.Trainer(ref, report_loss).train(as_model_input(X, model.dtype), y, None, None, e, float(lr),
                                                      batch_size=b, optimizer=opt, shuffle=extra["shuffle"])
            np.testing.assert_allclose(model.params, ref.params, rtol=RTOL[model.dtype] * 10,
                                       atol=RTOL[model.dtype] * 10)
    assert unchanged(X, snaps[0]) and unchanged(y, snaps[1]), "an input array was modified"


@FAST
@given(train_case())
@example((  # a float32 tanh unit saturated to -1 (NumPy's float32 tanh said -0.99999994), then Adam
    dict(input_size=2, hidden_size=3, output_size=3, loss_func="mse", activation="tanh", output_activation="identity",
         dtype="float32", seed=1, init="normal"),
    np.array([[0, 0], [0, 0], [0, 4]], dtype=np.int8), np.zeros((3, 3)), 0.1,
    dict(epochs=1, batch_size=None, optimizer="adam", shuffle=False), "none", "mse"))
@example((  # the same with plain gradient steps of lr 1 and large deltas
    dict(input_size=3, hidden_size=2, output_size=2, loss_func="mse", activation="tanh", output_activation="identity",
         dtype="float32", seed=10883, init="normal"),
    np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0], [0, 1, 0]], dtype=np.int8), np.zeros((5, 2)), 1.0,
    dict(epochs=2, batch_size=1, optimizer="gd", shuffle=True), "none", "mse"))
def test_train(case):
    check_train(*case)


# -- the same properties, many more examples: python -m pytest -m slow tests/test_robustness.py ---------------
def run_slow(request, strategy, check):
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("slow: select with -m slow")
    SLOW(given(strategy)(check))()


@pytest.mark.slow
def test_constructor_slow(request):
    run_slow(request, constructor_args(), check_constructor)


@pytest.mark.slow
def test_forward_predict_slow(request):
    run_slow(request, st.tuples(model_and_X(), st.sampled_from(["forward", "predict"])),
             lambda c: check_forward(*c[0], c[1]))


@pytest.mark.slow
def test_backward_slow(request):
    run_slow(request, backward_case(), lambda c: check_backward(*c))


@pytest.mark.slow
def test_train_slow(request):
    run_slow(request, train_case(), lambda c: check_train(*c))


def test_trainer_rejects_non_models():
    for bad in (None, 3, "model", np.zeros(3), object()):
        with pytest.raises(TypeError, match="NeuralNetwork"):
            fastnn.Trainer(bad)


# -- numerical faults ------------------------------------------------------------------------------------------
def one_step_gradient(model, X, y):
    """The gradient the kernels used: -(params after one backward step with lr=1 - before)."""
    before = model.params.copy()
    model.backward(X, y, 1.0)
    return before - model.params


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("case", ["1e30", "all-equal rows", "saturated outputs", "zero probabilities"])
def test_extreme_inputs_give_finite_loss_and_gradient(dtype, loss, case):
    rng = np.random.RandomState(0)
    X = rng.randn(8, 3)
    y = np.eye(2)[rng.randint(0, 2, 8)]
    model = fastnn.NeuralNetwork(3, [4, 3], 2, loss, activation="tanh", dtype=dtype, seed=1)
    if case == "1e30":
        X = np.sign(X) * 1e30
    elif case == "all-equal rows":
        X = np.ones((8, 3)) * 7.0
    elif case == "saturated outputs":  # output logits of +-1e30: sigmoid/softmax at exactly 0 and 1
        model.weights[-1][...] = np.sign(model.weights[-1]) * 1e28
    else:  # outputs that put probability 0 on the true class: log(0) without clipping
        model.weights[-1][...] = np.array([[-1e4, 1e4]] * 3)
        y = np.tile([1.0, 0.0], (8, 1))
    ref = reference.NeuralNetwork(3, [4, 3], 2, loss, activation="tanh", dtype=dtype, seed=1)
    ref.params[...] = model.params
    A = model.forward(X)
    assert np.isfinite(A).all()
    loss_value = fastnn.Trainer(model, loss).calculate_loss(y, A)
    assert np.isfinite(loss_value)
    g, g_ref = one_step_gradient(model, X, y), one_step_gradient(ref, X, y)
    assert np.isfinite(g).all() and np.isfinite(g_ref).all()
    scale = np.abs(g_ref).max() + 1.0
    np.testing.assert_allclose(g, g_ref, rtol=0, atol=scale * RTOL[np.dtype(dtype)] * 10)
    trainer = fastnn.Trainer(model, loss)
    trainer.train(X, y, X, y, 2, 0.1)
    assert np.isfinite(trainer.train_loss).all() and np.isfinite(trainer.test_loss).all()


def test_softmax_and_sigmoid_of_huge_logits_are_exact_probabilities():
    model = fastnn.NeuralNetwork(2, 2, 3, "categorical_crossentropy", activation="identity", seed=0)
    model.weights[0][...] = np.eye(2)
    model.weights[1][...] = np.array([[1e30, -1e30, 0.0], [0.0, 0.0, 1e30]])
    P = model.forward(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    assert np.isfinite(P).all() and np.allclose(P.sum(axis=1), 1.0)
    assert np.array_equal(P[:2], [[1, 0, 0], [0, 0, 1]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["gd", "momentum", "nesterov"])
def test_divergence_names_the_epoch_and_keeps_last_finite_weights(dtype, optimizer):
    rng = np.random.RandomState(0)
    X = rng.randn(20, 3)
    y = X @ rng.randn(3, 1) * 10

    def fresh():
        return fastnn.NeuralNetwork(3, 8, 1, "mse", activation="relu", output_activation="identity",
                                    dtype=dtype, seed=2)

    lr = {"gd": 0.15, "momentum": 0.3, "nesterov": 0.2}[optimizer]
    model = fresh()
    trainer = fastnn.Trainer(model, "mse")
    with pytest.raises(fastnn.DivergenceError, match=r"diverged at epoch (\d+)") as info:
        trainer.train(X, y, X, y, 500, lr, optimizer=optimizer, batch_size=5)
    epoch = info.value.epoch
    assert f"epoch {epoch}" in str(info.value) and isinstance(info.value, FloatingPointError)
    assert epoch > 1, "diverge after a few finite epochs, so that 'last finite weights' means something"
    assert len(trainer.train_loss) == len(trainer.test_loss) == epoch - 1
    assert np.isfinite(model.params).all() and np.isfinite(trainer.train_loss).all()
    from test_guard import replay

    rerun = fastnn.Trainer(fresh(), "mse").train(X, y, X, y, epoch - 1, lr, optimizer=optimizer, batch_size=5)
    assert rerun.train_loss == trainer.train_loss
    # exactly the weights after the last finite step, step - 1 steps into the epoch
    again, _ = replay(fresh, X, y, lr, epoch - 1, info.value.step - 1, batch_size=5, optimizer=optimizer)
    assert np.array_equal(model.params, again.params)


def test_backward_never_leaves_a_silent_nan_model():
    model = fastnn.NeuralNetwork(2, 3, 1, "mse", activation="relu", output_activation="identity", seed=0)
    X, y = np.full((4, 2), 1e200), np.ones(4)
    try:
        model.backward(X, y, 1.0)
    except fastnn.DivergenceError:
        pass
    assert np.isfinite(model.params).all()
