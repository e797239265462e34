"""Sample weights and sparse input in the tutorial face's ``Trainer`` (issue 14): the
kernels against the reference, against the maths they promise (integer weights are
repeated rows; sparse rows are the dense ones), and clear errors for bad input."""
import numpy as np
import pytest
import scipy.sparse as sp

import fastnn
from fastnn import reference

F64, F32 = np.float64, np.float32
TOL = {F64: dict(rtol=1e-10, atol=1e-12), F32: dict(rtol=2e-4, atol=1e-5)}


def data(n=60, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X[rng.uniform(size=X.shape) < 0.6] = 0.0  # mostly zeros, as sparse data is
    y = np.minimum((X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5), 2)
    return X, y, rng.uniform(0.2, 3.0, n)


def train(impl, X, y, dtype=F64, epochs=3, **kw):
    nn = impl.NeuralNetwork(6, [8, 5], 3, "categorical_crossentropy", activation="tanh", dtype=dtype, seed=3)
    trainer = impl.Trainer(nn, "categorical_crossentropy")
    trainer.train(X, y, None, None, epochs, kw.pop("lr", 1e-2), **{"batch_size": 8, "optimizer": "adam", **kw})
    return trainer, nn


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("batch_size", [8, 60], ids=["minibatch", "full-batch"])
def test_weighted_training_matches_the_reference(batch_size, dtype):
    X, y, sw = data()
    a, na = train(fastnn, X, y, dtype, sample_weight=sw, batch_size=batch_size, validation_split=0.2)
    b, nb = train(reference, X, y, F64, sample_weight=sw, batch_size=batch_size, validation_split=0.2)
    np.testing.assert_allclose(na.params, nb.params, **TOL[dtype])
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        np.testing.assert_allclose(a.history[key], b.history[key], **TOL[dtype])
    _, unweighted = train(fastnn, X, y, dtype, batch_size=batch_size, validation_split=0.2)
    assert not np.allclose(na.params, unweighted.params, **TOL[dtype])  # the weights did something


def test_integer_weights_are_repeated_rows():
    # Full-batch gradient descent on the weighted mean loss = on the data with each row
    # repeated w_i times.
    X, y, _ = data()
    w = np.arange(60) % 3 + 1
    _, weighted = train(fastnn, X, y, epochs=5, sample_weight=w, batch_size=None, optimizer="sgd", lr=0.5)
    _, repeated = train(fastnn, np.repeat(X, w, axis=0), np.repeat(y, w), epochs=5, batch_size=None,
                        optimizer="sgd", lr=0.5)
    np.testing.assert_allclose(weighted.params, repeated.params, rtol=1e-12, atol=1e-13)


def test_validation_split_rows_keep_their_weights():
    X, y, sw = data()
    trainer, nn = train(fastnn, X, y, epochs=1, sample_weight=sw, validation_split=0.25)
    # The held-out rows are the last quarter of each class (test_training checks that);
    # val_loss is their weighted loss after the epoch.
    rows = np.concatenate([np.flatnonzero(y == c)[-int(np.floor(0.25 * np.sum(y == c) + 0.5)):] for c in range(3)])
    want = reference.mean_loss(nn.forward(X[rows]), np.eye(3)[y[rows]], nn.loss_code, nn.clip_eps, sw[rows])
    np.testing.assert_allclose(trainer.history["val_loss"][-1], want, rtol=1e-12)


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_rows_train_exactly_as_the_dense_ones(fmt, dtype):
    # Each batch gathers the same values from the CSR parts as from the dense rows.
    X, y, sw = data()
    a, na = train(fastnn, X, y, dtype, sample_weight=sw, validation_split=0.2)
    b, nb = train(fastnn, sp.csr_matrix(X).asformat(fmt), y, dtype, sample_weight=sw, validation_split=0.2)
    assert a.train_loss == b.train_loss and a.history["val_loss"] == b.history["val_loss"]
    assert na.params.tobytes() == nb.params.tobytes()


def test_sparse_everywhere_full_batch_and_reference():
    X, y, _ = data()
    Xs = sp.csr_matrix(X)
    kw = dict(batch_size=None, optimizer="gd", lr=0.5, epochs=4)
    a, na = train(fastnn, X, y, **kw)
    b, nb = train(fastnn, Xs, y, **kw)
    c, nc = train(reference, Xs, y, **kw)
    np.testing.assert_allclose(nb.params, na.params, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(nc.params, na.params, **TOL[F64])
    # A sparse test set and sparse validation data are accepted too.
    nn = fastnn.NeuralNetwork(6, [8, 5], 3, "categorical_crossentropy", activation="tanh", seed=3)
    t = fastnn.Trainer(nn, "categorical_crossentropy").train(Xs, y, Xs[:10], y[:10], 4, 0.5,
                                                              validation_data=(Xs[10:20], y[10:20]))
    np.testing.assert_allclose(t.test_loss[-1], t.calculate_loss(np.eye(3)[y[:10]], nn.forward(X[:10])), rtol=1e-12)
    np.testing.assert_allclose(nn.params, na.params, rtol=1e-12, atol=1e-14)


def test_weighted_or_sparse_full_batches_are_not_split():
    # The two-core split takes dense, unweighted rows only: the workspace is told so.
    nn = fastnn.NeuralNetwork(64, 64, 10, "categorical_crossentropy")
    engine = nn._engine
    assert engine.workspace(nn, 1437, epoch_rows=1437, splittable=False).split_grads is None


@pytest.mark.parametrize("sw,match", [
    (np.ones(59), r"shape \(60,\)"),
    (np.ones((60, 1)), r"shape \(60,\)"),
    (np.r_[np.ones(59), 0.0], "must be > 0"),
    (np.r_[np.ones(59), -1.0], "must be > 0"),
    (np.r_[np.ones(59), np.nan], "NaN or infinity"),
])
def test_bad_sample_weights_fail_before_training(sw, match):
    X, y, _ = data()
    nn = fastnn.NeuralNetwork(6, [8, 5], 3, "categorical_crossentropy", seed=3)
    before = nn.params.copy()
    with pytest.raises(ValueError, match=match):
        fastnn.Trainer(nn, "categorical_crossentropy").train(X, y, None, None, 1, 0.1, sample_weight=sw)
    np.testing.assert_array_equal(nn.params, before)


def test_bad_sparse_input_fails_clearly():
    X, y, _ = data()
    trainer = fastnn.Trainer(fastnn.NeuralNetwork(6, [8, 5], 3, "categorical_crossentropy", seed=3),
                             "categorical_crossentropy")
    with pytest.raises(ValueError, match=r"sparse matrix of shape \(60, 5\); expected \(n_samples >= 1, 6\)"):
        trainer.train(sp.csr_matrix(X[:, :5]), y, None, None, 1, 0.1)
    bad = sp.csr_matrix(X)
    bad.data[0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        trainer.train(bad, y, None, None, 1, 0.1)
    with pytest.raises(TypeError, match="only the training and validation inputs may be sparse"):
        trainer.model.predict(sp.csr_matrix(X))
