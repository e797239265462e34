"""Whether the kernels are compiled for this machine, and the warning when they are not.

Numba compiles a kernel at its first call for each new combination of argument types,
and keeps the machine code in its on-disk cache (``cache=True``): next to the kernels
in ``fastnn/kernels/__pycache__``, or under ``NUMBA_CACHE_DIR``. A cache entry is valid
for one numba version, one Python version, one CPU (name and features) and the exact
source of the file (a SHA-256 of it). The install fills that cache ahead of time
(``fastnn._app.compile``, run by setup.py and by ``fastnn compile``).

``status`` reads the cache's index files to say, per face and dtype, whether the
kernels are ready for this machine and, if not, why; the engines (``engine``,
``sk_engine``) call ``announce`` before their first kernel call, which warns once per
face and dtype when a compile is coming; a compile that nothing announced (a variant
the install did not compile) warns when it starts (``CompileNotice``). While a kernel
compiles, Python's cyclic garbage collector runs less often (``RelaxedCollection``).
"""
import gc
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
from numba.core import event

FACES = ("tutorial", "sklearn")
DTYPES = ("float32", "float64")
COMPILE_COMMAND = "fastnn compile"  # also: python -m fastnn compile


class CompileWarning(UserWarning):
    """fastnn's kernels are about to be compiled in this process (seconds, once)."""


# -- is it compiled? ----------------------------------------------------------------------------
BFLOAT16 = "bfloat16"  # for ``status`` and ``announce``: the bfloat16 kernels both faces share


def _entry_kernels(face):
    """The compiled functions a face's fits call first (everything else is inside them);
    for BFLOAT16, those of kernels/bf16.py (reading their cache loads no oneDNN)."""
    if face == BFLOAT16:
        from ..kernels import bf16

        return [bf16.fit_epoch, bf16.predict]
    from ..kernels import epoch, network, split

    if face == "tutorial":
        return [epoch.fit_epoch, split.split_run, network.predict]
    return [epoch.fit_epoch, epoch.loss_grad, split.split_run, network.predict]


def read_index(path):
    """(numba version, source stamp, overloads) of a numba cache index file, the format
    of ``numba.core.caching``: pickle(numba version), then pickle((stamp, {key: data file})).
    The stamp is None when another numba wrote it (the rest is then not unpickled: its
    types may not exist here) and b"unreadable" when the rest does not unpickle.
    Raises OSError when the file cannot be read."""
    with open(path, "rb") as f:
        version = pickle.load(f)
        data = f.read()
    if version != numba_version():
        return version, None, {}
    try:
        stamp, overloads = pickle.loads(data)
    except Exception:  # noqa: BLE001 - a truncated or foreign file: numba will not use it either
        return version, b"unreadable", {}
    return version, stamp, overloads


def numba_version():
    import numba

    return numba.__version__


def _index(dispatcher):
    """``read_index`` of a dispatcher's cache index, or None when there is none."""
    try:
        return read_index(dispatcher._cache._cache_file._index_path)
    except OSError:
        return None


def status(face, dtype):
    """(state, reason) of a face's kernels (or BFLOAT16's: float32) for ``dtype`` on this machine: state is
    'ready' (compiled code in the cache for this CPU, numba, Python and source),
    'compile' (the first fit will compile, for ``reason``) or 'interpreted' (the JIT is off)."""
    from numba.core import config

    if config.DISABLE_JIT:
        return "interpreted", "NUMBA_DISABLE_JIT is set: the kernels run as Python code (slow), nothing compiles"
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
            return "compile", f"the cache in {where} was written by numba {version}; this is numba {numba_version()}"
        if stamp == b"unreadable":
            return "compile", f"the cache index of {name} in {where} is unreadable"
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
    (a few bookkeeping arrays are float64 in every signature), through the bundles."""
    floats = [name for name in _array_dtypes(signature) if name in DTYPES]
    return bool(floats) and floats.count(dtype.name) * 2 > len(floats)


def _array_dtypes(types):
    """The dtype names of the arrays among numba ``types``, inside (named) tuples too."""
    for t in types:
        inner = getattr(t, "types", None)
        if isinstance(inner, tuple):  # a tuple type: its members
            yield from _array_dtypes(inner)
        elif hasattr(t, "dtype"):
            yield str(t.dtype)


# (face, np.dtype) pairs; the dtype object, not its name: ``announce`` runs before every
# tutorial epoch, and ``dtype.name`` is Python code in NumPy (docs/performance.md, 2026-12-07).
_announced = set()
_compile_said = False  # whether this process was told (or asked) that fastnn compiles: see CompileNotice


def expect_compile(face, dtype):
    """No warning for ``face`` and ``dtype`` in this process: they are compiled on purpose."""
    global _compile_said
    _announced.add((face, np.dtype(dtype)))
    _compile_said = True


def announce(face, dtype):
    """Before a face's first kernel call in ``dtype``: warn once if it will compile."""
    global _compile_said
    key = (face, np.dtype(dtype))
    if key in _announced:
        return
    _announced.add(key)
    try:
        state, reason = status(face, dtype)
    except Exception:  # noqa: BLE001 - numba's cache internals changed: never fail a fit over a warning
        return
    if state == "compile":
        _compile_said = True
        warnings.warn(
            f"fastnn is compiling its {face} kernels for {key[1].name} now (several seconds, once per machine): {reason}. "
            f"Run `{COMPILE_COMMAND}` to compile ahead of time.", CompileWarning, stacklevel=3)
    elif state == "interpreted":
        warnings.warn(f"fastnn: {reason}.", CompileWarning, stacklevel=3)


