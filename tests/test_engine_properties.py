"""Properties of the engine that issue 3 promises (properties, not timings):
no allocation per minibatch, bitwise determinism, and safe concurrent training."""
import gc
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastnn
from fastnn._core import buffers

ALLOCATION_PROBE = textwrap.dedent(
    """
    import numpy as np
    from numba.core.runtime import rtsys
    import fastnn
    from fastnn.optimizers import Adam, OptimizerState

    def allocations(n_rows):
        rng = np.random.default_rng(0)
        X = rng.standard_normal((n_rows, 12))
        Y = np.eye(3)[rng.integers(0, 3, n_rows)]
        nn = fastnn.NeuralNetwork(12, [16, 8], 3, "categorical_crossentropy", activation="relu", seed=0)
        engine, opt = nn._engine, Adam()
        state = OptimizerState(opt, nn.params.size, nn.dtype)
        work = engine.workspace(nn, 8)
        idx = rng.permutation(n_rows).astype(np.int64)
        engine.train_epoch(nn, X, Y, idx, 8, opt, state, 1e-3, nn.loss_code, work)  # compile
        before = rtsys.get_allocation_stats().alloc
        engine.train_epoch(nn, X, Y, idx, 8, opt, state, 1e-3, nn.loss_code, work)
        return rtsys.get_allocation_stats().alloc - before

    from numba.core import types
    from fastnn.kernels import epoch

    def arrays(t):  # the arrays in an argument type, through (named) tuples
        if isinstance(t, types.BaseTuple):
            return sum(arrays(u) for u in t.types)
        return int(isinstance(t, types.Array))

    few, many = allocations(16), allocations(800)  # 2 minibatches vs 100
    (signature,) = [sig.args for sig in epoch.fit_epoch.nopython_signatures]
    print(few, many, sum(arrays(t) for t in signature))
    """
)


def test_an_epoch_allocates_nothing_per_minibatch():
    # NRT statistics must be switched on before Numba starts: a fresh interpreter.
    out = subprocess.run(
        [sys.executable, "-c", ALLOCATION_PROBE],
        env={**__import__("os").environ, "NUMBA_NRT_STATS": "1"},
        capture_output=True, text=True, check=True,
    ).stdout.split()
    few, many, arrays = int(out[0]), int(out[1]), int(out[2])
    # Numba wraps each of fit_epoch's array arguments once per call (a MemInfo per array,
    # no data; 19 of them, most inside its bundles); anything inside the minibatch loop
    # would scale with 50x.
    assert few == many, f"NRT allocations per epoch: {few} with 2 minibatches, {many} with 100"
    assert many <= arrays


def _train(seed, dtype="float32", epochs=3):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 20))
    y = rng.integers(0, 4, 300)
    nn = fastnn.NeuralNetwork(20, [32, 16], 4, "categorical_crossentropy", activation="tanh", dtype=dtype, seed=seed)
    fastnn.Trainer(nn, "categorical_crossentropy").train(X, y, X, y, epochs, 1e-2, batch_size=32, optimizer="adam")
    return nn.params.copy()


def test_same_seed_gives_bitwise_identical_weights():
    a, b = _train(seed=7), _train(seed=7)
    assert a.tobytes() == b.tobytes()
    assert _train(seed=8).tobytes() != a.tobytes()


