"""Cold start: a fresh interpreter imports fastnn and trains.

numba_cache='cache': the kernels load from Numba's on-disk cache, as the install left
it (setup.py compiles them while installing): what the user's first process pays, and
every later one. setup makes sure the cache is filled.
numba_cache='compile': an empty NUMBA_CACHE_DIR, so everything compiles (the fallback:
another numba, Python or CPU than the install's).
The only timings here that include compilation. ``FirstFit`` is the scikit-learn face's
first call: import and a default ``MLPClassifier(random_state=0).fit`` on digits-sized data.
"""
from .common import DTYPES, QUICK, build, digits, fix_threads, train_epochs

# Timed in the child: the import, the data (digits-sized, from NumPy only) and one epoch
# of Adam in minibatches of 32.
STMT = """
import numpy as np
from fastnn import NeuralNetwork, Trainer
rng = np.random.default_rng(0)
X = rng.random((1437, 64)).astype({dtype!r})
y = rng.integers(0, 10, 1437)
nn = NeuralNetwork(64, 64, 10, 'categorical_crossentropy', activation='relu', init='he', dtype={dtype!r}, seed=0)
Trainer(nn, 'categorical_crossentropy').train(X, y, None, None, 1, 1e-3, batch_size=32, optimizer='adam')
"""

# Untimed, before the statement: a private, empty Numba cache, removed at exit.
EMPTY_CACHE = """
import atexit, os, shutil, tempfile
cache_dir = tempfile.mkdtemp(prefix='fastnn-asv-numba-')
atexit.register(shutil.rmtree, cache_dir, True)
os.environ['NUMBA_CACHE_DIR'] = cache_dir
"""


class ColdStart:
    # The quick profile skips 'compile' (tens of seconds on a busy 2-core machine).
    params = (DTYPES, ["cache"] if QUICK else ["cache", "compile"])
    param_names = ["dtype", "numba_cache"]
    warmup_time = 0
    repeat = (1, 3, 30.0)  # a compiling sample takes seconds
    timeout = 900

    def setup(self, dtype, numba_cache):
        # The child inherits this process's environment: the thread settings of
        # benchmarks/__init__.py and Numba's default cache location.
        fix_threads()
        if numba_cache == "cache":
            X, Y = digits(dtype)[:2]
            _, trainer = build("fastnn", X.shape[1], 64, dtype)
            train_epochs(trainer, X, Y, 32)  # fills the on-disk cache if it is not yet

    def timeraw_cold_start(self, dtype, numba_cache):
        return STMT.format(dtype=dtype), EMPTY_CACHE if numba_cache == "compile" else ""


# The scikit-learn face's first call, as in the issue that set the target: import and a
# default fit (200 epochs of Adam, batch 200) of digits-sized random data.
FIT_STMT = """
import numpy as np
rng = np.random.default_rng(0)
X = rng.random((1797, 64)).astype({dtype!r})
y = rng.integers(0, 10, 1797)
from fastnn import MLPClassifier
MLPClassifier(random_state=0).fit(X, y)
"""


class FirstFit:
    params = (DTYPES, ["cache"] if QUICK else ["cache", "compile"])
    param_names = ["dtype", "numba_cache"]
    warmup_time = 0
    repeat = (1, 3, 30.0)
    timeout = 900

    def setup(self, dtype, numba_cache):
        fix_threads()
        if numba_cache == "cache":
            from fastnn._app.compile import warm

            warm("sklearn", dtype)  # fills the on-disk cache if it is not yet

    def timeraw_first_fit(self, dtype, numba_cache):
        return FIT_STMT.format(dtype=dtype), EMPTY_CACHE if numba_cache == "compile" else ""
