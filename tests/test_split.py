"""Epochs split between two cores (fastnn.kernels.split, fastnn._core.split): full batches
and mid-sized minibatches; same answers as the reference and as one core, the same bits
from any thread (whichever computes the second block), safe with threads and fork."""
import inspect
import multiprocessing
import threading
import time

import numpy as np
import pytest
from numba import types

import fastnn
from fastnn import reference
from fastnn.optimizers import SGD, OptimizerState
from fastnn._core.engine import should_split
from fastnn._core.tutorial_engine import KernelEngine
from fastnn.kernels import losses, split
from fastnn.kernels.bundles import Scratch
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
    no_scratch = Scratch(*[acts[:0]] * len(Scratch._fields))  # read by L-BFGS's blocks only
    blocks = split.Blocks(X, Y, acts, deltas, grads, no_scratch)
    spec = net._spec
    objective = spec.objective(net.loss_code, acc_kind=losses.ARGMAX_ACCURACY)
    total, correct = 0.0, 0.0
    for q in range(split.PARTS):
        block_sum, block_correct = split.block_loss_and_gradient(
            X, Y, np.empty(0, dtype=dtype), spec.net(net.params), objective, l2, q, blocks,
        )
        total, correct = total + block_sum, correct + block_correct
    grad = np.full(net.params.size, np.nan, dtype=dtype)
    split.add_blocks(grads, grad)
    check(grad, want, dtype, "network")
    assert np.array_equal(grad, sum(grads[1:], grads[0].copy()))  # in block order, whichever thread finished first
    want_loss = reference.mean_loss(As[-1], Y.astype(F64), net.loss_code, net.clip_eps) * n
    np.testing.assert_allclose(total, want_loss, **TOL[dtype]["network"])
    assert correct == reference.count_correct(As[-1], Y, losses.ARGMAX_ACCURACY)


# -- when fastnn splits ----------------------------------------------------------------------
def test_full_batches_and_mid_sized_minibatches_without_dropout_split(two_cores):
    sizes = np.array([64, 64, 10])
    assert should_split(sizes, 1437, 1437, dropout=False)
    assert not should_split(sizes, 32, 1437, dropout=False)  # 0.15M multiply-adds a step: the hand-off costs more
    assert should_split(np.array([64, 100, 10]), 200, 1797, dropout=False)  # 1.5M a step (scikit-learn's batch)
    assert not should_split(np.array([64, 512, 10]), 200, 1797, dropout=False)  # 7.6M a step: BLAS's own threads
    assert should_split(np.array([64, 512, 10]), 1797, 1797, dropout=False)  # a full batch of any size
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
    # The test set's predictions, split between the threads too, are the network's output.
    np.testing.assert_allclose(nn.a2, nn.forward(digits[1]), rtol=1e-14, atol=1e-15)


def test_split_training_restores_the_blas_thread_count(digits, two_cores):
    assert KernelEngine.workspace(fastnn.NeuralNetwork(64, 64, 10), 1437, epoch_rows=1437).split_grads is not None
    _tutorial_run(digits, epochs=2)
    assert fastnn.get_num_threads() == 2


def test_split_and_one_core_agree_to_rounding(digits, two_cores):
    split_params = _tutorial_run(digits)[0].params
    fastnn.set_num_threads(1)  # no split: the whole batch in one pass
    one_core = _tutorial_run(digits)[0].params
    np.testing.assert_allclose(split_params, one_core, rtol=1e-12, atol=1e-14)


def test_the_helper_thread_lives_only_as_long_as_the_training_call(digits, two_cores):
    # The Ctrl-C watcher (fastnn/_core/interrupt.py) starts with a process's first training call
    # and lives on, by design: counted as present whichever test ran first.
    before = {t.name for t in threading.enumerate()} | {"fastnn-interrupt"}
    _tutorial_run(digits, epochs=2)
    assert not any(t.name == "fastnn-split" for t in threading.enumerate())
    # A lone epoch outside Trainer.train (the engine called directly) stops it too.
    nn = fastnn.NeuralNetwork(64, 64, 10, "categorical_crossentropy", seed=0)
    X, Y = np.ascontiguousarray(digits[0]), np.ascontiguousarray(digits[2])
    work = KernelEngine.workspace(nn, X.shape[0], epoch_rows=X.shape[0])
    state = OptimizerState(SGD(), nn.params.size, nn.dtype)
    KernelEngine.fit_epoch(nn, X, Y, np.arange(X.shape[0]), X.shape[0], SGD(), state, 0.1, nn.loss_code, work)
    assert {t.name for t in threading.enumerate()} == before


