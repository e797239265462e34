"""Compiling the kernels before the user's first call, and telling whether that happened.

Numba compiles a kernel at its first call for each new combination of argument types,
and keeps the machine code in its on-disk cache (``cache=True``): next to the kernels
in ``fastnn/kernels/__pycache__``, or under ``NUMBA_CACHE_DIR``. A cache entry is valid
for one numba version, one Python version, one CPU (name and features) and the exact
source of the file (a SHA-256 of it). fastnn fills that cache ahead of time by running
tiny fits that take every path a user's fit takes (``warm``): at install time (the
build step in setup.py), or on demand with ``fastnn compile``. Running them, rather
than compiling a list of signatures, keeps the types exactly those the faces pass.

``status`` reads the cache's index files to say, per face and dtype, whether the
kernels are ready for this machine and, if not, why; the faces call ``announce`` before
their first kernel call, which warns once per face and dtype when a compile is coming.
"""
import os
import pickle
import warnings
from pathlib import Path

import numpy as np

FACES = ("tutorial", "sklearn")
DTYPES = ("float32", "float64")
COMPILE_COMMAND = "fastnn compile"  # also: python -m fastnn compile


class CompileWarning(UserWarning):
    """fastnn's kernels are about to be compiled in this process (seconds, once)."""


# -- the fits that take every path --------------------------------------------------------------
def _data(dtype, rows, d, k, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((rows, d)).astype(dtype)
    labels = rng.integers(0, k, rows)
    return X, labels, np.eye(k, dtype=dtype)[labels]


def _warm_tutorial(dtype):
    import fastnn
    from . import threads

    # Small full batches train on one core (fit_epoch), large ones split between two
    # (split_run): force the split's budget so a 1-core build machine compiles it too.
    budget, threads._budget = threads._budget, 2
    try:
        X, labels, Y = _data(dtype, 1000, 32, 3)
        nn = fastnn.NeuralNetwork(32, 32, 3, "categorical_crossentropy", dtype=dtype, seed=0)
        trainer = fastnn.Trainer(nn, "categorical_crossentropy")
        trainer.train(X, Y, X[:50], Y[:50], 2, 0.1)  # the tutorial's script: rows in order, a test set
        trainer.train(X, Y, None, None, 1, 0.1, shuffle=True, validation_split=0.1)  # gathered rows
        nn.predict(X[:5])
    finally:
        threads._budget = budget
    X, labels, Y = _data(dtype, 40, 4, 3)
    for dropout, optimizer in ((0.0, "adam"), (0.2, "adam"), (0.0, "adamw"), (0.2, "adamw")):
        nn = fastnn.NeuralNetwork(4, [5, 4], 3, "categorical_crossentropy", activation="relu", dtype=dtype, seed=0,
                                  dropout=dropout)
        trainer = fastnn.Trainer(nn, "categorical_crossentropy")
        trainer.train(X, labels, X[:7], labels[:7], 1, 1e-3, batch_size=16, optimizer=optimizer,
                      validation_data=(X[:9], labels[:9]))
    nn = fastnn.NeuralNetwork(4, 3, 3, "mse", dtype=dtype, seed=0)
    fastnn.Trainer(nn, "mse").train(X, Y, None, None, 1, 0.1, batch_size=8, optimizer="momentum")
    nn.backward(X, Y, 0.1)  # the tutorial's one gradient step
    nn.forward(X)


def _warm_sklearn(dtype):
    import scipy.sparse as sp

    from .sklearn import MLPClassifier, MLPRegressor

    X, labels, Y = _data(dtype, 60, 4, 3)
    for solver, extra in (("adam", {}), ("sgd", {}), ("lbfgs", {}), ("adam", {"early_stopping": True}),
                          ("adam", {"dropout": 0.2})):
        clf = MLPClassifier(hidden_layer_sizes=(5,), solver=solver, max_iter=2, random_state=0, **extra)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # not converged in 2 iterations: on purpose
            clf.fit(X, labels)
            if solver == "adam" and not extra:
                clf.fit(sp.csr_matrix(X), labels, sample_weight=np.ones(len(X)))
                clf.partial_fit(X, labels)
                MLPRegressor(hidden_layer_sizes=(5,), max_iter=2, random_state=0).fit(X, Y[:, 0]).predict(X)
        clf.predict_proba(X)


WARM = {"tutorial": _warm_tutorial, "sklearn": _warm_sklearn}


def warm(face, dtype):
    """Run the tiny fits of one face in one dtype: compiles (or loads) every kernel they use."""
    WARM[face](np.dtype(dtype).name)


# -- is it compiled? ----------------------------------------------------------------------------
def _entry_kernels(face):
    """The compiled functions a face's fits call first (everything else is inside them)."""
    from .kernels import epoch, network, sk_epoch, split

    if face == "tutorial":
        return [epoch.fit_epoch, split.split_run, network.predict]
    return [sk_epoch.sk_train_epoch, sk_epoch.sk_loss_grad, network.predict]


def _index(dispatcher):
    """(numba version, source stamp, overloads) of a dispatcher's cache index, or None."""
    cache_file = dispatcher._cache._cache_file
    try:
        with open(cache_file._index_path, "rb") as f:
            version = pickle.load(f)
            data = f.read()
    except OSError:
        return None
    if version != cache_file._version:
        return version, None, {}
    stamp, overloads = pickle.loads(data)
    return version, stamp, overloads


def status(face, dtype):
    """(state, reason) of a face's kernels for ``dtype`` on this machine: state is
    'ready' (compiled code in the cache for this CPU, numba, Python and source),
    'compile' (the first fit will compile, for ``reason``) or 'interpreted' (the JIT is off)."""
    from numba.core import config

    if config.DISABLE_JIT:
        return "interpreted", "NUMBA_DISABLE_JIT is set: the kernels run as Python code (slow), nothing compiles"
    import numba
    from numba.core.registry import cpu_target

    dtype = np.dtype(dtype)
    magic = cpu_target.target_context.codegen().magic_tuple()
    for dispatcher in _entry_kernels(face):
        cache = dispatcher._cache
        where = Path(cache.cache_path)
        index = _index(dispatcher)
        name = dispatcher.py_func.__qualname__
        if index is None:
            own = Path(dispatcher.py_func.__code__.co_filename).parent / "__pycache__"
            if where != own and not config.CACHE_DIR:
                return "compile", (f"the package's cache folder {own} is not writable, so numba caches in {where}, "
                                   f"which has no compiled {name} yet")
            return "compile", f"no compiled {name} in {where} (installed without the build step, or cache removed)"
        version, stamp, overloads = index
        if stamp is None:
            return "compile", f"the cache in {where} was written by numba {version}; this is numba {numba.__version__}"
        if stamp != cache._impl.locator.get_source_stamp():
            return "compile", f"the kernels' source changed since they were compiled ({name})"
        keys = [key for key in overloads if key[1] == magic]
        if not keys:
            cpus = sorted({key[1][1] for key in overloads})
            return "compile", f"compiled for another CPU ({', '.join(cpus)}); this one is {magic[1]}"
        if not any(_takes_dtype(key[0], dtype) for key in keys):
            return "compile", f"no compiled {name} for {dtype.name} yet"
    return "ready", f"compiled for this machine ({magic[1]}) in {where}"


def _takes_dtype(signature, dtype):
    """Whether a cached signature is one of ``dtype``'s: most of its float arrays have it
    (a few bookkeeping arrays are float64 in every signature)."""
    floats = [str(arg.dtype) for arg in signature if str(getattr(arg, "dtype", "")) in DTYPES]
    return bool(floats) and floats.count(dtype.name) * 2 > len(floats)


_announced = set()


def announce(face, dtype):
    """Before a face's first kernel call in ``dtype``: warn once if it will compile."""
    key = (face, np.dtype(dtype).name)
    if key in _announced:
        return
    _announced.add(key)
    state, reason = status(face, dtype)
    if state == "compile":
        warnings.warn(
            f"fastnn is compiling its {face} kernels for {key[1]} now (several seconds, once per machine): {reason}. "
            f"Run `{COMPILE_COMMAND}` to compile ahead of time.", CompileWarning, stacklevel=3)
    elif state == "interpreted":
        warnings.warn(f"fastnn: {reason}.", CompileWarning, stacklevel=3)


def compile_kernels(faces=FACES, dtypes=DTYPES, jobs=1, log=print):
    """Compile every kernel of ``faces`` x ``dtypes`` into the kernels' cache, in ``jobs``
    processes (each into a private cache, merged at the end: numba's index files are not
    safe to write from two processes at once). Returns {(face, dtype): seconds}."""
    import json
    import subprocess
    import sys
    import tempfile
    import time

    from . import kernels

    pairs = [(face, np.dtype(dtype).name) for face in faces for dtype in dtypes]
    jobs = max(1, min(jobs, len(pairs)))
    shares = [pairs[i::jobs] for i in range(jobs)]
    target = kernels._cache_dir()
    if target is None:
        raise RuntimeError("numba caching is off here (NUMBA_DISABLE_JIT?): nothing to compile ahead of time")
    times = {}
    with tempfile.TemporaryDirectory(prefix="fastnn-compile-") as tmp:
        children = []
        for i, share in enumerate(shares):
            env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / str(i)))
            code = f"from fastnn._precompile import _child; _child({json.dumps(share)!r})"
            children.append(subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True))
        failed = []
        for child, share in zip(children, shares):
            out, _ = child.communicate()
            for line in out.splitlines():
                face, dtype, seconds = json.loads(line)
                times[face, dtype] = seconds
                log(f"fastnn: compiled the {face} kernels for {dtype} in {seconds:.1f} s")
            if child.returncode:
                failed.append(share)
        merged = merge_caches(sorted(Path(tmp).glob("*/*/*.nbi")), target)
        log(f"fastnn: {merged} compiled kernels stored in {target}")
        if failed:
            raise RuntimeError(f"compiling {failed} failed (exit status {[c.returncode for c in children]}); "
                               "the traceback is above")
    return times