class CompileNotice(event.Listener):
    """The warning for a compile that ``announce`` could not foresee. ``status`` tells
    whether a face's entry kernels are compiled for a dtype, not whether every variant a
    fit may take is (one per combination of argument types: e.g. with decoupled weight
    decay, a float rather than None); such a fit would compile for seconds in silence.
    So when one of fastnn's kernels starts compiling (the outermost compile of a nest),
    and nothing said so in this process, this warns once, naming the kernel."""

    def __init__(self):
        self.depth = 0

    def on_start(self, event):
        global _compile_said
        self.depth += 1
        dispatcher = event.data["dispatcher"]
        if self.depth > 1 or _compile_said or not _is_kernel(dispatcher):
            return
        _compile_said = True
        warnings.warn(
            f"fastnn is compiling {dispatcher.py_func.__module__}.{dispatcher.py_func.__qualname__} now for a "
            f"combination of argument types not compiled ahead of time (several seconds, once per machine: the "
            f"cache keeps it). `{COMPILE_COMMAND}` compiles what the install compiles; this kernel's variant was not "
            f"part of it.", CompileWarning, stacklevel=_caller_stacklevel())

    def on_end(self, event):
        self.depth -= 1


def _caller_stacklevel():
    """``warnings.warn``'s stacklevel of the innermost frame outside fastnn, numba and
    llvmlite (the user's call that led to the compile), counted from the caller of this;
    2 (numba's frame) in a thread that has none, such as the split's helper."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in ("fastnn", "numba", "llvmlite",
                                                                                       "contextlib", "threading"):
        frame, level = frame.f_back, level + 1
    return level if frame is not None else 2


# -- while compiling ------------------------------------------------------------------------------
class RelaxedCollection(event.Listener):
    """Numba's compiler allocates objects by the million, most of them short-lived; at
    Python's default threshold (a collection of the youngest generation every 700
    allocations) the cyclic garbage collector took a tenth of a cold first fit
    (docs/performance.md). So while one of fastnn's kernels compiles (the outermost
    compile of a nest is one of ``fastnn.kernels``), the youngest generation is
    collected every ``threshold`` allocations instead; the thresholds are restored when
    that compile ends, also when it fails. A user's own Numba functions are left alone.

    Compiles hold Numba's global compiler lock, so events do not interleave between threads.
    """

    def __init__(self, threshold=10_000):
        self.threshold = threshold
        self.depth = 0
        self.saved = None  # the thresholds to restore, while relaxed

    def on_start(self, event):
        if self.depth == 0 and _is_kernel(event.data["dispatcher"]):
            self.saved = gc.get_threshold()
            gc.set_threshold(max(self.threshold, self.saved[0]), *self.saved[1:])
        self.depth += 1

    def on_end(self, event):
        self.depth -= 1
        if self.depth == 0 and self.saved is not None:
            gc.set_threshold(*self.saved)
            self.saved = None


def _is_kernel(dispatcher):
    return getattr(dispatcher.py_func, "__module__", "").startswith(__package__.split(".")[0] + ".kernels")


event.register("numba:compile", RelaxedCollection())
event.register("numba:compile", CompileNotice())