def _slot(a):
    """The placement slot of a buffer of fastnn._core.buffers (asserting it is one)."""
    offset = a.ctypes.data % buffers.PAGE
    assert offset % buffers.CACHE_LINE == 0 and offset % (buffers.PAGE // buffers.SLOTS) == 0, offset
    return offset // (buffers.PAGE // buffers.SLOTS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [0, 1, 7, 4810, 300_000])
def test_buffers_start_on_a_cache_line_at_their_slots_offset(size, dtype):
    for slot in range(buffers.SLOTS):
        a = buffers.zeros(size, dtype, slot)
        assert a.shape == (size,) and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
        assert not a.any() and (size == 0 or _slot(a) == slot)  # an empty array has no memory to place
    values = np.arange(size, dtype=np.float64)
    copied = buffers.copy(values, dtype, buffers.GRADIENT)
    del values
    gc.collect()  # the copy keeps its block alive through its base
    assert (size == 0 or _slot(copied) == buffers.GRADIENT) and np.array_equal(copied, np.arange(size, dtype=dtype))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 2 epochs on purpose
def test_the_updates_four_arrays_take_four_slots_in_both_faces():
    X, y = np.random.default_rng(0).standard_normal((64, 5)), np.arange(64) % 3
    nn = fastnn.NeuralNetwork(5, [8], 3, "categorical_crossentropy", seed=0)
    trainer = fastnn.Trainer(nn, "categorical_crossentropy").train(X, y, None, None, 1, 1e-2, batch_size=16,
                                                                  optimizer="adam")
    work = nn._engine.workspace(nn, 16)
    state = trainer.optimizer_state
    assert [_slot(a) for a in (nn.params, work.grad, state.m, state.v)] == [0, 1, 2, 3]
    clf = fastnn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X, y)
    assert _slot(clf._packed) == buffers.PARAMS


def test_where_buffers_start_changes_no_result(monkeypatch):
    # Every buffer 16 bytes off a cache line and at one offset in a page, as NumPy places
    # large arrays: the bits must be those of the placed run.
    expected = _train(seed=5, dtype="float64")

    monkeypatch.setattr(buffers, "empty", lambda size, dtype, slot: buffers.placed(size, dtype, 16))
    assert _train(seed=5, dtype="float64").tobytes() == expected.tobytes()


def test_two_models_trained_from_two_threads_match_sequential_runs():
    expected = {seed: _train(seed, "float64") for seed in (1, 2)}
    results, errors = {}, []

    def work(seed):
        try:
            results[seed] = _train(seed, "float64")
        except Exception as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and all(not t.is_alive() for t in threads)
    for seed in (1, 2):
        assert results[seed].tobytes() == expected[seed].tobytes()


DETERMINISM_PROBE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import fastnn
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 4))
    y = rng.integers(0, 3, 200)
    nn = fastnn.NeuralNetwork(4, [6, 5], 3, "categorical_crossentropy", activation="tanh", seed=3)
    fastnn.Trainer(nn, "categorical_crossentropy").train(X, y, None, None, 5, 1e-2, batch_size=16, optimizer="adam")
    sys.stdout.write(nn.params.tobytes().hex())
    """
)


def test_compiled_and_cache_loaded_kernels_give_the_same_bits(tmp_path):
    # The first process compiles into an empty cache, the second loads from it. With
    # fastmath 'contract' these differed in the last bit (JIT and cached object code
    # fuse different multiply-adds): a regression test for that.
    env = {**__import__("os").environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    run = lambda: subprocess.run(  # noqa: E731
        [sys.executable, "-c", DETERMINISM_PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert run() == run()


def test_set_num_threads_limits_blas_and_rejects_bad_values():
    import pytest

    before = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        assert fastnn.get_num_threads() == 1
        assert _train(seed=4).tobytes() == _train(seed=4).tobytes()  # deterministic at a fixed count
        with pytest.raises(ValueError, match="n must be an int >= 1"):
            fastnn.set_num_threads(0)
        with pytest.raises(TypeError, match="n must be an int"):
            fastnn.set_num_threads(1.5)
    finally:
        fastnn.set_num_threads(before)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 2 epochs on purpose
def test_small_steps_train_on_one_blas_thread_and_restore_the_count(monkeypatch):
    import types

    from fastnn._core import engine, sk_engine as _sk_engine, threads

    def work(macs):  # what engine.training reads of a Workspace that is not split
        return types.SimpleNamespace(split_grads=None, step_macs=macs, grad=np.empty(0))

    before = fastnn.get_num_threads()
    with engine.training(work(threads.SMALL_STEP_MACS - 1)):
        assert fastnn.get_num_threads() == 1
    assert fastnn.get_num_threads() == before
    with engine.training(work(threads.SMALL_STEP_MACS)):
        assert fastnn.get_num_threads() == before

    # Both faces: a digits-sized fit runs its epochs on one BLAS thread.
    seen = []
    real = _sk_engine.train_epoch

    def spy(*args, **kwargs):
        seen.append(fastnn.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(_sk_engine, "train_epoch", spy)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((100, 8)), rng.integers(0, 3, 100)
    fastnn.MLPClassifier(hidden_layer_sizes=(16,), max_iter=2, random_state=0).fit(X, y)
    assert seen == [1, 1]
    assert fastnn.get_num_threads() == before

    nn = fastnn.NeuralNetwork(8, 16, 3, "categorical_crossentropy", seed=0)
    threads_in_epochs = []
    fastnn.Trainer(nn, "categorical_crossentropy").train(
        X, y, None, None, 2, 0.1, batch_size=10,
        callbacks=[type("Probe", (), {"on_epoch_end": lambda self, e, logs: threads_in_epochs.append(
            fastnn.get_num_threads())})()],
    )
    assert threads_in_epochs == [1, 1]
    assert fastnn.get_num_threads() == before


# A fresh process (SciPy's BLAS not loaded yet, as in a script that imports only fastnn):
# every BLAS library's thread count, SciPy's included (Numba's np.dot calls it), as seen
# by threadpoolctl itself rather than through fastnn's own controller.
FRESH_PROCESS_THREADS = """
import json, numpy as np, threadpoolctl
import fastnn

