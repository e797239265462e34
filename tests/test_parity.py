"""fastnn.Trainer against fastnn.reference.Trainer: same seed, same batch order, same curve.

Both networks are built with the same ``seed``, so they start from the same weights and
draw the same shuffled batch order; the kernels then must reproduce the NumPy reference
to rounding over 20 epochs of minibatch training, for every optimizer.

Tolerances, one table per dtype:

* float64: the issue's bound, rtol 1e-9 on the loss curves, and on the final parameters
  (atol 1e-12 for parameters that pass near 0). Measured: losses 5e-15, parameters
  1e-12 relative at most.
* float32: both implementations round to float32 at every step, in different orders
  (BLAS sgemm vs NumPy's matmul, fused loops vs vectorised expressions), and 20 epochs
  of updates compound the differences. Measured here: losses 1e-6 relative at most,
  parameters 1e-6 absolute (relative error is larger only for parameters near 0), so
  5e-5 on losses and rtol 1e-4 / atol 1e-5 on parameters leave >= 10x headroom. A
  wrong gradient or update changes the curves by far more (see the sanity check).
"""
import numpy as np
import pytest

import fastnn
from fastnn import reference

TOL = {
    np.float64: {"loss": dict(rtol=1e-9, atol=0.0), "params": dict(rtol=1e-9, atol=1e-12)},
    np.float32: {"loss": dict(rtol=5e-5, atol=0.0), "params": dict(rtol=1e-4, atol=1e-5)},
}
DTYPES = [np.float64, np.float32]
EPOCHS = 20
N_TRAIN, N_TEST, D_IN = 50, 20, 6
BATCH = 16  # 50 rows: batches of 16, 16, 16 and a partial 2
# optimizer -> (batch_size, learning rate); 'gd' is the tutorial's full batch.
OPTIMIZERS = {
    "gd": (None, 0.5),
    "sgd": (BATCH, 0.1),
    "momentum": (BATCH, 0.03),
    "nesterov": (BATCH, 0.03),
    "adam": (BATCH, 0.01),
}
# (hidden sizes, activation, loss, output activation, output size)
MODELS = {
    "tanh-cce-softmax": ([8], "tanh", "categorical_crossentropy", "softmax", 3),
    "relu-mse-identity": ([8, 5], "relu", "mse", "identity", 2),
    "elu-logloss-sigmoid": ([7], "elu", "log_loss", "sigmoid", 3),
}


def dataset(model, rng):
    """A learnable task for the model: targets are a fixed function of X."""
    _, _, loss, _, k = MODELS[model]
    X = rng.standard_normal((N_TRAIN + N_TEST, D_IN))
    S = X @ rng.standard_normal((D_IN, k))
    if loss == "categorical_crossentropy":
        Y = np.eye(k)[np.argmax(S, axis=1)]
    elif loss == "log_loss":
        Y = (S > 0).astype(float)  # multi-label
    else:
        Y = np.tanh(S)
    return X[:N_TRAIN], Y[:N_TRAIN], X[N_TRAIN:], Y[N_TRAIN:]


def train(impl, model, optimizer, dtype, data, seed=11):
    hidden, activation, loss, out, k = MODELS[model]
    batch_size, lr = OPTIMIZERS[optimizer]
    nn = impl.NeuralNetwork(D_IN, hidden, k, loss, activation=activation, output_activation=out,
                            init="glorot", dtype=dtype, seed=seed)
    trainer = impl.Trainer(nn, loss)
    trainer.train(*data, EPOCHS, lr, batch_size=batch_size, optimizer=optimizer)
    return trainer, nn


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("model", list(MODELS))
def test_same_curves_as_reference(model, optimizer, dtype, rng):
    data = dataset(model, rng)
    fast, fast_nn = train(fastnn, model, optimizer, dtype, data)
    ref, ref_nn = train(reference, model, optimizer, dtype, data)
    assert fast_nn._engine.name == "fastnn" and ref_nn._engine.name == "reference"
    assert len(fast.train_loss) == len(fast.test_loss) == EPOCHS
    # The run learns something (the comparison is not of two frozen models).
    assert ref.train_loss[-1] < 0.9 * ref.train_loss[0]
    tol = TOL[dtype]
    np.testing.assert_allclose(fast.train_loss, ref.train_loss, **tol["loss"])
    np.testing.assert_allclose(fast.test_loss, ref.test_loss, **tol["loss"])
    assert fast_nn.params.dtype == ref_nn.params.dtype == dtype
    np.testing.assert_allclose(fast_nn.params, ref_nn.params, **tol["params"])
    assert fast.optimizer_state.t == ref.optimizer_state.t
    np.testing.assert_allclose(fast.optimizer_state.m, ref.optimizer_state.m, **tol["params"])
    np.testing.assert_allclose(fast.optimizer_state.v, ref.optimizer_state.v, **tol["params"])


