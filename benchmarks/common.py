"""Shared sizes, seeded data (built once per process) and helpers of the asv suite.

Environment variables (read once, at import):
    FASTNN_ASV_QUICK=1      the quick profile, for CI and smoke runs: widths 64 and 256,
                            one repeat in the in-process ratios, workload S only, no
                            compiling cold start, shorter accuracy runs
    FASTNN_ASV_THREADS=N    BLAS and Numba threads (default 1); recorded by bench_threads
"""
import functools
import os
import statistics
import timeit

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (SciPy's BLAS: the one np.dot inside @njit calls)
import sklearn.datasets
import sklearn.model_selection
import sklearn.preprocessing
import threadpoolctl

import fastnn
import fastnn.reference

QUICK = os.environ.get("FASTNN_ASV_QUICK", "0") not in ("", "0")
THREADS = int(os.environ.get("FASTNN_ASV_THREADS", "1"))
if THREADS < 1:
    raise ValueError(f"FASTNN_ASV_THREADS must be an int >= 1; got {THREADS}.")

# -- the grid -----------------------------------------------------------------------
IMPLEMENTATIONS = ("fastnn", "reference")
WIDTHS = (64, 256) if QUICK else (64, 256, 1024, 4096)
BATCH_SIZES = (32, 256)
DTYPES = ("float32", "float64")
GRID = (IMPLEMENTATIONS, WIDTHS, BATCH_SIZES, DTYPES)
GRID_NAMES = ["implementation", "width", "batch_size", "dtype"]

# -- the synthetic wide data set (MNIST-shaped) and the training settings --------------
WIDE_ROWS = 2048
WIDE_FEATURES = 784
CLASSES = 10
LEARNING_RATE = 1e-3  # Adam's usual step
SEED = 0

# Repeats of one epoch per implementation in the in-process speed-up ratios.
SPEEDUP_REPEATS = 1 if QUICK else 5

# Training benchmarks of the reference that would take minutes in a full run: a
# 784-4096-10 network with batches of 32 makes 64 Adam steps over 3.2M parameters in
# NumPy per epoch (several seconds each, times asv's repeats).
TOO_SLOW = {("reference", 4096, 32)}


def skip_if_too_slow(implementation, width, batch_size):
    """Raise NotImplementedError (asv: skip this combination) for the TOO_SLOW ones."""
    if (implementation, width, batch_size) in TOO_SLOW:
        raise NotImplementedError(f"{implementation} at width {width}, batch {batch_size}: too slow for the suite")


# -- threads --------------------------------------------------------------------------
def fix_threads():
    """Limit every loaded BLAS / OpenMP pool to THREADS (call in each setup).

    threadpoolctl only limits libraries already loaded: this module imports SciPy's
    BLAS (which np.dot inside @njit calls) and NumPy's (through numpy) up front.
    """
    threadpoolctl.threadpool_limits(limits=THREADS)


def blas_threads():
    """The largest thread count of any loaded BLAS library."""
    return max(info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas")


# -- data, seeded and cached per process -------------------------------------------------
def one_hot(labels, dtype):
    Y = np.zeros((labels.size, CLASSES), dtype=dtype)
    Y[np.arange(labels.size), labels] = 1
    return Y


@functools.cache
def digits(dtype="float64"):
    """The tutorial's digits split (as ``fastnn demo`` and ``fastnn bench`` make it):
    scikit-learn's digits (shipped with it), min-max scaled, train_test_split with
    test_size=0.2 and random_state=42.

    Returns (X_train, Y_train, X_test, Y_test, labels_test): X (n, 64), Y one-hot (n, 10).
    """
    X, labels = sklearn.datasets.load_digits(return_X_y=True)
    X = sklearn.preprocessing.MinMaxScaler().fit_transform(X)
    X_train, X_test, l_train, l_test = sklearn.model_selection.train_test_split(
        X, labels.astype(np.int64), test_size=0.2, random_state=42
    )
    X_train, X_test = (np.ascontiguousarray(a, dtype=dtype) for a in (X_train, X_test))
    return X_train, one_hot(l_train, dtype), X_test, one_hot(l_test, dtype), l_test


@functools.cache
def wide(dtype="float64", rows=WIDE_ROWS, features=WIDE_FEATURES):
    """Synthetic wide data: standard normal X (rows, features), one-hot Y (rows, 10) whose
    labels come from a random linear teacher, so that training has something to learn."""
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((rows, features))
    labels = np.argmax(X @ rng.standard_normal((features, CLASSES)), axis=1)
    return np.ascontiguousarray(X, dtype=dtype), one_hot(labels, dtype)


# -- models ---------------------------------------------------------------------------
def classes(implementation):
    """(NeuralNetwork, Trainer) of ``implementation``: 'fastnn' or 'reference'."""
    if implementation == "fastnn":
        return fastnn.NeuralNetwork, fastnn.Trainer
    if implementation == "reference":
        return fastnn.reference.NeuralNetwork, fastnn.reference.Trainer
    raise ValueError(f"implementation must be 'fastnn' or 'reference'; got {implementation!r}.")


def build(implementation, n_in, hidden, dtype, activation="relu"):
    """A seeded classifier n_in -> hidden (int or list) -> 10 with softmax + cross-entropy,
    He-initialised, and its Trainer."""
    NeuralNetwork, Trainer = classes(implementation)
    net = NeuralNetwork(
        n_in, hidden, CLASSES, "categorical_crossentropy",
        activation=activation, init="he", dtype=dtype, seed=SEED,
    )
    return net, Trainer(net, "categorical_crossentropy")


def train_epochs(trainer, X, Y, batch_size, epochs=1):
    """``epochs`` epochs of Adam: the public API, as a user calls it."""
    trainer.train(X, Y, None, None, epochs, LEARNING_RATE, batch_size=batch_size, optimizer="adam")


def speedup(run_reference, run_fastnn, repeats=SPEEDUP_REPEATS):
    """median(reference time) / median(fastnn time) over ``repeats`` interleaved calls,
    measured in this process with the benchmarks' wall clock."""
    timer = timeit.default_timer
    t_ref, t_fast = [], []
    for _ in range(repeats):
        start = timer()
        run_reference()
        t_ref.append(timer() - start)
        start = timer()
        run_fastnn()
        t_fast.append(timer() - start)
    return statistics.median(t_ref) / statistics.median(t_fast)


# Fills Numba's on-disk cache for both dtypes in a separate interpreter (see preload).
_FILL_NUMBA_CACHE = """
import numpy as np, fastnn
for dtype in ('float32', 'float64'):
    X = np.random.default_rng(0).random((64, 8)).astype(dtype)
    y = np.arange(64) % 10
    nn = fastnn.NeuralNetwork(8, 4, 10, 'categorical_crossentropy', activation='relu', dtype=dtype, seed=0)
    fastnn.Trainer(nn, 'categorical_crossentropy').train(X, y, X, y, 1, 1e-3, batch_size=32, optimizer='adam')
    nn.predict(X)
"""


def preload():
    """Import everything, build the data and fill Numba's cache, once, at import.

    asv.conf.json's launch_method "forkserver" imports the suite in one server process
    and forks each benchmark from it: whatever is loaded here is inherited instead of
    being loaded again (about 2 s: SciPy, scikit-learn, Numba) for each of the hundreds
    of parameter combinations. No kernel runs in this process, so that no thread pool
    (BLAS or Numba's) is started before the fork; each benchmark warms its kernels in
    setup, and thanks to the filled cache that loads rather than compiles (compiling
    would also add the compiler's memory to peakmem_fit).
    """
    import subprocess
    import sys

    fix_threads()
    for dtype in DTYPES:
        digits(dtype)
        wide(dtype)
    # Not checked: if fastnn is broken, the benchmarks themselves report it, one by one.
    subprocess.run([sys.executable, "-c", _FILL_NUMBA_CACHE], capture_output=True, check=False)


preload()