def test_one_helper_serves_every_epoch_of_a_training_call(digits, two_cores, monkeypatch):
    from fastnn._core import split as helper_module

    started = []
    init = helper_module.BlockHelper.__init__
    monkeypatch.setattr(helper_module.BlockHelper, "__init__",
                        lambda self, *args, **kw: (started.append(1), init(self, *args, **kw))[1])
    _tutorial_run(digits, epochs=5)
    assert started == [1]  # its arrays are recognised epoch after epoch: not restarted


def test_a_helper_serves_the_same_arrays_and_equal_values_only():
    from collections import namedtuple

    from fastnn._core.split import _same

    Pair = namedtuple("Pair", "a b")
    a, b = np.zeros(3), np.zeros(3)
    key = (Pair(a, 1), (b, 0.5), "relu")
    assert _same(key, (Pair(a, 1), (b, 0.5), "relu"))  # new tuples, the same arrays, equal values
    assert not _same(key, (Pair(a.copy(), 1), (b, 0.5), "relu"))  # an equal array, but another one
    assert not _same(key, (Pair(a, 1.0), (b, 0.5), "relu"))  # 1.0 compiles another kernel than 1
    assert not _same(key, (Pair(a, 1), (b, 0.25), "relu"))
    assert not _same(key, (Pair(a, 1), (b, 0.5)))
    assert not _same(key, (Pair(a, 1), b, "relu"))
    assert not _same((a,), (0.0,)) and not _same((0.0,), (a,))


def test_a_split_epoch_on_gathered_rows_matches_the_reference(digits, two_cores):
    # validation_split keeps the first rows of each class for training: not every row
    # in order, so the split epoch gathers them (into the same views every epoch).
    kw = dict(validation_split=0.1)
    nn, trainer = _tutorial_run(digits, **kw)
    ref, ref_trainer = _tutorial_run(digits, reference, **kw)
    np.testing.assert_allclose(nn.params, ref.params, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(trainer.history["val_loss"], ref_trainer.history["val_loss"], rtol=1e-10)


def test_epochs_in_order_and_on_gathered_rows_run_one_compiled_variant(digits, two_cores):
    _tutorial_run(digits)  # every row in order: the batches are X itself
    _tutorial_run(digits, validation_split=0.1)  # gathered
    # The rows in order are an empty index (engine.IN_ORDER), of the same type as a gather's.
    at = list(inspect.signature(split.split_run.py_func).parameters).index("idx")
    rows = {sig[at] for sig in split.split_run.signatures}
    assert rows and all(isinstance(r, types.Array) and r.ndim == 1 and r.dtype == types.int64 for r in rows)


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
    queue.put(nn.params)


def test_a_forked_child_trains_split_with_its_own_helper(digits, two_cores):
    # A fork copies only the forking thread: the child must start its own helper
    # (waiting for the parent's would hang).
    parent = _tutorial_run(digits, epochs=3)[0].params
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_train_in_child, args=(digits, queue))
    child.start()
    params = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert params.tobytes() == parent.tobytes()


