"""The public API: bad input gets a clear error naming the argument (issue 2, item 6),
the tutorial's attributes and initial weights, and divergence handling."""
import re

import numpy as np
import pytest

import fastnn
from fastnn import DivergenceError, NeuralNetwork, Trainer, reference
from fastnn._core.validation import check_y

IMPLS = [fastnn, reference]


def names_all(valid):
    """A regex matching a message that lists every valid name (in any order)."""
    return "".join(f"(?=.*'{re.escape(v)}')" for v in valid)


@pytest.fixture
def xy(rng):
    X = rng.standard_normal((10, 4))
    Y = np.eye(3)[rng.integers(0, 3, 10)]
    return X, Y


def fresh(impl=fastnn, **kw):
    return impl.NeuralNetwork(4, 5, 3, "categorical_crossentropy", seed=0, **kw)


# -- bad input to Trainer.train: raised before any kernel runs ----------------------------
def bad_train_inputs(X, Y):
    """(description, kwargs overriding a valid call, error type, message pattern)."""
    Xnan, Xinf, Ynan = X.copy(), X.copy(), Y.copy()
    Xnan[3, 1], Xinf[0, 0], Ynan[2, 2] = np.nan, -np.inf, np.nan
    return [
        ("X/y row mismatch", dict(y_train=Y[:7]), ValueError, r"y_train has 7 rows but X has 10"),
        ("X_test/y_test row mismatch", dict(y_test=Y[:4]), ValueError, r"y_test has 4 rows but X has 10"),
        ("feature count", dict(X_train=X[:, :3]), ValueError, r"X_train has 3 features.*input_size is 4"),
        ("feature count of X_test", dict(X_test=np.hstack([X, X])), ValueError, r"X_test has 8 features.*input_size is 4"),
        ("X 1-D", dict(X_train=X[0]), ValueError, r"X_train must be 2-D"),
        ("X 3-D", dict(X_train=X[None]), ValueError, r"X_train must be 2-D"),
        ("label width", dict(y_train=Y[:, :2]), ValueError, r"y_train has 2 columns.*output_size is 3"),
        ("label 3-D", dict(y_train=Y[:, :, None]), ValueError, r"y_train must be 1-D or 2-D"),
        ("class labels out of range", dict(y_train=np.arange(10) % 4), ValueError, r"y_train as class labels must be integers in \[0, 3\)"),
        ("class labels not integers", dict(y_train=np.full(10, 0.5)), ValueError, r"y_train as class labels must be integers"),
        ("negative probabilities", dict(y_train=-Y), ValueError, r"y_train for categorical_crossentropy must lie in \[0, 1\]"),
        ("NaN in X", dict(X_train=Xnan), ValueError, r"X_train contains NaN or infinity \(first at index \(3, 1\)"),
        ("inf in X", dict(X_train=Xinf), ValueError, r"X_train contains NaN or infinity"),
        ("NaN in y", dict(y_train=Ynan), ValueError, r"y_train contains NaN or infinity"),
        ("NaN in X_test", dict(X_test=Xnan), ValueError, r"X_test contains NaN or infinity"),
        ("inf in y_test", dict(y_test=np.where(Y == 1, np.inf, 0)), ValueError, r"y_test contains NaN or infinity"),
        ("empty X", dict(X_train=X[:0], y_train=Y[:0]), ValueError, r"X_train is empty"),
        ("empty y", dict(y_train=Y[:0]), ValueError, r"y_train has 0 rows but X has 10"),
        ("empty X_test", dict(X_test=X[:0], y_test=Y[:0]), ValueError, r"X_test is empty"),
        ("X_test without y_test", dict(y_test=None), ValueError, r"X_test and y_test must be given together"),
        ("y_test without X_test", dict(X_test=None), ValueError, r"X_test and y_test must be given together"),
        ("string X", dict(X_train=X.astype(str)), TypeError, r"X_train must hold numbers"),
        ("complex X", dict(X_train=X + 1j), TypeError, r"X_train must be real"),
        ("None X", dict(X_train=None), TypeError, r"X_train must be an array of numbers; got None"),
        ("epochs 0", dict(epochs=0), ValueError, r"epochs must be an int >= 1; got 0"),
        ("epochs negative", dict(epochs=-5), ValueError, r"epochs must be an int >= 1; got -5"),
        ("epochs float", dict(epochs=2.5), TypeError, r"epochs must be an int"),
        ("learning rate 0", dict(learning_rate=0), ValueError, r"learning_rate must be a finite number in \(0.0, inf\); got 0.0"),
        ("learning rate negative", dict(learning_rate=-0.1), ValueError, r"learning_rate must be .*; got -0.1"),
        ("learning rate NaN", dict(learning_rate=np.nan), ValueError, r"learning_rate must be a finite number"),
        ("learning rate inf", dict(learning_rate=np.inf), ValueError, r"learning_rate must be a finite number"),
        ("learning rate string", dict(learning_rate="0.1"), TypeError, r"learning_rate must be a real number"),
        ("batch size 0", dict(batch_size=0), ValueError, r"batch_size must be an int >= 1; got 0"),
        ("batch size negative", dict(batch_size=-32), ValueError, r"batch_size must be an int >= 1; got -32"),
        ("batch size float", dict(batch_size=32.0), TypeError, r"batch_size must be an int"),
        ("unknown optimizer", dict(optimizer="rmsprop"), ValueError,
         r"optimizer must be one of " + names_all(["gd", "sgd", "momentum", "nesterov", "adam"]) + r".*got 'rmsprop'"),
    ]


