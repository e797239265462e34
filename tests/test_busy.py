"""Wide steps on a busy machine (fastnn/_core/busy.py): the load read from /proc/stat, the
thread rule, and fits that give up a core another process holds, then give it back."""
import time

import numpy as np
import pytest

import fastnn
from fastnn._core import busy, threads

STAT = """cpu  900 10 300 5000 20 5 7 40 0 0
cpu0 100 0 50 2000 10 1 2 20 0 0
cpu1 300 10 100 1000 5 2 3 20 0 0
cpu2 500 0 150 2000 5 2 2 0 0 0
intr 12345 0 0
"""


def test_busy_seconds_counts_the_busy_ticks_of_the_cores_given(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(STAT)
    tick = busy._TICK
    assert busy.busy_seconds([0], stat) == pytest.approx((100 + 0 + 50 + 1 + 2) / tick)
    assert busy.busy_seconds([0, 1], stat) == pytest.approx((153 + 300 + 10 + 100 + 2 + 3) / tick)
    assert busy.busy_seconds([7], stat) is None  # a core it does not list
    assert busy.busy_seconds([0], tmp_path / "missing") is None


def test_held_by_others_is_the_busy_time_less_ours_over_the_wall_time():
    start, end = (10.0, 3.0, 100.0), (12.0, 6.0, 105.0)  # 2 s: the cores busy 5 s, ours 3 s
    assert busy.held_by_others(start, end) == pytest.approx(1.0)
    assert busy.held_by_others(start, (12.0, 6.0, 102.0)) == 0.0  # tick rounding: never below 0
    assert busy.held_by_others(start, start) == 0.0


@pytest.mark.parametrize("most,n_cpus,held,expected", [
    (2, 2, 0.0, 2), (2, 2, 0.4, 2), (2, 2, 0.6, 1), (2, 2, 1.0, 1), (2, 2, 2.0, 1),
    (8, 8, 1.0, 7), (8, 8, 2.6, 5), (4, 8, 1.0, 4), (8, 2, 0.2, 8), (8, 2, 1.0, 1),
])
def test_threads_leave_the_cores_others_hold(most, n_cpus, held, expected):
    assert busy.threads_for(most, n_cpus, held) == expected


@pytest.fixture
def load(monkeypatch):
    """Pretend other processes hold ``load.held`` cores (from /proc/stat's view), measure
    after every epoch, and record the BLAS thread counts fastnn sets."""
    cpus, count = busy.cores(), threads.get_num_threads()
    if cpus is None or busy.busy_seconds(cpus) is None or count < 2 or threads.fixed():
        pytest.skip("needs /proc/stat and a BLAS on two threads or more")

    class Load:
        held = 0.0
        limits = []

    def busy_seconds(cpus, path=busy.STAT):
        return time.process_time() + Load.held * time.perf_counter()

    real_limit = threads.limit_blas

    def limit_blas(n):
        Load.limits.append(n)
        real_limit(n)

    monkeypatch.setattr(busy, "busy_seconds", busy_seconds)
    monkeypatch.setattr(busy, "WINDOW", 0.0)
    monkeypatch.setattr(busy, "_held", None)
    monkeypatch.setattr(threads, "limit_blas", limit_blas)
    Load.count = count
    yield Load
    assert threads.get_num_threads() == count  # given back


def _wide_fit(epochs, dtype=np.float64):
    """A tutorial fit whose steps are wide: 64 rows x 256-256-10 is above SMALL_STEP_MACS."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((128, 256))
    y = np.eye(10)[rng.integers(0, 10, 128)]
    model = fastnn.NeuralNetwork(256, [256], 10, "categorical_crossentropy", activation="relu", dtype=dtype, seed=0)
    assert 64 * 256 * 266 >= threads.SMALL_STEP_MACS
    trainer = fastnn.Trainer(model, "categorical_crossentropy")
    trainer.train(X, y, None, None, epochs, 1e-3, batch_size=64, optimizer="adam")
    return trainer


def test_a_wide_fit_gives_up_a_core_another_process_holds_and_gets_it_back(load):
    load.held = 1.0
    trainer = _wide_fit(3)
    assert load.limits == [1, load.count]  # one thread from the second epoch on, then as before
    assert np.isfinite(trainer.train_loss).all() and len(trainer.train_loss) == 3
    load.limits.clear()
    _wide_fit(1)  # the next call starts where the last measurement left
    assert load.limits == [1, load.count]


def test_a_quiet_machine_keeps_every_thread(load):
    _wide_fit(3)
    assert load.limits == []


def test_the_choice_follows_the_load_back(load):
    load.held = 1.0
    _wide_fit(2)
    load.limits.clear()
    load.held = 0.0
    _wide_fit(3)  # the first epoch on one thread (the last measurement), then all again
    assert load.limits == [1, load.count]


def test_a_thread_count_the_user_set_is_kept(load, monkeypatch):
    monkeypatch.setattr(threads, "_fixed", True)
    load.held = 1.0
    _wide_fit(3)
    assert load.limits == []


def test_small_steps_are_left_to_their_own_rule(load):
    load.held = 1.0
    rng = np.random.default_rng(0)
    model = fastnn.NeuralNetwork(8, [4], 2, "categorical_crossentropy", seed=0)
    fastnn.Trainer(model, "categorical_crossentropy").train(rng.random((32, 8)), np.eye(2)[rng.integers(0, 2, 32)],
                                                           None, None, 3, 0.1, batch_size=8)
    assert load.limits == []


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_scikit_learn_face_adapts_too(load):
    load.held = 1.0
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((128, 256)), rng.integers(0, 3, 128)
    fastnn.MLPClassifier(hidden_layer_sizes=(256,), batch_size=64, max_iter=3, random_state=0).fit(X, y)
    assert load.limits == [1, load.count]


def test_info_says_which_rule_applies(monkeypatch):
    readable = busy.cores() is not None and busy.busy_seconds(busy.cores()) is not None
    assert ("less the cores other processes keep busy" if readable else "no /proc/stat") in busy.describe()
    monkeypatch.setattr(threads, "_fixed", True)
    assert "whatever the load" in busy.describe()
