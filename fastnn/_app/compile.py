"""Compiling the kernels ahead of time: ``fastnn compile``, also run by the install (setup.py).

It runs tiny fits that take every path a user's fit takes (``warm``), rather than
compiling a list of signatures, so the types are exactly those the faces pass. The
fits run in ``jobs`` fresh processes, each compiling into a private numba cache, and
``merge_caches`` then copies the entries into the kernels' own cache: numba's index
files are not safe to write from two processes at once.

A complete compile leaves a record beside the cache (``RECORD``): which (face, dtype)
pairs it compiled, for which kernel sources, numba, Python and CPU. A later ``fastnn
compile`` skips the pairs the record and the cache both say are done (the install
already compiled them, say), unless forced. The cache alone cannot say that: a fit that
compiled at first use leaves the few kernels it used, and the cache's index then looks
compiled for its dtype although the other paths of the face are not.
"""
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .. import kernels
from ..kernels import _runtime
from .._core import threads
from .._core.precompile import BFLOAT16, DTYPES, FACES, expect_compile, read_index, status
from ..network import NeuralNetwork
from ..trainer import Trainer


# -- the fits that take every path --------------------------------------------------------------
def _data(dtype, rows, d, k, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((rows, d)).astype(dtype)
    labels = rng.integers(0, k, rows)
    return X, labels, np.eye(k, dtype=dtype)[labels]


def _warm_tutorial(dtype):
    # Small full batches train on one core (fit_epoch), large ones split between two
    # (split_run): force the split's budget so a 1-core build machine compiles it too.
    budget, threads._budget = threads._budget, 2
    try:
        X, labels, Y = _data(dtype, 1000, 32, 3)
        nn = NeuralNetwork(32, 32, 3, "categorical_crossentropy", dtype=dtype, seed=0)
        trainer = Trainer(nn, "categorical_crossentropy")
        trainer.train(X, Y, X[:50], Y[:50], 2, 0.1)  # the tutorial's script: rows in order, a test set
        trainer.train(X, Y, None, None, 1, 0.1, shuffle=True, validation_split=0.1)  # gathered rows
        nn.predict(X[:5])
    finally:
        threads._budget = budget
    X, labels, Y = _data(dtype, 40, 4, 3)
    for dropout, optimizer in ((0.0, "adam"), (0.2, "adam"), (0.0, "adamw"), (0.2, "adamw")):
        nn = NeuralNetwork(4, [5, 4], 3, "categorical_crossentropy", activation="relu", dtype=dtype, seed=0,
                           dropout=dropout)
        trainer = Trainer(nn, "categorical_crossentropy")
        trainer.train(X, labels, X[:7], labels[:7], 1, 1e-3, batch_size=16, optimizer=optimizer,
                      validation_data=(X[:9], labels[:9]))
    nn = NeuralNetwork(4, 3, 3, "mse", dtype=dtype, seed=0)
    Trainer(nn, "mse").train(X, Y, None, None, 1, 0.1, batch_size=8, optimizer="momentum")
    nn.backward(X, Y, 0.1)  # the tutorial's one gradient step
    nn.forward(X)
    if dtype == "float32":
        _warm_bfloat16()


def _warm_bfloat16():
    """compute_dtype='bfloat16', where its extra is installed and the CPU multiplies
    bfloat16 (elsewhere nothing: such a network refuses to be built)."""
    from .._core import bf16

    if bf16.availability() is not None:
        return
    expect_compile(BFLOAT16, "float32")
    X, labels, Y = _data("float32", 40, 4, 3)
    nn = NeuralNetwork(4, [5, 4], 3, "categorical_crossentropy", activation="relu", dtype="float32", seed=0,
                       compute_dtype="bfloat16")
    trainer = Trainer(nn, "categorical_crossentropy")
    trainer.train(X, Y, X[:7], Y[:7], 1, 0.1)
    trainer.train(X, labels, None, None, 1, 1e-3, batch_size=16, optimizer="adam",
                  validation_data=(X[:9], labels[:9]))
    nn.backward(X, Y, 0.1)
    nn.predict(X[:5])
    dropped = NeuralNetwork(4, [5, 4], 3, "categorical_crossentropy", activation="relu", dtype="float32", seed=0,
                            compute_dtype="bfloat16", dropout=0.2)
    Trainer(dropped, "categorical_crossentropy").train(X, labels, None, None, 1, 1e-3, batch_size=16, optimizer="adam")


def _warm_sklearn(dtype):
    import scipy.sparse as sp

    from ..sklearn import MLPClassifier, MLPRegressor  # scikit-learn: only when this face is compiled

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
    # Large enough minibatches, and L-BFGS on large full batches, split their rows between
    # two cores (split_run's two variants): force the split's budget so a 1-core build
    # machine compiles them too.
    budget, threads._budget = threads._budget, 2
    try:
        X, labels, _ = _data(dtype, 1000, 32, 3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for solver, batch_size in (("adam", 500), ("lbfgs", "auto")):  # adam: 1.1M multiply-adds a step
                MLPClassifier(hidden_layer_sizes=(64,), solver=solver, batch_size=batch_size, max_iter=2,
                              random_state=0).fit(X, labels)
    finally:
        threads._budget = budget
    if dtype == "float32":
        _warm_sklearn_bfloat16()


def _warm_sklearn_bfloat16():
    """The estimators' compute_dtype='bfloat16' epochs (scikit-learn's objective, with and
    without weight decay, with dropout), where they can run; their predict is the tutorial face's."""
    from .._core import bf16
    from ..sklearn import MLPClassifier

    if bf16.availability() is not None:
        return
    expect_compile(BFLOAT16, "float32")
    X, labels, _ = _data("float32", 60, 4, 3)
    for weight_decay, dropout in ((0.0, 0.0), (0.1, 0.0), (0.0, 0.2)):
        clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=1, random_state=0, weight_decay=weight_decay,
                            dropout=dropout, compute_dtype="bfloat16")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # not converged in 1 iteration: on purpose
            clf.fit(X, labels).predict_proba(X)


WARM = {"tutorial": _warm_tutorial, "sklearn": _warm_sklearn}


def warm(face, dtype):
    """Run the tiny fits of one face in one dtype: compiles (or loads) every kernel they use."""
    WARM[face](np.dtype(dtype).name)


def compile_kernels(faces=FACES, dtypes=DTYPES, jobs=1, log=print, force=True):
    """Compile every kernel of ``faces`` x ``dtypes`` into the kernels' cache, in ``jobs``
    processes (each into a private cache, merged at the end: numba's index files are not
    safe to write from two processes at once); with ``force`` False, only the pairs that
    are not compiled already (``is_compiled``). Returns {(face, dtype): seconds} of the
    pairs compiled."""
    pairs = [(face, np.dtype(dtype).name) for face in faces for dtype in dtypes]
    target = kernels._cache_dir()
    if target is None:
        raise RuntimeError("numba caching is off here (NUMBA_DISABLE_JIT?): nothing to compile ahead of time")
    if not force:
        done = [pair for pair in pairs if is_compiled(*pair, target)]
        for face, dtype in done:
            log(f"fastnn: the {face} kernels for {dtype} are already compiled for this machine in {target}; "
                "skipped (--force compiles them again)")
        pairs = [pair for pair in pairs if pair not in done]
    if not pairs:
        return {}
    jobs = max(1, min(jobs, len(pairs)))
    shares = [pairs[i::jobs] for i in range(jobs)]
    log(f"fastnn: compiling the {', '.join(f'{face} kernels for {dtype}' for face, dtype in pairs)} in {jobs} "
        "process(es); this takes a minute or two, once per machine and numba version")
    times = {}
    with tempfile.TemporaryDirectory(prefix="fastnn-compile-") as tmp:
        children = []
        for i, share in enumerate(shares):
            env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / str(i)))
            code = f"from fastnn._app.compile import _child; _child({json.dumps(share)!r})"
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
    _write_record(target, times)
    return times