CASE_IDS = [c[0] for c in bad_train_inputs(np.zeros((10, 4)), np.zeros((10, 3)))]


@pytest.mark.parametrize("impl", IMPLS, ids=["fastnn", "reference"])
@pytest.mark.parametrize("case", range(len(CASE_IDS)), ids=CASE_IDS)
def test_train_rejects_bad_input(case, impl, xy):
    X, Y = xy
    _, override, error, pattern = bad_train_inputs(X, Y)[case]
    nn = fresh(impl)
    before = nn.params.copy()
    trainer = impl.Trainer(nn, "categorical_crossentropy")
    args = dict(X_train=X, y_train=Y, X_test=X, y_test=Y, epochs=2, learning_rate=0.1, batch_size=4, optimizer="adam")
    args.update(override)
    kw = {k: args.pop(k) for k in ("batch_size", "optimizer")}
    with pytest.raises(error, match=pattern):
        trainer.train(*args.values(), **kw)
    # Nothing ran: the model and the history are untouched.
    np.testing.assert_array_equal(nn.params, before)
    assert trainer.train_loss == [] and trainer.test_loss == []


@pytest.mark.parametrize("loss,y,pattern", [
    ("mse", np.zeros(10), r"y_train is 1-D but the network has 3 outputs"),
    ("log_loss", np.full((10, 3), 2.0), r"y_train for log_loss must lie in \[0, 1\]"),
    ("log_loss", np.zeros((10, 1)), r"y_train has 1 columns.*output_size is 3"),
])
def test_label_shape_and_range_per_loss(loss, y, pattern, xy):
    X, _ = xy
    nn = NeuralNetwork(4, 5, 3, loss, seed=0)
    with pytest.raises(ValueError, match=pattern):
        Trainer(nn, loss).train(X, y, None, None, 1, 0.1)


def test_one_output_accepts_1d_targets(xy):
    X, _ = xy
    y = np.linspace(0, 1, 10)
    a, b = NeuralNetwork(4, 3, 1, "log_loss", seed=0), NeuralNetwork(4, 3, 1, "log_loss", seed=0)
    Trainer(a, "log_loss").train(X, y, None, None, 2, 0.1)
    Trainer(b, "log_loss").train(X, y.reshape(-1, 1), None, None, 2, 0.1)
    np.testing.assert_array_equal(a.params, b.params)


def test_integer_class_labels_equal_one_hot(xy):
    X, Y = xy
    a, b = fresh(), fresh()
    ta = Trainer(a, "categorical_crossentropy").train(X, np.argmax(Y, axis=1), X, np.argmax(Y, axis=1), 3, 0.1)
    tb = Trainer(b, "categorical_crossentropy").train(X, Y, X, Y, 3, 0.1)
    assert ta.train_loss == tb.train_loss and ta.test_loss == tb.test_loss
    np.testing.assert_array_equal(a.params, b.params)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "uint64", "int64", "float32", "float64", "bool"])
def test_class_labels_of_every_numeric_dtype_give_the_same_one_hot(dtype):
    labels = np.array([1, 0, 1, 1, 0, 0] if dtype == "bool" else [2, 0, 1, 2, 2, 0])
    got = check_y(labels.astype(dtype), 6, "categorical_crossentropy", 3, np.float32)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, np.eye(3, dtype=np.float32)[labels])
    if dtype != "bool":  # (a bool is always in range)
        with pytest.raises(ValueError, match=r"y as class labels must be integers in \[0, 3\).* in \[0(\.0)?, 3(\.0)?\]"):
            check_y(np.array([0, 3]).astype(dtype), 2, "categorical_crossentropy", 3, np.float32)