def counts():
    return sorted((("scipy" if "scipy" in lib["filepath"] else "numpy"), lib["num_threads"])
                  for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas")

rng = np.random.default_rng(0)
X, y = rng.standard_normal((100, 8)), rng.integers(0, 3, 100)
nn = fastnn.NeuralNetwork(8, 16, 3, "categorical_crossentropy", seed=0)
during = []
probe = type("Probe", (), {"on_epoch_end": lambda self, e, logs: during.append(counts())})()
fastnn.Trainer(nn, "categorical_crossentropy").train(X, y, None, None, 2, 0.1, batch_size=10, callbacks=[probe])
print(json.dumps({"during": during, "after": counts()}))
"""


# A script of NumPy and the tutorial face alone: training loads SciPy's BLAS library (so that
# its threads are limited) but none of SciPy's modules; scipy.linalg, imported afterwards,
# runs on that same, limited library.
NUMPY_ONLY = """
import json, os, sys, numpy as np, threadpoolctl
import fastnn

def scipy_blas():
    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
            if lib["user_api"] == "blas" and os.path.basename(os.path.dirname(lib["filepath"])) != "numpy.libs"]

rng = np.random.default_rng(0)
nn = fastnn.NeuralNetwork(8, 16, 3, "categorical_crossentropy", seed=0)
fastnn.Trainer(nn, "categorical_crossentropy").train(rng.standard_normal((100, 8)), rng.integers(0, 3, 100),
                                                     None, None, 1, 0.1)
imported = sorted(m for m in ("scipy.sparse", "scipy.linalg") if m in sys.modules)
before = scipy_blas()
import scipy.linalg
print(json.dumps({"imported": imported, "before": before, "after": scipy_blas()}))
"""


def test_a_numpy_only_script_loads_scipys_blas_but_not_its_modules():
    import json
    import os

    import scipy

    from fastnn.kernels.blas import bundled_openblas

    if not bundled_openblas(scipy):
        pytest.skip("this SciPy does not bundle OpenBLAS: scipy.linalg.cython_blas loads its BLAS")
    env = {**os.environ, "FASTNN_NUM_THREADS": "1"}
    seen = json.loads(subprocess.run([sys.executable, "-c", NUMPY_ONLY], env=env, capture_output=True, text=True,
                                     check=True).stdout)
    assert seen["imported"] == [], seen  # 0.18 s of such a script's first process
    assert seen["before"] == seen["after"] == [1], seen  # one SciPy BLAS, limited, and scipy.linalg's own


# Where NumPy and SciPy bundle OpenBLAS, fastnn sets their thread counts through their own
# functions: threadpoolctl's controller, which resolves the path of every library loaded in
# the process (10-20 ms of a first fit with scikit-learn imported), is never made.
NO_LIBRARY_SCAN = """
import json, numpy as np, threadpoolctl, sklearn.datasets
made = []
threadpoolctl.ThreadpoolController.__init__ = lambda self: made.append(1) or (_ for _ in ()).throw(
    RuntimeError("threadpoolctl's scan"))
