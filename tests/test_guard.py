"""The training call's contract without a per-epoch snapshot (kernels/guard.py,
fastnn/_core/interrupt.py): divergence stops before the first non-finite update, Ctrl-C
keeps the running epoch (once) or stops it between batches (twice), and a fit holds no
copy of the parameters or moments."""
import os
import signal
import threading
import time
import tracemalloc

import numpy as np
import pytest

import fastnn
from fastnn import DivergenceError, reference
from fastnn._core import interrupt
from fastnn._core.tutorial_engine import KernelEngine
from fastnn.kernels import codes, guard, network
from fastnn.optimizers import OptimizerState, resolve

IMPLS = [fastnn, reference]
DTYPES = [np.float64, np.float32]


@pytest.fixture
def two_cores():
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(2)
    yield
    fastnn.set_num_threads(before)


def regression(n=20, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, X @ rng.standard_normal((d, 1))


def replay(make, X, y, lr, epochs, steps, batch_size=None, optimizer="gd"):
    """A fresh model trained ``epochs`` whole epochs, then the first ``steps`` steps of the
    next one (the engine's epoch over that epoch's first batches, in its shuffled order).
    Returns (model, optimizer state)."""
    nn = make()
    trainer = type_of(nn).Trainer(nn, nn.loss_func)
    if epochs:
        trainer.train(X, y, None, None, epochs, lr, batch_size=batch_size, optimizer=optimizer)
    opt = resolve(optimizer)
    state = trainer.optimizer_state or OptimizerState(opt, nn.params.size, nn.dtype)
    if steps:
        n = X.shape[0]
        b = n if batch_size is None else min(batch_size, n)
        idx = nn._rng.permutation(n).astype(np.int64) if b < n else np.arange(n)
        X_, Y_ = X.astype(nn.dtype), y.astype(nn.dtype)
        work = nn._engine.workspace(nn, b, epoch_rows=n)
        with nn._engine.training(work, nn):
            nn._engine.fit_epoch(nn, X_, Y_, idx[: steps * b], b, opt, state, lr, nn.loss_code, work)
    return nn, state


def type_of(nn):
    return reference if isinstance(nn, reference.NeuralNetwork) else fastnn


# -- divergence ------------------------------------------------------------------------------
CASES = {
    # mse regression, identity output: the loss overflows first
    "momentum-minibatch": dict(lr=1e6, batch_size=7, optimizer="momentum"),
    "sgd-minibatch": dict(lr=1e6, batch_size=6, optimizer="sgd"),
    "gd-full-batch": dict(lr=1e6, batch_size=None, optimizer="gd"),
    # Adam's step is about lr whatever the gradient: the update overflows the weights first
    "adam-update": dict(lr="huge", batch_size=5, optimizer="adam"),
    # hidden layers wider than the batch: the guard bounds their gradients from A and D
    # (kernels/guard.py, gradient_bound) instead of reading them
    "sgd-minibatch-wide": dict(lr=1e6, batch_size=3, optimizer="sgd", hidden=[48, 48]),
    "adam-update-wide": dict(lr="huge", batch_size=2, optimizer="adam", hidden=[48, 48]),
}


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("impl", IMPLS, ids=["fastnn", "reference"])
@pytest.mark.parametrize("case", list(CASES))
def test_divergence_stops_before_the_first_non_finite_update(case, impl, dtype):
    kw = dict(CASES[case])
    lr = kw.pop("lr")
    hidden = kw.pop("hidden", 4)
    if lr == "huge":
        lr = float(np.finfo(dtype).max) / 4
    X, y = regression()

    def make():
        return impl.NeuralNetwork(3, hidden, 1, "mse", output_activation="identity", seed=0, dtype=dtype)

    nn = make()
    trainer = impl.Trainer(nn, "mse")
    with pytest.raises(DivergenceError) as info:
        trainer.train(X, y, X, y, 300, lr, **kw)
    epoch, step = info.value.epoch, info.value.step
    assert f"epoch {epoch}, step {step} " in str(info.value)
    assert len(trainer.train_loss) == len(trainer.test_loss) == len(trainer.history) == epoch - 1
    assert np.isfinite(nn.params).all() and np.isfinite(trainer.optimizer_state.m).all()
    assert np.isfinite(trainer.optimizer_state.v).all() and np.isfinite(trainer.train_loss).all()
    steps_per_epoch = 1 if kw["batch_size"] is None else -(-X.shape[0] // kw["batch_size"])
    assert trainer.optimizer_state.t == (epoch - 1) * steps_per_epoch + step - 1

    # A fresh run stopped after the last finite step: the same state, bit for bit.
    again, state = replay(make, X, y, lr, epoch - 1, step - 1, **kw)
    np.testing.assert_array_equal(nn.params, again.params)
    np.testing.assert_array_equal(trainer.optimizer_state.m, state.m)
    np.testing.assert_array_equal(trainer.optimizer_state.v, state.v)
    assert trainer.optimizer_state.t == state.t


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_divergence_of_a_split_full_batch(dtype, two_cores):
    X, y = regression(n=600, d=64)

    def make():
        return fastnn.NeuralNetwork(64, 64, 1, "mse", output_activation="identity", seed=0, dtype=dtype)

    assert KernelEngine.workspace(make(), 600, epoch_rows=600).split_grads is not None
    nn = make()
    trainer = fastnn.Trainer(nn, "mse")
    with pytest.raises(DivergenceError) as info:
        trainer.train(X, y, X, y, 300, 1e3)
    assert info.value.step == 1 and info.value.epoch > 1
    again, state = replay(make, X, y, 1e3, info.value.epoch - 1, 0)
    np.testing.assert_array_equal(nn.params, again.params)
    assert state.t == trainer.optimizer_state.t == info.value.epoch - 1


# -- the bound of max |g| ----------------------------------------------------------------------
def backward_pass(sizes, n, dtype, l2, rng, scale):
    """A ReLU network's gradient for a batch of n rows with heavy-tailed inputs, weights and
    output delta (``scale`` their size): (X, acts, deltas, grad, net)."""
    net = fastnn.NeuralNetwork(sizes[0], list(sizes[1:-1]), sizes[-1], "mse", activation="relu", seed=0, dtype=dtype)
    net.params[:] = rng.standard_cauchy(net.params.size) * scale
    X = (rng.standard_cauchy((n, sizes[0])) * scale).astype(dtype)
    width = n * sum(sizes[1:])
    acts, deltas = np.empty(width, dtype=dtype), np.empty(width, dtype=dtype)
    network.forward_layers(X, net.params, net.layer_sizes_array, net.activation_codes, net.alpha, acts)
    deltas[width - n * sizes[-1]:] = rng.standard_cauchy(n * sizes[-1]) * scale
    grad = np.full(net.params.size, np.nan, dtype=dtype)
    network.backward_layers(X, net.params, net.layer_sizes_array, net.activation_codes, net.alpha, acts, deltas, l2,
                            grad)
    return X, acts, deltas, grad, net


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("n", [1, 4, 16, 64])  # 64: no layer is bounded, every block is read
def test_gradient_bound_is_an_upper_bound_of_max_abs_g(n, l2, dtype):
    # 5-40-30-3: layer 1 bounded for n < 5, layer 2 for n < 18, layer 3 for n < 3
    rng = np.random.default_rng(n)
    chunk = np.empty(3, dtype=dtype)
    checked = 0
    for scale in (1e-3, 1.0, 1e3):
        X, acts, deltas, grad, net = backward_pass((5, 40, 30, 3), n, dtype, l2, rng, scale)
        if not np.isfinite(grad).all():
            continue  # float32 at the largest scale can overflow: nothing to bound
        checked += 1
        theta_bound = float(np.abs(net.params).max())
        s = guard.gradient_bound(X, acts, deltas, net.layer_sizes_array, l2, theta_bound, grad, chunk)
        exact = float(np.abs(grad).max())
        assert exact <= s < np.inf
        if n == 64:
            assert s == exact
    assert checked >= 2


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("where", ["X", "acts", "deltas"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_gradient_bound_is_infinite_for_a_non_finite_operand(bad, where, dtype):
    # One non-finite value in a bounded layer's A or D (n = 2: layers 1 and 2 bounded),
    # even where the gradient it would make is not computed again.
    rng = np.random.default_rng(0)
    X, acts, deltas, grad, net = backward_pass((5, 40, 30, 3), 2, dtype, 0.0, rng, 1.0)
    {"X": X.reshape(-1), "acts": acts, "deltas": deltas}[where][7] = bad
    s = guard.gradient_bound(X, acts, deltas, net.layer_sizes_array, 0.0, 1.0, grad, np.empty(3, dtype=dtype))
    assert s == np.inf


# -- stop flags --------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["one-core", "split", "reference"])
def test_stop_flags_stop_before_the_next_batch(path, two_cores):
    impl = reference if path == "reference" else fastnn
    n = 600 if path == "split" else 40
    X, Y = regression(n=n, d=64)
    nn = impl.NeuralNetwork(64, 64, 1, "mse", output_activation="identity", seed=0)
    batch = n if path == "split" else 8
    work = nn._engine.workspace(nn, batch, epoch_rows=n)
    assert (path == "split") == (work is not None and work.split_grads is not None)
    state = OptimizerState(resolve("adam"), nn.params.size, nn.dtype)
    start = nn.params.copy()
    with nn._engine.training(work, nn):
        result = nn._engine.fit_epoch(nn, X, Y, np.arange(n), batch, resolve("adam"), state, 1e-3, nn.loss_code,
                                      work, stop=np.array([interrupt.STOP_AT, interrupt.STOP_AT]))
    assert result[-1] == codes.STOPPED and state.t == 0
    np.testing.assert_array_equal(nn.params, start)


# -- Ctrl-C ------------------------------------------------------------------------------------
def test_counting_interrupts_counts_presses_and_puts_everything_back():
    handler, fd = signal.getsignal(signal.SIGINT), signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    with interrupt.counting_interrupts() as presses:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        deadline = time.monotonic() + 10
        while (presses.flags[0] < 2 or presses.count < 2) and time.monotonic() < deadline:
            time.sleep(1e-3)
        assert presses.flags[0] == 2 and presses.count == 2
    assert signal.getsignal(signal.SIGINT) is handler
    assert signal.set_wakeup_fd(fd) == fd


def classification(n, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, np.eye(k)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 1)]


@pytest.mark.parametrize("impl", IMPLS, ids=["fastnn", "reference"])
def test_ctrl_c_keeps_the_running_epoch_and_training_resumes_exactly(impl):
    X, Y = classification(60)
    kw = dict(batch_size=8, optimizer="adam", dropout=0.2)

    def make():
        return impl.NeuralNetwork(6, [8, 5], 3, "categorical_crossentropy", activation="tanh", seed=3)

    def press(epoch, logs):
        if epoch == 2:
            os.kill(os.getpid(), signal.SIGINT)  # counted, not raised: epoch 2 is kept

    nn = make()
    trainer = impl.Trainer(nn, "categorical_crossentropy")
    with pytest.raises(KeyboardInterrupt):
        trainer.train(X, Y, X, Y, 5, 0.05, callbacks=[fastnn.LambdaCallback(on_epoch_end=press)], **kw)
    assert len(trainer.history) == len(trainer.train_loss) == len(trainer.test_loss) == 2
    assert trainer.history.interrupted and trainer.history.interrupted_steps is None
    trainer.train(X, Y, X, Y, 3, 0.05, **kw)
    full = make()
    full_trainer = impl.Trainer(full, "categorical_crossentropy").train(X, Y, X, Y, 5, 0.05, **kw)
    np.testing.assert_array_equal(nn.params, full.params)
    assert trainer.train_loss == full_trainer.train_loss


N_LONG = 200_000


def long_fit(dtype):
    """A model and data whose single epoch takes a good second (one row per step)."""
    X, Y = classification(N_LONG, d=32)

    def make():
        return fastnn.NeuralNetwork(32, 256, 3, "categorical_crossentropy", activation="relu", seed=1, dtype=dtype)

    return make, X, Y


def press_later(times, delay=0.15):
    """Send SIGINT ``times`` times to this process, from a thread, ``delay`` s from now."""
    def run():
        time.sleep(delay)
        for _ in range(times):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_one_press_during_an_epoch_lets_it_finish(dtype):
    make, X, Y = long_fit(dtype)
    nn = make()
    trainer = fastnn.Trainer(nn, "categorical_crossentropy")
    thread = press_later(1)
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        trainer.train(X, Y, None, None, 3, 1e-3, batch_size=1, optimizer="adam")
    thread.join()
    assert time.perf_counter() - start > 0.15, "the press should land inside the first epoch"
    assert len(trainer.history) == 1 and trainer.history.interrupted
    one, _ = replay(make, X, Y, 1e-3, 1, 0, batch_size=1, optimizer="adam")
    np.testing.assert_array_equal(nn.params, one.params)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_two_presses_stop_the_epoch_between_batches(dtype):
    make, X, Y = long_fit(dtype)
    nn = make()
    trainer = fastnn.Trainer(nn, "categorical_crossentropy")
    thread = press_later(2)
    with pytest.raises(KeyboardInterrupt, match=rf"epoch 1 stopped after \d+ of its {N_LONG} steps"):
        trainer.train(X, Y, None, None, 3, 1e-3, batch_size=1, optimizer="adam")
    thread.join()
    steps = trainer.history.interrupted_steps
    assert 0 < steps < X.shape[0] and len(trainer.history) == 0 and trainer.train_loss == []
    assert trainer.history.interrupted and trainer.optimizer_state.t == steps
    # The state is that of a run of exactly those steps.
    again, state = replay(make, X, Y, 1e-3, 0, steps, batch_size=1, optimizer="adam")
    np.testing.assert_array_equal(nn.params, again.params)
    np.testing.assert_array_equal(trainer.optimizer_state.m, state.m)
    np.testing.assert_array_equal(trainer.optimizer_state.v, state.v)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# -- memory ------------------------------------------------------------------------------------
def test_a_fit_keeps_no_copy_of_the_parameters_or_moments():
    # 200-1000-1000-10 float64: 9.6 MB of parameters. A fit allocates its gradient (1x) and
    # small buffers; a snapshot of the parameters and Adam's moments per epoch was 3x more.
    X, Y = classification(64, d=200, k=10)
    nn = fastnn.NeuralNetwork(200, [1000, 1000], 10, "categorical_crossentropy", activation="relu", seed=0)
    trainer = fastnn.Trainer(nn, "categorical_crossentropy")
    trainer.train(X, Y, None, None, 1, 1e-3, batch_size=32, optimizer="adam")  # the moments exist from here
    tracemalloc.start()
    try:
        trainer.train(X, Y, None, None, 3, 1e-3, batch_size=32, optimizer="adam")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * nn.params.nbytes, (peak, nn.params.nbytes)