# -- bad input to forward / backward ---------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS, ids=["fastnn", "reference"])
def test_forward_and_backward_reject_bad_input(impl, xy):
    X, Y = xy
    nn = fresh(impl)
    before = nn.params.copy()
    with pytest.raises(ValueError, match=r"X has 3 features per sample; the network's input_size is 4"):
        nn.forward(X[:, :3])
    with pytest.raises(ValueError, match=r"X is empty"):
        nn.forward(np.empty((0, 4)))
    with pytest.raises(ValueError, match=r"X contains NaN or infinity"):
        nn.forward(np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match=r"y has 9 rows but X has 10"):
        nn.backward(X, Y[:9], 0.1)
    with pytest.raises(ValueError, match=r"y contains NaN or infinity"):
        nn.backward(X, np.where(Y == 1, np.nan, 0), 0.1)
    with pytest.raises(ValueError, match=r"learning_rate must be a finite number in \(0.0, inf\); got -1.0"):
        nn.backward(X, Y, -1.0)
    with pytest.raises(ValueError, match=r"learning_rate"):
        nn.backward(X, Y, 0)
    np.testing.assert_array_equal(nn.params, before)


# -- bad constructor arguments -------------------------------------------------------------
ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu"]
LOSSES = ["mse", "log_loss", "categorical_crossentropy"]


@pytest.mark.parametrize("args,kwargs,error,pattern", [
    ((0, 5, 3), {}, ValueError, r"input_size must be an int >= 1; got 0"),
    ((4, 0, 3), {}, ValueError, r"hidden_size must be an int >= 1; got 0"),
    ((4, -2, 3), {}, ValueError, r"hidden_size must be an int >= 1; got -2"),
    ((4, [5, 0], 3), {}, ValueError, r"hidden_size\[1\] must be an int >= 1; got 0"),
    ((4, 5, 0), {}, ValueError, r"output_size must be an int >= 1; got 0"),
    ((4, 5, -1), {}, ValueError, r"output_size must be an int >= 1; got -1"),
    ((4.0, 5, 3), {}, TypeError, r"input_size must be an int"),
    ((4, 5.5, 3), {}, TypeError, r"hidden_size must be an int"),
    ((4, "5", 3), {}, TypeError, r"hidden_size must be an int or a sequence of ints"),
    ((True, 5, 3), {}, TypeError, r"input_size must be an int"),
    ((4, 5, 3, "hinge"), {}, ValueError, r"loss_func must be one of " + names_all(LOSSES) + r".*got 'hinge'"),
    ((4, 5, 3), dict(activation="swish"), ValueError, r"activation must be one of " + names_all(ACTIVATIONS) + r".*got 'swish'"),
    ((4, 5, 3), dict(output_activation="relu"), ValueError,
     r"output_activation must be one of " + names_all(["identity", "sigmoid", "softmax"])),
    ((4, 5, 3, "log_loss"), dict(output_activation="softmax"), ValueError, r"output_activation 'softmax' does not fit loss_func 'log_loss'"),
    ((4, 5, 3, "categorical_crossentropy"), dict(output_activation="sigmoid"), ValueError, r"does not fit loss_func 'categorical_crossentropy'"),
    ((4, 5, 3), dict(init="xavier"), ValueError, r"init must be one of " + names_all(["normal", "glorot", "he"])),
    ((4, 5, 3), dict(dtype="float16"), ValueError, r"dtype must be float32 or float64"),
    ((4, 5, 3), dict(dtype=np.int64), ValueError, r"dtype must be float32 or float64"),
    ((4, 5, 3), dict(seed=-1), ValueError, r"seed must be an int >= 0; got -1"),
    ((4, 5, 3), dict(activation="leaky_relu", alpha=-0.1), ValueError, r"alpha must be a finite number"),
])
@pytest.mark.parametrize("impl", IMPLS, ids=["fastnn", "reference"])
def test_constructor_rejects_bad_arguments(impl, args, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        impl.NeuralNetwork(*args, **kwargs)


def test_trainer_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"loss_func must be one of " + names_all(LOSSES) + r".*got 'l1'"):
        Trainer(fresh(), "l1")
    with pytest.raises(TypeError, match=r"model must be a fastnn NeuralNetwork"):
        Trainer(object(), "mse")