import fastnn
from fastnn._core import threads
rng = np.random.default_rng(0)
X, y = rng.standard_normal((300, 8)), rng.integers(0, 3, 300)
fastnn.MLPClassifier(hidden_layer_sizes=(16,), max_iter=2, random_state=0).fit(X, y)  # splits its batches: serial BLAS
fastnn.set_num_threads(1)
limited = [pool.get_num_threads() for pool in threads._blas().lib_controllers]
fastnn.set_num_threads(2)
print(json.dumps({"made": len(made), "kind": type(threads._blas()).__name__, "limited": limited,
                  "files": sorted(pool.filepath.split("/")[-2] for pool in threads._blas().lib_controllers),
                  "restored": fastnn.get_num_threads()}))
"""


def test_blas_thread_counts_are_set_without_scanning_the_process_libraries():
    import json

    import scipy

    from fastnn.kernels.blas import bundled_openblas

    if not (bundled_openblas(np) and bundled_openblas(scipy)):
        pytest.skip("NumPy or SciPy bundles no OpenBLAS here: threadpoolctl's view is used")
    seen = json.loads(subprocess.run([sys.executable, "-c", NO_LIBRARY_SCAN], capture_output=True, text=True,
                                     check=True).stdout)
    assert seen == {"made": 0, "kind": "OpenBLASPools", "limited": [1, 1], "files": ["numpy.libs", "scipy.libs"],
                    "restored": 2}, seen


def test_without_bundled_openblas_threadpoolctl_controls_blas(monkeypatch):
    from threadpoolctl import ThreadpoolController

    from fastnn._core import threads

    monkeypatch.setattr(threads, "_controller", None)
    monkeypatch.setattr(threads.OpenBLASPools, "bundled", classmethod(lambda cls, scipy_openblas: None))
    controller = threads._blas()
    assert isinstance(controller, ThreadpoolController)
    assert {lib.internal_api for lib in controller.lib_controllers} <= {"openblas", "mkl", "blis", "flexiblas"}
    with threads.serial_blas():
        assert all(lib.get_num_threads() == 1 for lib in controller.lib_controllers)


# Importing fastnn (and its scikit-learn face) runs no full collection of the garbage
# collector, and leaves the collector as it found it.
IMPORT_COLLECTIONS = """
import gc, json, sys
if sys.argv[1] == "off":
    gc.disable()
full = []
gc.callbacks.append(lambda phase, info: full.append(1) if phase == "start" and info["generation"] == 2 else None)
import fastnn
from fastnn import MLPClassifier
young = len(gc.get_objects(generation=0)) + len(gc.get_objects(generation=1))
print(json.dumps({"full": len(full), "enabled": gc.isenabled(), "young": young}))
"""


@pytest.mark.parametrize("collector", ["on", "off"])
def test_import_runs_no_full_collection_and_restores_the_collector(collector):
    import json

    seen = json.loads(subprocess.run([sys.executable, "-c", IMPORT_COLLECTIONS, collector], capture_output=True,
                                     text=True, check=True).stdout)
    assert seen["full"] == 0 and seen["enabled"] == (collector == "on")  # 16-46 ms of the import, when numba's ran one
    # The import's objects wait in the oldest generation: a young collection would traverse
    # them all (~150k, 20 ms), as it did before collector.paused moved them there.
    assert seen["young"] < 10_000, seen


@pytest.mark.parametrize("setting", [None, "1"])
def test_thread_settings_reach_scipys_blas_from_the_first_call(setting):
    import json
    import os

    env = {k: v for k, v in os.environ.items() if k != "FASTNN_NUM_THREADS"}
    if setting:
        env["FASTNN_NUM_THREADS"] = setting
    out = subprocess.run([sys.executable, "-c", FRESH_PROCESS_THREADS], env=env, capture_output=True, text=True,
                         check=True).stdout
    seen = json.loads(out)
    for counts in seen["during"]:  # small steps: one BLAS thread in every library, SciPy's too
        assert ["scipy", 1] in counts and all(n == 1 for _, n in counts), seen
    if setting:  # FASTNN_NUM_THREADS holds after training too
        assert all(n == 1 for _, n in seen["after"]), seen