def test_an_interrupted_start_still_stops_the_helper(monkeypatch):
    # Ctrl-C while the helper compiles (a cold start takes seconds): the caller gets the
    # KeyboardInterrupt and the helper, once up, is stopped rather than left waiting.
    from fastnn._core import split as _split

    def fake_split_run(role, ctrl, results, *args):  # the helper's side of the protocol, slowly
        time.sleep(0.2)
        ctrl[0] = split.READY
        while ctrl[0] != split.STOP:
            time.sleep(1e-3)

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(split, "split_run", fake_split_run)
    monkeypatch.setattr(_split.BlockHelper, "_wait_until_ready", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _split.BlockHelper((), ())
    deadline = time.monotonic() + 10
    while any(t.name.startswith("fastnn-split") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.name.startswith("fastnn-split") for t in threading.enumerate())


# -- the second block, on whichever thread gets to it ------------------------------------------
class _AbsentHelper:
    """A helper thread that never takes a block (as one whose core another process holds):
    the caller must compute every second block itself."""

    def __init__(self, args, rest, key=None):
        self.args, self.rest, self.key = args, rest, args if key is None else key
        self.ctrl = np.zeros(split.CTRL_SIZE, dtype=np.int64)
        self.ctrl[split.STATE] = split.READY
        self.results = np.zeros(3)

    def serves(self, key):
        from fastnn._core.split import _same

        return _same(key, self.key)

    def join_in(self, joins):
        pass

    def stop(self):
        pass


def _lbfgs_run(digits):
    X_train, _, y_train, _ = digits
    labels = np.argmax(y_train, axis=1)
    clf = fastnn.MLPClassifier(hidden_layer_sizes=(64,), solver="lbfgs", max_iter=5, random_state=0)
    return np.concatenate([c.ravel() for c in clf.fit(X_train, labels).coefs_])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_caller_takes_the_second_block_when_the_helper_does_not_the_same_bits(digits, two_cores, monkeypatch):
    from fastnn._core import split as _split

    minibatch = dict(batch_size=256, optimizer="sgd")  # 1.2M multiply-adds a step: split
    assert KernelEngine.workspace(fastnn.NeuralNetwork(64, 64, 10), 256, epoch_rows=1437).split_grads is not None
    with_helper = [_tutorial_run(digits, epochs=3)[0], _tutorial_run(digits, epochs=3, **minibatch)[0]]
    lbfgs = _lbfgs_run(digits)
    monkeypatch.setattr(_split, "BlockHelper", _AbsentHelper)
    alone = [_tutorial_run(digits, epochs=3)[0], _tutorial_run(digits, epochs=3, **minibatch)[0]]
    for a, b in zip(with_helper, alone):
        assert a.params.tobytes() == b.params.tobytes()
        assert a.a2.tobytes() == b.a2.tobytes()  # the test set's predictions (PREDICT) too
    assert _lbfgs_run(digits).tobytes() == lbfgs.tobytes()  # L-BFGS's loss and gradient (LOSS_GRAD)


def test_split_minibatches_and_one_core_agree_to_rounding(digits, two_cores):
    kw = dict(epochs=5, batch_size=256, optimizer="sgd")
    split_params = _tutorial_run(digits, **kw)[0].params
    fastnn.set_num_threads(1)  # no split: each batch in one pass
    one_core = _tutorial_run(digits, **kw)[0].params
    np.testing.assert_allclose(split_params, one_core, rtol=1e-12, atol=1e-14)


# -- the pace: whether the helper joins (fastnn._core.split.Pace) ----------------------------------
def _paced(pace, seconds_with, seconds_without, calls):
    """The choices of ``pace`` over ``calls`` calls taking the given times each way."""
    joined = []
    for _ in range(calls):
        joins = pace.helper_joins()
        joined.append(joins)
        pace.record(joins, seconds_with if joins else seconds_without)
    return joined


def test_the_pace_keeps_a_helper_that_pays_and_probes_ever_more_rarely():
    from fastnn._core.split import Pace

    joined = _paced(Pace(), 1.0, 1.5, 250)
    probes = [i for i, j in enumerate(joined) if not j]
    assert probes == [16, 48, 112, 176, 240]  # after 16 calls, then 32 and 64 (the most) later


def test_the_pace_leaves_out_a_helper_that_does_not_pay_and_takes_it_back_when_it_does():
    from fastnn._core.split import Pace

    pace = Pace()
    joined = _paced(pace, 2.0, 1.5, 100)  # the helper slows the steps down (a shared core)
    assert joined[:17] == [True] * 16 + [False] and not pace.helper
    assert [i for i, j in enumerate(joined) if j and i > 16] == [32, 64]  # alone but for tries 16, then 32 later
    joined = _paced(pace, 1.0, 1.5, 30)  # the helper pays again: back at its next try
    assert pace.helper and joined[-1]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_paused_helper_takes_no_block_and_a_paced_run_gives_the_same_bits(digits, two_cores, monkeypatch):
    from fastnn._core import split as _split

    minibatch = dict(batch_size=256, optimizer="sgd")  # 1.2M multiply-adds a step: split
    with_helper = [_tutorial_run(digits, epochs=5)[0], _tutorial_run(digits, epochs=5, **minibatch)[0]]
    stopped = []
    monkeypatch.setattr(_split.BlockHelper, "stop", lambda self, stop=_split.BlockHelper.stop: (
        stopped.append(int(self.ctrl[split.DONE])), stop(self)))

    class Paused(_split.Pace):  # from the start, the test set's predictions too
        def __init__(self):
            super().__init__()
            self.helper = False

        def helper_joins(self):
            return False

    class ByTurns(_split.Pace):
        def helper_joins(self):
            return self.calls % 2 == 0

    monkeypatch.setattr(_split, "Pace", Paused)
    paused = [_tutorial_run(digits, epochs=5)[0], _tutorial_run(digits, epochs=5, **minibatch)[0]]
    assert stopped and set(stopped) == {0}  # no helper finished a job
    monkeypatch.setattr(_split, "Pace", ByTurns)
    by_turns = [_tutorial_run(digits, epochs=5)[0], _tutorial_run(digits, epochs=5, **minibatch)[0]]
    for a, b, c in zip(with_helper, paused, by_turns):
        assert a.params.tobytes() == b.params.tobytes() == c.params.tobytes()
        assert a.a2.tobytes() == b.a2.tobytes() == c.a2.tobytes()
