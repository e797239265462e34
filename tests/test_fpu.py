"""The kernels run with subnormal numbers flushed to zero (fastnn.kernels.fpu), and the
caller's floating-point mode is always put back: NumPy code around them, and a user's
callbacks, keep IEEE subnormals."""
import platform
import threading

import numpy as np
import pytest

import fastnn
from fastnn._core.fpu import flushing_subnormals, run_flushing_subnormals
from fastnn.kernels import fpu
from fastnn.sklearn import MLPClassifier

X86_64 = platform.machine().lower() in ("x86_64", "amd64")
x86_only = pytest.mark.skipif(not X86_64, reason="FTZ/DAZ are x86 modes (elsewhere the kernels keep IEEE subnormals)")
SUBNORMAL = np.float32(1e-39)  # below float32's smallest normal number, 1.18e-38


def identity_chain():
    """1-1-1 network computing x (ReLU for positive x, then identity): a subnormal
    input comes out as it went in, or as 0 when read as 0."""
    nn = fastnn.NeuralNetwork(1, 1, 1, "mse", activation="relu", output_activation="identity", dtype="float32", seed=0)
    for W in nn.weights:
        W[...] = 1.0
    for b in nn.biases:
        b[...] = 0.0
    return nn


def ieee_subnormals_work():
    return np.float32(1e-38) / np.float32(4) != 0  # NumPy on this thread keeps subnormals


@x86_only
def test_kernels_read_subnormal_inputs_as_zero():
    nn = identity_chain()
    X = np.array([[SUBNORMAL], [np.float32(2.0)]], dtype=np.float32)
    np.testing.assert_array_equal(nn.forward(X), [[0.0], [2.0]])
    assert (X[:1] @ np.ones((1, 1), np.float32))[0, 0] == SUBNORMAL  # NumPy, after the kernel: IEEE again


@x86_only
def test_the_flush_mode_is_on_only_inside():
    before = fpu.current_mode()
    assert before & fpu.FLUSH_BITS == 0
    with flushing_subnormals():
        assert fpu.current_mode() & fpu.FLUSH_BITS == fpu.FLUSH_BITS
    assert fpu.current_mode() == before
    with pytest.raises(RuntimeError):  # a call that raises puts the mode back too
        with flushing_subnormals():
            raise RuntimeError("boom")
    assert fpu.current_mode() == before
    # The split's helper thread runs its whole loop flushed.
    result = []
    t = threading.Thread(target=lambda: result.append(run_flushing_subnormals(fpu.current_mode)))
    t.start()
    t.join()
    assert result[0] & fpu.FLUSH_BITS == fpu.FLUSH_BITS


@pytest.mark.parametrize("batch_size", [8, None], ids=["minibatch", "full-batch-split"])
def test_callbacks_and_the_caller_keep_ieee_subnormals(batch_size):
    rng = np.random.default_rng(0)
    X, y = rng.random((64, 6)), rng.integers(0, 3, 64)
    before = fpu.current_mode()
    seen = []

    def callback(epoch, logs):
        seen.append((fpu.current_mode(), ieee_subnormals_work()))

    nn = fastnn.NeuralNetwork(6, 5, 3, "categorical_crossentropy", seed=0)
    kw = {} if batch_size is None else {"batch_size": batch_size, "optimizer": "adam"}
    fastnn.Trainer(nn, "categorical_crossentropy").train(X, y, X, y, 3, 0.1, validation_split=0.25,
                                                         callbacks=[fastnn.LambdaCallback(on_epoch_end=callback)],
                                                         **kw)
    nn.predict(X)
    assert seen == [(before, True)] * 3
    assert fpu.current_mode() == before


def test_the_scikit_learn_face_keeps_the_callers_mode():
    rng = np.random.default_rng(0)
    X, y = rng.random((40, 4)), rng.integers(0, 2, 40)
    before = fpu.current_mode()
    for solver in ("adam", "lbfgs"):
        MLPClassifier((5,), solver=solver, max_iter=3, random_state=0).fit(X, y).predict_proba(X)
        assert fpu.current_mode() == before
    assert ieee_subnormals_work()