# -- the record of a complete compile -------------------------------------------------------------
RECORD = "fastnn-compiled.json"


def _machine():
    """What compiled code is valid for besides its source: numba, Python and the CPU."""
    import numba
    from numba.core.registry import cpu_target

    return {"numba": numba.__version__, "python": "%d.%d" % sys.version_info[:2],
            "cpu": list(cpu_target.target_context.codegen().magic_tuple())}


def recorded_pairs(target):
    """The (face, dtype) pairs that complete compiles recorded in the cache folder
    ``target`` for these kernel sources on this machine (none when there is no record,
    or it is of other sources, another numba, Python or CPU)."""
    try:
        record = json.loads((target / RECORD).read_text())
    except (OSError, ValueError):
        return set()
    if not isinstance(record, dict) or record.get("digest") != kernels._package_digest() \
            or record.get("machine") != _machine():
        return set()
    return {tuple(pair) for pair in record.get("pairs", []) if isinstance(pair, list) and len(pair) == 2}


def is_compiled(face, dtype, target):
    """Whether a complete compile of ``face`` in ``dtype`` is in the cache folder ``target``:
    recorded there, and still in the cache (with the bfloat16 kernels of float32 where
    they can run)."""
    if (face, dtype) not in recorded_pairs(target) or status(face, dtype)[0] != "ready":
        return False
    if dtype == "float32":
        from .._core import bf16

        return bf16.availability() is not None or status(BFLOAT16, "float32")[0] == "ready"
    return True


def _write_record(target, times):
    """Add the pairs of ``times`` to the record in ``target`` (written whole, then renamed)."""
    pairs = recorded_pairs(target) | set(times)
    record = {"digest": kernels._package_digest(), "machine": _machine(), "pairs": sorted(map(list, pairs))}
    tmp = target / (RECORD + ".tmp")
    try:
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, target / RECORD)
    except OSError:
        pass  # a read-only cache: the next `fastnn compile` compiles again, nothing worse


def _child(share_json):
    """A compiling process: warm each (face, dtype) of the JSON list; one JSON line each."""
    for face, dtype in json.loads(share_json):
        expect_compile(face, dtype)
        start = time.perf_counter()
        warm(face, dtype)
        print(json.dumps([face, dtype, time.perf_counter() - start]), flush=True)


def merge_caches(indexes, target):
    """Copy numba cache entries (index files ``indexes`` and their data files) into the
    folder ``target``, adding to what it holds: an entry already there is kept, and a
    stale index there (another numba, another source) is replaced. Returns the number
    of index files written. The format is numba's (``numba.core.caching``): the index
    holds pickle(numba version) then pickle((source stamp, {key: data file name}))
    (``fastnn._core.precompile.read_index``). The runtime's object code
    (``fastnn.kernels._runtime``) comes along.
    """
    target.mkdir(parents=True, exist_ok=True)
    written = 0
    for source in indexes:
        version, stamp, overloads = read_index(source)
        dest = target / source.name
        _, old_stamp, old = read_index(dest) if dest.exists() else (None, None, {})
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
    for folder in {index.parent for index in indexes}:
        stamp_file = folder / "fastnn-kernels.sha256"
        if stamp_file.exists():
            shutil.copyfile(stamp_file, target / stamp_file.name)
        for runtime in folder.glob(f"{_runtime.PREFIX}*{_runtime.SUFFIX}"):
            shutil.copyfile(runtime, target / runtime.name)  # its name digests its inputs: any copy will do
    return written
