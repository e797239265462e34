"""Concurrency: models trained at once from threads and from processes give the sequential
results bitwise; predict on a model being trained in another thread never crashes and
does not disturb the training; concurrent saves to one path always leave a valid file."""
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np

import fastnn

CONFIGS = [  # (seed, dtype, hidden, optimizer, batch_size)
    (0, "float64", [32, 16], "adam", 16),
    (1, "float32", [24], "momentum", 8),
    (2, "float64", [16, 16, 8], "nesterov", 32),
    (3, "float32", [32], "adam", None),
]


def dataset():
    rng = np.random.RandomState(42)
    X = rng.randn(300, 10)
    return X, (X[:, :3].sum(axis=1) > 0).astype(int) + (X[:, 3] > 1)


def train_one(config, epochs=8):
    """Train one seeded model from scratch; module level so that process workers can run it."""
    seed, dtype, hidden, optimizer, batch = config
    X, y = dataset()
    model = fastnn.NeuralNetwork(10, hidden, 3, "categorical_crossentropy", activation="relu", init="he",
                                 dtype=dtype, seed=seed)
    trainer = fastnn.Trainer(model, "categorical_crossentropy")
    trainer.train(X, y, X[:50], y[:50], epochs, 0.01, batch_size=batch, optimizer=optimizer)
    return model.params, trainer.train_loss, trainer.test_loss


def assert_same(results, expected):
    for (p, tr, te), (p0, tr0, te0) in zip(results, expected):
        assert p.dtype == p0.dtype and np.array_equal(p, p0)  # bitwise
        assert tr == tr0 and te == te0


def test_threads_match_sequential():
    expected = [train_one(c) for c in CONFIGS]
    with ThreadPoolExecutor(max_workers=len(CONFIGS)) as pool:
        results = list(pool.map(train_one, CONFIGS))
    assert_same(results, expected)
    with ThreadPoolExecutor(max_workers=3) as pool:  # the same model config many times at once
        repeats = list(pool.map(train_one, [CONFIGS[0]] * 6))
    assert_same(repeats, [expected[0]] * 6)


def test_processes_match_sequential():
    expected = [train_one(c) for c in CONFIGS]
    # spawn: a fresh interpreter per worker (fork after BLAS/Numba threads exist is fragile);
    # workers load the compiled kernels from Numba's cache.
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(train_one, CONFIGS))
    assert_same(results, expected)


def test_predict_while_training_in_another_thread():
    X, y = dataset()
    config = (5, "float64", [64, 32], "adam", 8)
    expected_params = train_one(config, epochs=60)[0]

    model = fastnn.NeuralNetwork(10, [64, 32], 3, "categorical_crossentropy", activation="relu", init="he", seed=5)
    trainer = fastnn.Trainer(model, "categorical_crossentropy")
    done = threading.Event()
    outcomes = {"predictions": 0, "errors": []}

    def train():
        try:
            trainer.train(X, y, X[:50], y[:50], 60, 0.01, batch_size=8, optimizer="adam")
        finally:
            done.set()

    def predict():
        while not done.is_set():
            try:
                P = model.forward(X)
                labels = model.predict(X[:7])
            except Exception as err:  # noqa: BLE001 - any exception is the failure we look for
                outcomes["errors"].append(err)
                return
            assert P.shape == (300, 3) and P.dtype == np.float64 and np.isfinite(P).all()
            assert np.allclose(P.sum(axis=1), 1.0) and labels.shape == (7,) and set(labels) <= {0, 1, 2}
            outcomes["predictions"] += 1

    threads = [threading.Thread(target=train)] + [threading.Thread(target=predict) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not outcomes["errors"], outcomes["errors"]
    assert outcomes["predictions"] > 0
    assert np.array_equal(model.params, expected_params)  # predicting never disturbed the training


def test_concurrent_saves_to_one_path_leave_a_valid_file(tmp_path):
    models = [fastnn.NeuralNetwork(6, [32, 32], 2, seed=s) for s in range(4)]
    path = tmp_path / "model.npz"

    def save_many(model):
        for _ in range(15):
            model.save(path)
            loaded = fastnn.load(path)  # whoever wrote last, the file is complete and valid
            assert any(np.array_equal(loaded.params, m.params) for m in models)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(save_many, models))
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary files left