def test_train_continues_where_it_stopped(rng):
    # Two calls of 10 epochs == one call of 20 (optimizer state and shuffling carry over),
    # in both implementations, and they still agree.
    data = dataset("tanh-cce-softmax", rng)
    full, full_nn = train(fastnn, "tanh-cce-softmax", "adam", np.float64, data)
    for impl in (fastnn, reference):
        nn = impl.NeuralNetwork(D_IN, [8], 3, "categorical_crossentropy", activation="tanh", init="glorot", seed=11)
        trainer = impl.Trainer(nn, "categorical_crossentropy")
        for _ in range(2):
            trainer.train(*data, EPOCHS // 2, OPTIMIZERS["adam"][1], batch_size=BATCH, optimizer="adam")
        np.testing.assert_allclose(trainer.train_loss, full.train_loss, **TOL[np.float64]["loss"])
        np.testing.assert_allclose(nn.params, full_nn.params, **TOL[np.float64]["params"])


def test_different_batch_order_gives_a_different_curve(rng):
    # Sanity check of the comparison's power: another seed's shuffling (same initial
    # weights) moves the curve far beyond the float64 tolerance.
    data = dataset("tanh-cce-softmax", rng)
    a, _ = train(fastnn, "tanh-cce-softmax", "sgd", np.float64, data)
    nn = fastnn.NeuralNetwork(D_IN, [8], 3, "categorical_crossentropy", activation="tanh", init="glorot", seed=11)
    nn._rng = np.random.RandomState(12)  # same weights, another batch order
    b = fastnn.Trainer(nn, "categorical_crossentropy").train(*data, EPOCHS, 0.1, batch_size=BATCH, optimizer="sgd")
    assert a.train_loss[0] != b.train_loss[0]
    assert not np.allclose(a.train_loss, b.train_loss, rtol=1e-6)


@pytest.mark.parametrize("optimizer", [fastnn.SGD(momentum=0.5), fastnn.SGD(momentum=0.7, nesterov=True),
                                       fastnn.Adam(beta1=0.8, beta2=0.99, epsilon=1e-6)], ids=repr)
@pytest.mark.parametrize("shuffle", [True, False])
def test_optimizer_objects_and_unshuffled_batches(optimizer, shuffle, rng):
    # Hyperparameters given as objects reach the kernels; shuffle=False keeps row order.
    data = dataset("elu-logloss-sigmoid", rng)
    runs = []
    for impl in (fastnn, reference):
        nn = impl.NeuralNetwork(D_IN, [7], 3, "log_loss", activation="elu", init="glorot", seed=5)
        trainer = impl.Trainer(nn, "log_loss").train(*data, EPOCHS, 0.02, batch_size=BATCH, shuffle=shuffle,
                                                     optimizer=optimizer)
        runs.append((trainer, nn))
    (fast, fast_nn), (ref, ref_nn) = runs
    np.testing.assert_allclose(fast.train_loss, ref.train_loss, **TOL[np.float64]["loss"])
    np.testing.assert_allclose(fast_nn.params, ref_nn.params, **TOL[np.float64]["params"])
    if not shuffle:
        # Batches in row order: the same as driving the reference engine with arange.
        nn = reference.NeuralNetwork(D_IN, [7], 3, "log_loss", activation="elu", init="glorot", seed=5)
        state = fastnn.optimizers.OptimizerState(optimizer, nn.params.size, np.float64)
        X, Y = data[0], data[1]
        losses = [reference.NumpyEngine.train_epoch(nn, X, Y, np.arange(N_TRAIN), BATCH, optimizer, state, 0.02,
                                                    nn.loss_code, None) for _ in range(EPOCHS)]
        np.testing.assert_allclose(fast.train_loss, losses, **TOL[np.float64]["loss"])


def test_batch_size_above_n_is_full_batch(rng):
    data = dataset("tanh-cce-softmax", rng)
    a, a_nn = train(fastnn, "tanh-cce-softmax", "gd", np.float64, data)
    b_nn = fastnn.NeuralNetwork(D_IN, [8], 3, "categorical_crossentropy", activation="tanh", init="glorot", seed=11)
    b = fastnn.Trainer(b_nn, "categorical_crossentropy").train(*data, EPOCHS, OPTIMIZERS["gd"][1], batch_size=10 * N_TRAIN)
    assert a.train_loss == b.train_loss
    np.testing.assert_array_equal(a_nn.params, b_nn.params)
