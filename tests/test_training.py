"""Training options of issue 6: dropout, L2/AdamW, validation, early stopping, schedules,
history, progress, plot, callbacks, interruption. Tiny networks, few epochs."""
import builtins
import math

import numpy as np
import pytest

import fastnn
from fastnn import reference
from fastnn._core import dropout as _dropout
from fastnn.callbacks import Callback, EarlyStopping, LambdaCallback, ModelCheckpoint
from fastnn.kernels import dropout as kernel_dropout, optimizers
from fastnn.kernels.codes import ADAM
from fastnn.optimizers import Adam, OptimizerState

F64, F32 = np.float64, np.float32
TOL = {F64: dict(rtol=1e-10, atol=1e-12), F32: dict(rtol=2e-4, atol=1e-5)}


def data(n=60, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    return X, np.minimum(y, k - 1)


def net(impl=fastnn, hidden=(8, 5), dtype=F64, seed=3, **kw):
    return impl.NeuralNetwork(6, list(hidden), 3, "categorical_crossentropy", activation="tanh",
                              init="glorot", dtype=dtype, seed=seed, **kw)


def fit(impl=fastnn, epochs=3, hidden=(8, 5), dtype=F64, seed=3, net_kw=None, **kw):
    X, y = data()
    nn = net(impl, hidden, dtype, seed, **(net_kw or {}))
    trainer = impl.Trainer(nn, "categorical_crossentropy")
    kw = {"batch_size": 8, "optimizer": "adam", **kw}
    trainer.train(X, y, None, None, epochs, 1e-2, **kw)
    return trainer, nn


# -- dropout ------------------------------------------------------------------------------
def test_dropout_same_seed_identical_and_other_seed_differs():
    (a, na), (b, nb) = fit(dropout=0.4), fit(dropout=0.4)
    assert a.train_loss == b.train_loss and na.params.tobytes() == nb.params.tobytes()
    _, nc = fit(dropout=0.4, seed=4)
    assert nc.params.tobytes() != na.params.tobytes()
    _, nd = fit(dropout=0.0)
    assert nd.params.tobytes() != na.params.tobytes()  # dropout did something


@pytest.mark.parametrize("dtype", [F64, F32])
def test_dropout_rate_zero_is_bitwise_no_dropout(dtype):
    a, na = fit(dtype=dtype)
    b, nb = fit(dtype=dtype, dropout=0.0)
    c, nc = fit(dtype=dtype, dropout=[0.0, 0.0], net_kw={"dropout": 0.5})  # train's overrides the model's
    assert a.train_loss == b.train_loss == c.train_loss
    assert na.params.tobytes() == nb.params.tobytes() == nc.params.tobytes()


def test_model_dropout_is_used_and_forward_never_drops():
    _, na = fit(net_kw={"dropout": 0.3})
    _, nb = fit(dropout=0.3)
    assert na.params.tobytes() == nb.params.tobytes()
    X, _ = data()
    np.testing.assert_array_equal(na.forward(X), na.forward(X))  # no randomness at inference
    np.testing.assert_allclose(na.forward(X), reference.forward(na, X)[-1], rtol=1e-12)  # the plain forward pass


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_kernel_mask_statistics_match_the_rate(rate):
    thr = _dropout.thresholds([rate])[0]
    keep = np.empty(200_000)
    kernel_dropout.dropout_keep(np.uint64(_dropout.new_key(net())), np.uint64(12345), thr, keep)
    # 200k Bernoulli(1 - p) draws: the mean is within 5 standard deviations.
    assert abs(keep.mean() - (1 - rate)) < 5 * math.sqrt(rate * (1 - rate) / keep.size)
    # Neighbours are independent: P(both kept) = (1 - p)^2.
    both = np.mean(keep[1:] * keep[:-1])
    assert abs(both - (1 - rate) ** 2) < 5 * math.sqrt((1 - rate) ** 2 / keep.size)
    # The NumPy stream of the reference is the kernel's, bit for bit.
    np.testing.assert_array_equal(keep, _dropout.keep_mask(_dropout.new_key(net()), 12345, thr, keep.shape))


def test_dropout_forward_kernel_scales_kept_units_and_zeroes_the_others():
    rng = np.random.default_rng(0)
    A = rng.uniform(0.1, 0.9, (50, 40))  # sigmoid outputs
    A0, G = A.copy(), np.empty_like(A)
    thr = _dropout.thresholds([0.25])[0]
    kernel_dropout.dropout_forward(A, G, fastnn.kernels.codes.SIGMOID, 0.0, thr, np.uint64(9), np.uint64(100))
    keep = _dropout.keep_mask(9, 100, thr, A.shape)
    scale = 2**32 / (2**32 - thr)  # = 1 / (1 - p) for the effective rate thr / 2^32
    np.testing.assert_allclose(A, np.where(keep, scale * A0, 0), rtol=1e-15)
    np.testing.assert_allclose(G, np.where(keep, scale * A0 * (1 - A0), 0), rtol=1e-15)


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("rates", [0.3, [0.5, 0.0], [0.0, 0.2]], ids=str)
@pytest.mark.parametrize("activation", ["tanh", "relu", "elu", "sigmoid"])
def test_kernel_and_reference_agree_with_dropout(activation, rates, dtype):
    # Same seed -> same key; same counter -> same masks: the two engines follow one trajectory.
    X, y = data()
    runs = []
    for impl in (fastnn, reference):
        nn = impl.NeuralNetwork(6, [8, 5], 3, "categorical_crossentropy", activation=activation, init="glorot",
                                dtype=dtype if impl is fastnn else F64, seed=3)
        nn.params[...] = nn.params.astype(dtype)  # the float32 start, for the float64 reference too
        tr = impl.Trainer(nn, "categorical_crossentropy")
        tr.train(X.astype(dtype), y, None, None, 3, 1e-2, batch_size=7, optimizer="adam", dropout=rates,
                 validation_split=0.2)
        runs.append((tr, nn))
    (a, na), (b, nb) = runs
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(a.history[key], b.history[key], **TOL[dtype])
    np.testing.assert_allclose(na.params, nb.params, **TOL[dtype])
    assert na._dropout_stream == nb._dropout_stream  # the same number of draws


def test_dropout_rates_are_validated():
    X, y = data()
    trainer = fastnn.Trainer(net(), "categorical_crossentropy")
    for bad, err in [(1.0, ValueError), (-0.1, ValueError), ([0.1], ValueError), ("0.1", TypeError)]:
        with pytest.raises(err, match="dropout"):
            trainer.train(X, y, None, None, 1, 0.1, dropout=bad)
    with pytest.raises(ValueError, match="hidden layers"):
        fastnn.NeuralNetwork(6, [], 3, "categorical_crossentropy", dropout=0.5)
    assert trainer.train_loss == []


# -- L2 and AdamW -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [F64, F32])
def test_adamw_one_update_by_hand(dtype):
    # Two layers 2-3-1: W blocks decay, biases do not. One AdamW step at t = 1:
    # m = (1 - b1) g, v = (1 - b2) g^2, lr_t = lr sqrt(1 - b2) / (1 - b1),
    # theta <- theta - lr_t m / (sqrt(v) + eps) - lr wd theta   (wd on weights only).
    sizes = np.array([2, 3, 1], dtype=np.int64)
    p = 2 * 3 + 3 + 3 * 1 + 1
    rng = np.random.default_rng(1)
    theta, g = rng.standard_normal(p).astype(dtype), rng.standard_normal(p).astype(dtype)
    m, v = np.zeros(p, dtype), np.zeros(p, dtype)
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-8, 0.1
    t64, g64 = theta.astype(F64), g.astype(F64)
    is_weight = np.r_[np.ones(6), np.zeros(3), np.ones(3), np.zeros(1)].astype(bool)
    lr_t = lr * np.sqrt(1 - b2) / (1 - b1)
    m_ = (1 - b1) * g64
    v_ = (1 - b2) * g64**2
    expected = t64 - lr_t * m_ / (np.sqrt(v_) + eps) - np.where(is_weight, lr * wd * t64, 0)
    optimizers.update_decoupled(ADAM, theta, g, m, v, lr, 0.0, b1, b2, eps, 1, wd, sizes)
    np.testing.assert_allclose(theta, expected, **TOL[dtype])
    np.testing.assert_allclose(m, m_, **TOL[dtype])
    # The reference's update + decay gives the same step.
    nn = reference.NeuralNetwork(2, 3, 1, "mse", seed=0)
    nn.params[...] = t64
    state = OptimizerState(Adam(), p, F64)
    decay = [lr * wd * W for W in nn.weights]
    reference.update(Adam(), nn.params, g64, state, lr)
    for W, d in zip(nn.weights, decay):
        W -= d
    np.testing.assert_allclose(nn.params, expected, rtol=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_l2_and_weight_decay_kernel_matches_reference(optimizer):
    runs = [fit(impl, optimizer=optimizer, l2=0.05, weight_decay=0.02) for impl in (fastnn, reference)]
    (a, na), (b, nb) = runs
    np.testing.assert_allclose(a.train_loss, b.train_loss, **TOL[F64])
    np.testing.assert_allclose(na.params, nb.params, **TOL[F64])
    _, plain = fit(optimizer=optimizer)
    assert np.sum(na.weights[0] ** 2) < np.sum(plain.weights[0] ** 2)  # decay shrinks the weights


def test_sgd_weight_decay_equals_l2_for_plain_gradient_descent():
    # For plain SGD, theta -= lr (g + wd W) either way: decoupled == coupled (no penalty in the loss).
    (_, a), (_, b) = fit(optimizer="sgd", weight_decay=0.1), fit(optimizer="sgd", l2=0.1)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12)


def test_adamw_name_means_adam_with_decay():
    (_, a), (_, b) = fit(optimizer="adamw"), fit(optimizer="adam", weight_decay=0.01)
    assert a.params.tobytes() == b.params.tobytes()


# -- validation ---------------------------------------------------------------------------
def test_validation_split_holds_out_the_last_rows_of_each_class():
    X, y = data(n=40)
    nn = net()
    trainer = fastnn.Trainer(nn, "categorical_crossentropy")
    rows, Xv, Yv, val = trainer._validation(X, np.eye(3)[y], None, 0.25)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        k = int(np.floor(0.25 * members.size + 0.5))
        assert set(val) & set(members) == set(members[members.size - k:])
    assert np.intersect1d(rows, val).size == 0 and rows.size + val.size == 40


def test_validation_metrics_equal_an_evaluation_of_the_final_weights():
    X, y = data()
    Xv, yv = data(n=25, seed=5)
    trainer, nn = fit(epochs=2, validation_data=(Xv, yv))
    out = nn.forward(Xv)
    np.testing.assert_allclose(trainer.history["val_loss"][-1],
                               trainer.calculate_loss(np.eye(3)[yv], out), rtol=1e-12)
    assert trainer.history["val_accuracy"][-1] == np.mean(np.argmax(out, axis=1) == yv)
    assert len(trainer.history) == 2 and trainer.history["loss"] == trainer.train_loss


# -- early stopping -----------------------------------------------------------------------
def test_early_stopping_on_an_overfitting_task_restores_the_best_weights():
    # 30 noisy training rows, a wide network, no regularisation: validation loss turns up.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((230, 10))
    y = (X[:, 0] + rng.standard_normal(230) > 0).astype(int)
    nn = fastnn.NeuralNetwork(10, [128], 2, "categorical_crossentropy", activation="relu", init="he", seed=0)
    trainer = fastnn.Trainer(nn, "categorical_crossentropy")
    stop = EarlyStopping(monitor="val_loss", patience=5)
    trainer.train(X[:30], y[:30], None, None, 300, 1e-2, batch_size=10, optimizer="adam",
                  validation_data=(X[30:], y[30:]), callbacks=[stop])
    h = trainer.history
    assert len(h) < 300 and h.stopped_epoch == len(h) == stop.stopped_epoch
    best = int(np.argmin(h["val_loss"]))
    assert stop.best_epoch == best + 1 and stop.restored
    assert len(h) == stop.best_epoch + 5
    # The restored weights give exactly the recorded best validation loss.
    val_loss, _ = nn._engine.evaluate(nn, *as_model_input(nn, X[30:], y[30:]), np.arange(200), nn.loss_code, 1,
                                      nn._engine.workspace(nn, 10))
    assert val_loss == h["val_loss"][best] == stop.best
    assert f"stopped after epoch {len(h)}" in h.stop_reason and f"at epoch {best + 1}" in h.stop_reason


def as_model_input(nn, X, y):
    return X.astype(nn.dtype), np.eye(nn.output_size, dtype=nn.dtype)[y]


def test_early_stopping_needs_the_metric_it_monitors():
    X, y = data()
    with pytest.raises(ValueError, match="val_loss.*validation_data"):
        fastnn.Trainer(net(), "categorical_crossentropy").train(X, y, None, None, 2, 0.1, callbacks=[EarlyStopping()])


def test_model_checkpoint_saves_the_best_weights(tmp_path):
    path = tmp_path / "best.npz"
    best_params = {}
    keep = LambdaCallback(on_epoch_end=lambda e, logs: best_params.update({logs["val_loss"]: nn.params.copy()}))
    X, y = data()
    nn = net()
    trainer = fastnn.Trainer(nn, "categorical_crossentropy")
    ckpt = ModelCheckpoint(path)
    trainer.train(X, y, None, None, 8, 0.05, batch_size=8, optimizer="adam", validation_split=0.3,
                  callbacks=[ckpt, keep])
    loaded = fastnn.load(path)
    best = min(trainer.history["val_loss"])
    np.testing.assert_array_equal(loaded.params, best_params[best])
    assert loaded.metadata["val_loss"] == best and loaded.metadata["epoch"] == ckpt.best_epoch


# -- schedules ----------------------------------------------------------------------------
@pytest.mark.parametrize("schedule,formula", [
    ("constant", lambda e: 0.1),
    (fastnn.InverseScaling(power_t=0.25), lambda e: 0.1 / (e + 1) ** 0.25),
    (fastnn.StepDecay(step_size=3, gamma=0.5), lambda e: 0.1 * 0.5 ** (e // 3)),
    (fastnn.ExponentialDecay(gamma=0.9), lambda e: 0.1 * 0.9**e),
], ids=["constant", "invscaling", "step", "exponential"])
def test_schedule_rates_match_their_formulas(schedule, formula):
    trainer, _ = fit(epochs=4, lr_schedule=schedule, optimizer="sgd")
    trainer.train(*data(), None, None, 3, 0.1, batch_size=8, optimizer="sgd", lr_schedule=schedule)
    # The first call's 4 epochs used learning_rate 1e-2, the next 3 continue the epoch count at 0.1.
    assert trainer.history["lr"][4:] == pytest.approx([formula(e) for e in range(4, 7)], rel=1e-15)
    assert trainer.history["lr"][:4] == pytest.approx([formula(e) / 10 for e in range(4)], rel=1e-15)


def test_schedule_rate_reaches_the_kernel():
    # An epoch at rate r under a schedule equals an epoch at constant rate r.
    a, na = fit(epochs=2, lr_schedule=fastnn.ExponentialDecay(gamma=0.5), optimizer="sgd")
    X, y = data()
    nb = net()
    tb = fastnn.Trainer(nb, "categorical_crossentropy")
    for lr in (1e-2, 5e-3):
        tb.train(X, y, None, None, 1, lr, batch_size=8, optimizer="sgd")
    assert na.params.tobytes() == nb.params.tobytes()


def test_reduce_on_plateau_replays_the_history():
    sched = fastnn.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_delta=0.0)
    h = fastnn.History()
    for v in [1.0, 0.9, 0.95, 0.92, 0.8, 0.85, 0.85, 0.85]:
        h.append({"val_loss": v})
    # wait: 0 0 1 2->reduce(0.5), 0, 1, 2->reduce(0.25), 1
    assert [sched.rate(e, 1.0, h) for e in range(9)] == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]
    trainer, _ = fit(epochs=6, lr_schedule=sched, validation_split=0.2)
    assert trainer.history["lr"] == [sched.rate(e, 1e-2, trainer.history) for e in range(6)]


# -- history, progress, plot --------------------------------------------------------------
def test_history_keys_and_tutorial_lists():
    X, y = data()
    trainer = fastnn.Trainer(net(), "categorical_crossentropy")
    result = trainer.train(X, y, X[:10], y[:10], 3, 0.1, validation_split=0.2)
    h = trainer.history
    assert result is trainer and result.history["loss"] == h.loss == trainer.train_loss
    assert set(h.keys()) == {"loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "lr", "time"}
    assert h["test_loss"] == trainer.test_loss and h.epoch == [1, 2, 3]
    assert all(t > 0 for t in h["time"]) and h["lr"] == [0.1] * 3
    trainer.train(X, y, None, None, 1, 0.1)  # no validation now: NaN in that epoch
    assert len(h) == 4 and math.isnan(h["val_loss"][3]) and len(trainer.test_loss) == 3


def test_verbose_output(capsys):
    X, y = data()
    fastnn.Trainer(net(), "categorical_crossentropy").train(X, y, None, None, 2, 0.1, validation_split=0.2)
    assert capsys.readouterr() == ("", "")  # verbose=0: silent, as the tutorial
    fastnn.Trainer(net(), "categorical_crossentropy").train(X, y, None, None, 2, 0.1, validation_split=0.2,
                                                            verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("epoch 1/2 - loss: ") and " - val_accuracy: " in out[1]
    fastnn.Trainer(net(), "categorical_crossentropy").train(X, y, None, None, 3, 0.1, validation_split=0.2,
                                                            verbose=1)
    err = capsys.readouterr().err
    assert "3/3" in err and "val_loss=" in err and "epoch" in err


def test_plot_history(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    trainer, _ = fit(epochs=3, validation_split=0.2)
    fig = trainer.history.plot(tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 0 and len(fig.axes) == 2
    assert fastnn.plot_history(trainer.history.as_dict()) is not None


def test_plot_without_matplotlib_names_the_extra(monkeypatch):
    real = builtins.__import__

    def no_matplotlib(name, *args, **kw):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=r"fastnn\[plot\]"):
        fastnn.History().plot()


# -- callbacks and interruption -----------------------------------------------------------
def test_callback_protocol_and_stop():
    seen = []

    class Stop(Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append((epoch, sorted(logs)))
            return epoch == 2

    trainer, _ = fit(epochs=5, callbacks=[Stop()])
    assert [e for e, _ in seen] == [1, 2] and len(trainer.history) == 2 and trainer.history.stopped_epoch == 2
    assert seen[0][1] == ["accuracy", "loss", "lr", "time"]


@pytest.mark.parametrize("impl", [fastnn, reference], ids=["fastnn", "reference"])
@pytest.mark.parametrize("k", [1, 3])
def test_keyboard_interrupt_from_a_callback_keeps_epoch_k(impl, k):
    X, y = data()
    params = {}

    def interrupt(epoch, logs):
        params[epoch] = nn.params.copy()
        if epoch == k:
            raise KeyboardInterrupt

    nn = net(impl)
    trainer = impl.Trainer(nn, "categorical_crossentropy")
    with pytest.raises(KeyboardInterrupt):
        trainer.train(X, y, X, y, 6, 0.05, batch_size=8, optimizer="adam", dropout=0.2, validation_split=0.2,
                      callbacks=[LambdaCallback(on_epoch_end=interrupt)])
    assert len(trainer.history) == len(trainer.train_loss) == len(trainer.test_loss) == k
    assert trainer.history.interrupted
    np.testing.assert_array_equal(nn.params, params[k])
    # Nothing is lost: continuing gives the weights of an uninterrupted run, bit for bit.
    trainer.train(X, y, X, y, 6 - k, 0.05, batch_size=8, optimizer="adam", dropout=0.2, validation_split=0.2)
    full = net(impl)
    impl.Trainer(full, "categorical_crossentropy").train(X, y, X, y, 6, 0.05, batch_size=8, optimizer="adam",
                                                         dropout=0.2, validation_split=0.2)
    np.testing.assert_array_equal(nn.params, full.params)


# Ctrl-C during an epoch (one press keeps it, two stop it between batches): tests/test_guard.py.


# -- what a train call keeps for the next one (its scratch, its one-hot labels) -----------
def test_one_epoch_calls_keep_their_scratch_and_equal_one_call():
    X, y = data()
    one, many = fastnn.Trainer(net(), "categorical_crossentropy"), fastnn.Trainer(net(), "categorical_crossentropy")
    one.train(X, y, X[:9], y[:9], 4, 1e-2, batch_size=8, optimizer="adam")
    works = []
    for _ in range(4):
        many.train(X, y, X[:9], y[:9], 1, 1e-2, batch_size=8, optimizer="adam")
        works.append(many._kept_calls._work[1])
    assert all(w is works[0] for w in works)
    np.testing.assert_array_equal(many.model.params, one.model.params)
    assert many.train_loss == one.train_loss and many.test_loss == one.test_loss
    many.train(X, y, None, None, 1, 1e-2, batch_size=16, optimizer="adam")  # other batches: other scratch
    assert many._kept_calls._work[1] is not works[0]


def test_labels_changed_in_place_are_encoded_again():
    X, y = data()
    y_next = y[::-1].copy()
    kept, fresh = fastnn.Trainer(net(), "categorical_crossentropy"), fastnn.Trainer(net(), "categorical_crossentropy")
    kept.train(X, y, None, None, 1, 1e-2, batch_size=8, optimizer="adam")
    fresh.train(X, y.copy(), None, None, 1, 1e-2, batch_size=8, optimizer="adam")
    y[:] = y_next  # the same array, other labels
    kept.train(X, y, None, None, 1, 1e-2, batch_size=8, optimizer="adam")
    fresh.train(X, y_next, None, None, 1, 1e-2, batch_size=8, optimizer="adam")
    np.testing.assert_array_equal(kept.model.params, fresh.model.params)
    assert kept.train_loss == fresh.train_loss
    y[0] = 3  # no longer a class of the 3 outputs: checked again, and rejected
    with pytest.raises(ValueError, match=r"y_train as class labels must be integers in \[0, 3\)"):
        kept.train(X, y, None, None, 1, 1e-2, batch_size=8, optimizer="adam")


def test_large_scratch_and_labels_are_not_kept(monkeypatch):
    from fastnn._core import kept

    trainer, _ = fit(epochs=1)
    assert trainer._kept_calls._work is not None and trainer._kept_calls._labels
    monkeypatch.setattr(kept, "KEEP_BYTES", 0)
    trainer, _ = fit(epochs=1)
    assert trainer._kept_calls._work is None and not trainer._kept_calls._labels


# -- no allocation per minibatch with every option on -------------------------------------
def test_fit_epoch_allocates_nothing_per_minibatch():
    import subprocess
    import sys
    import textwrap

    probe = textwrap.dedent("""
        import numpy as np
        from numba.core.runtime import rtsys
        import fastnn
        from fastnn.optimizers import Adam, OptimizerState

        def allocations(n_rows):
            rng = np.random.default_rng(0)
            X = rng.standard_normal((n_rows, 12)); Y = np.eye(3)[rng.integers(0, 3, n_rows)]
            nn = fastnn.NeuralNetwork(12, [16, 8], 3, "categorical_crossentropy", activation="relu", seed=0)
            engine, opt = nn._engine, Adam()
            state = OptimizerState(opt, nn.params.size, nn.dtype)
            work = engine.workspace(nn, 8, True)
            idx = rng.permutation(n_rows).astype(np.int64)
            kw = dict(l2=0.01, weight_decay=0.01, acc_kind=1, thresholds=np.array([1 << 30, 1 << 31]), stream=(5, 0))
            engine.fit_epoch(nn, X, Y, idx, 8, opt, state, 1e-3, nn.loss_code, work, **kw)
            engine.evaluate(nn, X, Y, idx, nn.loss_code, 1, work)
            before = rtsys.get_allocation_stats().alloc
            engine.fit_epoch(nn, X, Y, idx, 8, opt, state, 1e-3, nn.loss_code, work, **kw)
            engine.evaluate(nn, X, Y, idx, nn.loss_code, 1, work)
            return rtsys.get_allocation_stats().alloc - before

        print(allocations(16), allocations(800))
    """)
    out = subprocess.run([sys.executable, "-c", probe], env={**__import__("os").environ, "NUMBA_NRT_STATS": "1"},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == out[1], out
