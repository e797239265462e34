"""Full-batch epochs split between two cores (fastnn.kernels.split): same answers as the
reference and as one core, independent of the thread count, safe with threads and fork."""
import multiprocessing
import threading

import numpy as np
import pytest

import fastnn
from fastnn import reference, threads
from fastnn._engine import KernelEngine, should_split
from fastnn.kernels import losses, network, split
from test_kernels import NETS, TOL, as_float64, check, data_for, make_net

F64 = np.float64


@pytest.fixture
def two_cores():
    """fastnn may use 2 cores in this test (another test may have limited it to 1)."""
    before = fastnn.get_num_threads()
    fastnn.set_num_threads(2)
    yield
    fastnn.set_num_threads(before)


# -- the kernels -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [1, 2, 3, 8])  # 1 row: the second block is empty; 3: blocks of 2 and 1
@pytest.mark.parametrize("spec", NETS, ids=lambda s: f"{s[0]}-{s[1]}-{s[2]}-{s[3]}-{s[4]}-{s[5]}")
def test_split_gradient_equals_the_reference(spec, n, dtype, rng):
    net = make_net(spec, dtype)
    X, Y = data_for(spec, n, dtype, rng)
    X.setflags(write=False)  # read-only input is fine
    sizes = net.layer_sizes_array
    l2 = 0.3
    net64 = as_float64(net)
    As = reference.forward(net64, X.astype(F64))
    want = reference.gradients(net64, As, Y.astype(F64), l2)
    scratch = split.PARTS * split.block_scratch(n, sizes)
    acts, deltas = np.empty(scratch, dtype=dtype), np.empty(scratch, dtype=dtype)
    grads = np.full((split.PARTS, net.params.size), np.nan, dtype=dtype)
    grad = np.full(net.params.size, np.nan, dtype=dtype)
    total, correct = split.split_loss_and_gradient(
        X, Y, net.params, sizes, net.activation_codes, net.alpha, net.loss_code, net.loss_code,
        losses.ARGMAX_ACCURACY, net.clip_eps, l2, acts, deltas, grads, grad,
    )
    check(grad, want, dtype, "network")
    want_loss = reference.mean_loss(As[-1], Y.astype(F64), net.loss_code, net.clip_eps) * n
    np.testing.assert_allclose(total, want_loss, **TOL[dtype]["network"])
    assert correct == reference.count_correct(As[-1], Y, losses.ARGMAX_ACCURACY)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_split_predict_equals_the_serial_predict(n, rng):
    net = make_net(NETS[2], np.float64)
    X, _ = data_for(NETS[2], n, np.float64, rng)
    sizes = net.layer_sizes_array
    chunk = 2  # blocks of 3 rows go through in chunks of 2 and 1
    want = np.empty((n, sizes[-1]))
    network.predict(X, net.params, sizes, net.activation_codes, net.alpha, n, np.empty(n * int(sizes[1:].sum())), want)
    out = np.full((n, sizes[-1]), np.nan)
    acts = np.empty(split.PARTS * chunk * int(sizes[1:].sum()))
    split.split_predict(X, net.params, sizes, net.activation_codes, net.alpha, chunk, acts, out)
    np.testing.assert_allclose(out, want, rtol=1e-14, atol=1e-15)


# -- when fastnn splits ----------------------------------------------------------------------
def test_only_full_batch_epochs_without_dropout_and_large_enough_split(two_cores):
    sizes = np.array([64, 64, 10])
    assert should_split(sizes, 1437, 1437, dropout=False)
    assert not should_split(sizes, 32, 1437, dropout=False)  # minibatches: BLAS threads
    assert not should_split(sizes, 1437, 1437, dropout=True)
    assert not should_split(sizes, 1437, None, dropout=False)
    assert not should_split(np.array([3, 2, 1]), 100, 100, dropout=False)  # too small to pay
    fastnn.set_num_threads(1)
    assert not should_split(sizes, 1437, 1437, dropout=False)


def _tutorial_run(digits, engine_module=fastnn, epochs=15, **train_kw):
    X_train, X_test, y_train, y_test = digits
    nn = engine_module.NeuralNetwork(64, 64, 10, "categorical_crossentropy", seed=0)
    trainer = engine_module.Trainer(nn, "categorical_crossentropy")
    trainer.train(X_train, y_train, X_test, y_test, epochs, 0.1, **train_kw)
    return nn, trainer


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_split_training_follows_the_reference(digits, two_cores, optimizer):
    kw = dict(optimizer=optimizer, l2=1e-3, weight_decay=1e-3 if optimizer == "adam" else 0.0)
    nn, trainer = _tutorial_run(digits, **kw)
    assert "accuracy" in trainer.history  # the accuracy count went through the split kernel too
    ref, ref_trainer = _tutorial_run(digits, reference, **kw)
    np.testing.assert_allclose(nn.params, ref.params, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(trainer.train_loss, ref_trainer.train_loss, rtol=1e-10)
    np.testing.assert_allclose(trainer.test_loss, ref_trainer.test_loss, rtol=1e-10)
    assert trainer.history["accuracy"] == ref_trainer.history["accuracy"]


def test_split_training_restores_the_blas_thread_count(digits, two_cores):
    assert KernelEngine.workspace(fastnn.NeuralNetwork(64, 64, 10), 1437, epoch_rows=1437).split_grads is not None
    _tutorial_run(digits, epochs=2)
    assert fastnn.get_num_threads() == 2


def test_split_results_do_not_depend_on_the_number_of_numba_threads(digits, two_cores):
    import numba

    a = _tutorial_run(digits)[0].params
    numba.set_num_threads(1)  # both blocks on the calling thread, one after the other
    try:
        b = _tutorial_run(digits)[0].params
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert a.tobytes() == b.tobytes()


def test_two_threads_training_split_models_at_once(digits, two_cores):
    expected = _tutorial_run(digits)[0].params
    results, errors = [], []

    def work():
        try:
            results.append(_tutorial_run(digits)[0].params)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(2)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=120)
    assert not errors and len(results) == 2
    assert all(r.tobytes() == expected.tobytes() for r in results)
    assert fastnn.get_num_threads() == 2  # overlapping serial_blas blocks restore it once, at the end


def _train_in_child(digits, queue):
    nn, _ = _tutorial_run(digits, epochs=3)
    queue.put((threads.can_split(), nn.params))


def test_a_forked_child_trains_on_one_core(digits, two_cores):
    # GNU OpenMP aborts a forked child that opens a parallel region once its parent has:
    # the child must fall back to the serial path (and get the same answer to rounding).
    parent = _tutorial_run(digits, epochs=3)[0].params
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_train_in_child, args=(digits, queue))
    child.start()
    could_split, params = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert not could_split
    np.testing.assert_allclose(params, parent, rtol=1e-12, atol=1e-14)