def _child(share_json):
    """A compiling process: warm each (face, dtype) of the JSON list; one JSON line each."""
    import json
    import time

    for face, dtype in json.loads(share_json):
        start = time.perf_counter()
        warm(face, dtype)
        print(json.dumps([face, dtype, time.perf_counter() - start]), flush=True)


def merge_caches(indexes, target):
    """Copy numba cache entries (index files ``indexes`` and their data files) into the
    folder ``target``, adding to what it holds: an entry already there is kept, and a
    stale index there (another numba, another source) is replaced. Returns the number
    of index files written. The format is numba's (``numba.core.caching``): the index
    holds pickle(numba version) then pickle((source stamp, {key: data file name})).
    """
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    written = 0
    for source in indexes:
        with open(source, "rb") as f:
            version = pickle.load(f)
            stamp, overloads = pickle.loads(f.read())
        existing = {}
        dest = target / source.name
        if dest.exists():
            with open(dest, "rb") as f:
                if pickle.load(f) == version:
                    old_stamp, old = pickle.loads(f.read())
                    existing = old if old_stamp == stamp else {}
        base = source.name[: -len(".nbi")]
        for key, data_name in overloads.items():
            if key in existing:
                continue
            used = set(existing.values())
            number = next(i for i in range(1, len(used) + 2) if f"{base}.{i}.nbc" not in used)
            existing[key] = f"{base}.{number}.nbc"
            shutil.copyfile(source.parent / data_name, target / existing[key])
        tmp = dest.with_suffix(".nbi.tmp")
        with open(tmp, "wb") as f:
            pickle.dump(version, f, protocol=-1)
            f.write(pickle.dumps((stamp, existing), protocol=-1))
        os.replace(tmp, dest)  # atomic: a process loading the index never sees half of it
        written += 1
    for stamp_file in {index.parent / "fastnn-kernels.sha256" for index in indexes}:
        if stamp_file.exists():
            shutil.copyfile(stamp_file, target / stamp_file.name)
    return written


def cache_writable():
    """Whether numba can write the kernels' cache where it looks first."""
    from numba.core import config

    from . import kernels

    folder = Path(config.CACHE_DIR) if config.CACHE_DIR else Path(kernels.__file__).parent / "__pycache__"
    probe = folder if folder.exists() else folder.parent
    return os.access(probe, os.W_OK)