@pytest.mark.parametrize("make,pattern", [
    (lambda: fastnn.SGD(momentum=1.0), r"SGD momentum must be a finite number in \[0.0, 1.0\)"),
    (lambda: fastnn.SGD(momentum=-0.5), r"SGD momentum"),
    (lambda: fastnn.SGD(nesterov=True), r"nesterov=True\) needs momentum > 0"),
    (lambda: fastnn.Adam(beta1=1.0), r"Adam beta1"),
    (lambda: fastnn.Adam(beta2=-0.1), r"Adam beta2"),
    (lambda: fastnn.Adam(epsilon=0.0), r"Adam epsilon"),
])
def test_optimizer_objects_reject_bad_hyperparameters(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


# -- the tutorial's attributes -----------------------------------------------------------
def sigmoid(z):
    return 1 / (1 + np.exp(-z))


@pytest.mark.parametrize("impl", IMPLS, ids=["fastnn", "reference"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tutorial_attribute_shapes_and_views(impl, dtype):
    nn = impl.NeuralNetwork(4, 5, 3, dtype=dtype, seed=0)
    assert nn.weights1.shape == (4, 5) and nn.bias1.shape == (1, 5)
    assert nn.weights2.shape == (5, 3) and nn.bias2.shape == (1, 3)
    for a in (nn.weights1, nn.bias1, nn.weights2, nn.bias2):
        assert a.dtype == dtype and np.shares_memory(a, nn.params)
    assert nn.weights1 is nn.weights[0] and nn.bias2 is nn.biases[1]
    # Reading is a view: the tutorial's in-place updates (W -= ...) reach params.
    nn.weights1[0, 0] = 7.0
    assert nn.params[0] == 7.0


@pytest.mark.parametrize("impl", IMPLS, ids=["fastnn", "reference"])
def test_assigning_tutorial_attributes_writes_through(impl, rng):
    nn = impl.NeuralNetwork(4, 5, 3, seed=0)  # mse, sigmoid hidden and output
    W1, b1 = rng.standard_normal((4, 5)), rng.standard_normal((1, 5))
    W2, b2 = rng.standard_normal((5, 3)), rng.standard_normal(3)  # a 1-D bias is fine too
    nn.weights1, nn.bias1, nn.weights2, nn.bias2 = W1, b1, W2, b2
    np.testing.assert_array_equal(nn.params, np.concatenate([W1.ravel(), b1.ravel(), W2.ravel(), b2]))
    assert np.shares_memory(nn.weights1, nn.params)  # still views, not replaced arrays
    X = rng.standard_normal((6, 4))
    want = sigmoid(sigmoid(X @ W1 + b1) @ W2 + b2)  # the tutorial's forward, by hand
    np.testing.assert_allclose(nn.forward(X), want, rtol=1e-12)
    W1[...] = 0  # the model holds a copy, not the caller's array
    assert nn.weights1.any()


@pytest.mark.parametrize("name,value", [
    ("weights1", np.zeros((5, 4))),  # transposed: same size, wrong shape
    ("weights1", np.zeros((4, 6))),
    ("bias1", np.zeros((5, 1))),
    ("weights2", np.zeros(15)),
    ("bias2", np.zeros((1, 4))),
])
def test_assigning_a_wrong_shape_raises(name, value):
    nn = NeuralNetwork(4, 5, 3, seed=0)
    before = nn.params.copy()
    with pytest.raises(ValueError, match=rf"{name} must have shape"):
        setattr(nn, name, value)
    np.testing.assert_array_equal(nn.params, before)


def test_assigning_non_finite_weights_raises():
    nn = NeuralNetwork(4, 5, 3, seed=0)
    with pytest.raises(ValueError, match=r"weights2 must be finite"):
        nn.weights2 = np.full((5, 3), np.nan)


@pytest.mark.parametrize("name", ["weights1", "bias1", "weights2", "bias2"])
def test_tutorial_attributes_need_one_hidden_layer(name):
    nn = NeuralNetwork(4, [5, 6], 3, seed=0)
    with pytest.raises(AttributeError, match=rf"{name} exists for one hidden layer only.*has 2"):
        getattr(nn, name)
    with pytest.raises(AttributeError, match=name):
        setattr(nn, name, np.zeros((4, 5)))
    assert [W.shape for W in nn.weights] == [(4, 5), (5, 6), (6, 3)]
    assert [b.shape for b in nn.biases] == [(1, 5), (1, 6), (1, 3)]


@pytest.mark.parametrize("impl", IMPLS, ids=["fastnn", "reference"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("s", [0, 42])
def test_global_seed_gives_the_tutorials_initial_weights(s, dtype, impl):
    # The tutorial: W1 = np.random.randn(in, h); b1 = np.zeros((1, h));
    #               W2 = np.random.randn(h, out); b2 = np.zeros((1, out)).
    np.random.seed(s)
    W1, b1 = np.random.randn(3, 7), np.zeros((1, 7))
    W2, b2 = np.random.randn(7, 2), np.zeros((1, 2))
    after_tutorial = np.random.rand()

    np.random.seed(s)
    nn = impl.NeuralNetwork(3, 7, 2, dtype=dtype)
    after_fastnn = np.random.rand()
    for got, want in ((nn.weights1, W1), (nn.bias1, b1), (nn.weights2, W2), (nn.bias2, b2)):
        np.testing.assert_array_equal(got, want.astype(dtype))
    assert after_fastnn == after_tutorial  # same draws, so the script's later draws match too

    seeded = impl.NeuralNetwork(3, 7, 2, dtype=dtype, seed=s)
    np.testing.assert_array_equal(seeded.params, nn.params)


def test_full_batch_training_draws_no_random_numbers(xy):
    # The tutorial's loop never touches NumPy's global state; neither does full-batch fastnn.
    X, Y = xy
    np.random.seed(3)
    nn = NeuralNetwork(4, 5, 3, "categorical_crossentropy")
    state = np.random.get_state()[1].copy()
    Trainer(nn, "categorical_crossentropy").train(X, Y, X, Y, 3, 0.1)
    nn.backward(X, Y, 0.1)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_forward_keeps_a2_and_predict(xy):
    X, Y = xy
    nn = fresh()
    out = nn.forward(X)
    assert nn.a2 is out and out.shape == (10, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-12)  # softmax output
    np.testing.assert_array_equal(nn.predict(X), np.argmax(out, axis=1))
    bin_nn = NeuralNetwork(4, 5, 2, "log_loss", seed=0)
    np.testing.assert_array_equal(bin_nn.predict(X), (bin_nn.forward(X) > 0.5).astype(int))


# -- divergence ------------------------------------------------------------------------------
def regression(rng):
    X = rng.standard_normal((20, 3))
    return X, X @ rng.standard_normal((3, 1))


def diverging(impl=fastnn):
    return impl.NeuralNetwork(3, 4, 1, "mse", output_activation="identity", seed=0)


# The reference's NumPy warns about the overflow on its way to inf: expected here.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("impl", IMPLS, ids=["fastnn", "reference"])
@pytest.mark.parametrize("kw", [dict(), dict(batch_size=7, optimizer="momentum"), dict(batch_size=6, optimizer="nesterov")],
                         ids=["gd", "momentum-minibatch", "nesterov-minibatch"])
def test_divergence_keeps_the_last_finite_weights(kw, impl, rng):
    # mse regression with an identity output and lr 1e6: each epoch multiplies the
    # error by ~1e6, so the loss overflows after a few dozen finite epochs.
    from test_guard import replay

    X, y = regression(rng)
    lr = 1e6
    nn = diverging(impl)
    trainer = impl.Trainer(nn, "mse")
    with pytest.raises(DivergenceError, match=r"diverged at epoch (\d+), step (\d+)") as info:
        trainer.train(X, y, X, y, 200, lr, **kw)
    epoch, step = info.value.epoch, info.value.step
    assert f"epoch {epoch}, step {step}" in str(info.value)
    assert isinstance(info.value, FloatingPointError)
    assert epoch >= 2  # so that "the last finite epoch" is a real one
    assert len(trainer.train_loss) == len(trainer.test_loss) == epoch - 1
    assert np.isfinite(trainer.train_loss).all()
    assert np.isfinite(nn.params).all()

    # Rerun only the finite steps from the same start: the same weights, bit for bit.
    again = diverging(impl)
    rerun = impl.Trainer(again, "mse").train(X, y, X, y, epoch - 1, lr, **kw)
    assert rerun.train_loss == trainer.train_loss
    again, state = replay(lambda: diverging(impl), X, y, lr, epoch - 1, step - 1, **kw)
    np.testing.assert_array_equal(nn.params, again.params)
    np.testing.assert_array_equal(trainer.optimizer_state.m, state.m)
    np.testing.assert_array_equal(trainer.optimizer_state.v, state.v)
    assert trainer.optimizer_state.t == state.t


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("impl", IMPLS, ids=["fastnn", "reference"])
def test_divergence_in_the_first_epoch_keeps_the_initial_weights(impl, rng):
    X, y = regression(rng)
    nn = diverging(impl)
    start = nn.params.copy()
    trainer = impl.Trainer(nn, "mse")
    with pytest.raises(DivergenceError, match=r"epoch 1\b") as info:
        trainer.train(X, y * 1e200, None, None, 5, 1.0)  # finite targets, but (a - y)^2 overflows
    assert info.value.epoch == 1 and trainer.train_loss == []
    np.testing.assert_array_equal(nn.params, start)
