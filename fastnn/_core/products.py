"""Which library multiplies a wide float32 step: NumPy's OpenBLAS, or oneDNN where it is
installed (the ``fastnn[bf16]`` extra) and measured faster on this machine.

The kernels' float32 products go through ``fastnn_sgemm``, which is a router when
oneDNN is installed (kernels/blas.py): oneDNN's ``dnnl_sgemm`` while
``blas.ONEDNN_SLOT`` holds it, NumPy's OpenBLAS otherwise. ``wide_step`` fills the slot
for a training call whose steps are wide (``threads.SMALL_STEP_MACS`` and above: BLAS's
own threads split each product) when ``decision`` says oneDNN. Small and split steps
keep OpenBLAS on one thread, float64 has no oneDNN GEMM, and two libraries' thread
pools never take turns within one step: both spin after a product, on the cores the
other needs (docs/performance.md, "oneDNN's float32 GEMM").

``decision`` times one wide step's products (784-1024-1024-10, batch 256: the bench's M)
with each library, alternated, once per machine, thread budget and pair of libraries,
and keeps the answer beside the compiled kernels, so a machine keeps
its choice and its results stay deterministic. ``FASTNN_BLAS=onednn`` chooses oneDNN
without measuring, ``FASTNN_BLAS=numpy`` never uses it.

``wide_training``, the context of every training call of wide steps, adds the thread
count: on OpenBLAS, the cores other processes keep busy are given up (``busy``).
"""
import contextlib
import ctypes
import datetime
import hashlib
import json
import os
import threading
import time

import numpy as np

from . import busy, onednn, threads
from ..kernels import blas
from ..kernels.cblas import NO_TRANS, ROW_MAJOR, TRANS

MARGIN = 0.97  # oneDNN is chosen when its step takes at most this share of OpenBLAS's: a clear win
ROUNDS, STEPS = 3, 3  # alternations, and steps timed per library in each

_lock = threading.Lock()
_decisions = {}  # thread budget -> decision (fastnn.set_num_threads may change the budget)
_address = None  # dnnl_sgemm's, once a decision is oneDNN
_users = 0


def step_products(width=1024, batch=256, inputs=784, outputs=10):
    """(m, k, n, A transposed, B transposed) of one training step of inputs-width-width-outputs:
    forward ``A W``, weight gradients ``A^T D`` and deltas ``D W^T``."""
    b, w = batch, width
    return [(b, inputs, w, False, False), (b, w, w, False, False), (b, w, outputs, False, False),
            (inputs, b, w, True, False), (w, b, w, True, False), (w, b, outputs, True, False),
            (b, w, w, False, True), (b, outputs, w, False, True)]


def dnnl_sgemm(path=None):
    """oneDNN's dnnl_sgemm as a ctypes function, its library ``path`` (found when None) and
    those beside it that it needs loaded for the whole process; raises OSError or
    RuntimeError when it cannot be."""
    path = path or onednn.library_path()
    onednn.load(path)
    return ctypes.CDLL(path).dnnl_sgemm


def libraries(path=None):
    """(OpenBLAS's cblas_sgemm, oneDNN's dnnl_sgemm from ``path``) as ctypes functions."""
    dnnl = dnnl_sgemm(path)
    lib, prefix, _ = blas._numpy_openblas()
    i64, f32, p = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
    openblas = getattr(lib, f"{prefix}cblas_sgemm64_")
    openblas.argtypes = [ctypes.c_int] * 3 + [i64] * 3 + [f32, p, i64, p, i64, f32, p, i64]
    dnnl.argtypes = [ctypes.c_char] * 2 + [i64] * 3 + [f32, p, i64, p, i64, f32, p, i64]
    return openblas, dnnl


def measure(path=None):
    """Seconds one wide step's products take with (OpenBLAS, oneDNN from ``path``), each the
    median of ``ROUNDS`` alternations of ``STEPS`` steps, at this process's thread budget."""
    openblas, dnnl = libraries(path)
    rng = np.random.default_rng(0)
    calls = {"openblas": [], "onednn": []}
    for m, k, n, ta, tb in step_products():
        A = rng.random((k, m) if ta else (m, k), dtype=np.float32)
        B = rng.random((n, k) if tb else (k, n), dtype=np.float32)
        C = np.empty((m, n), np.float32)
        args = (m, n, k, 1.0, A.ctypes.data, A.shape[1], B.ctypes.data, B.shape[1], 0.0, C.ctypes.data, n)
        calls["openblas"].append((openblas, (ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, *args),
                                  (A, B, C)))
        calls["onednn"].append((dnnl, (b"T" if ta else b"N", b"T" if tb else b"N", *args), (A, B, C)))
    times = {name: [] for name in calls}
    with onednn.threads_limited():
        for _ in range(ROUNDS):
            for name, step in calls.items():
                for run in range(STEPS + 1):
                    start = time.perf_counter()
                    for function, args, _operands in step:
                        function(*args)
                    if run > 0:  # the first one warms up
                        times[name].append(time.perf_counter() - start)
                time.sleep(0.1)  # the other pool's idle workers stop spinning first
    return float(np.median(times["openblas"])), float(np.median(times["onednn"]))


def _key(path):
    """What a decision holds for: this CPU, the thread budget, and the two libraries
    (oneDNN's at ``path``)."""
    import llvmlite.binding as llvm

    size = os.path.getsize(path) if os.path.exists(path) else 0
    return {"cpu": llvm.get_host_cpu_name(), "features": llvm.get_host_cpu_features().flatten(),
            "threads": threads.budget(), "openblas": blas.library(), "onednn": [path, size]}


def _file(key):
    """The file beside the compiled kernels that keeps the decision made for ``key``."""
    from ..kernels import _cache_dir

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return _cache_dir() / f"fastnn-sgemm-{digest}.json"


def decision(measure_now=True):
    """{"library": "onednn" or "openblas", "why": a sentence, ...} for wide float32 steps in
    this process: made once, from the file beside the kernels or by ``measure`` (None when
    that is still to do and not ``measure_now``)."""
    global _address
    budget = threads.budget()
    with _lock:
        if _decisions.get(budget) is None:
            path = onednn.library_path() if blas.ROUTED else None  # a look through the installed packages
            made = _decide(path, measure_now)
            if made is not None and made["library"] == "onednn" and _address is None:
                try:
                    _address = ctypes.cast(dnnl_sgemm(path), ctypes.c_void_p).value
                except (OSError, RuntimeError) as err:  # BFloat16Unavailable is a RuntimeError
                    made = {"library": "openblas", "why": f"oneDNN could not be loaded: {err}"}
            _decisions[budget] = made
        return _decisions[budget]


def _decide(path, measure_now):
    """The decision from what is installed (oneDNN's library at ``path``), FASTNN_BLAS, the
    kept file, or a measurement."""
    if not blas.ROUTED:
        return {"library": "openblas", "why": "oneDNN is not installed (or FASTNN_BLAS says otherwise)"}
    if path is None:
        return {"library": "openblas", "why": "oneDNN's library is not where the onednn package lists it"}
    if os.environ.get("FASTNN_BLAS", "").strip().lower() == "onednn":
        return {"library": "onednn", "why": "FASTNN_BLAS=onednn"}
    key = _key(path)
    kept_at = _file(key)
    try:
        kept = json.loads(kept_at.read_text())
        if kept.get("key") == key:
            return kept
    except (OSError, ValueError):
        pass
    if not measure_now:
        return None
    try:
        openblas_s, onednn_s = measure(path)
    except (OSError, RuntimeError) as err:  # BFloat16Unavailable (a dependency missing) is a RuntimeError
        return {"library": "openblas", "why": f"oneDNN could not be loaded: {err}"}
    ratio = onednn_s / openblas_s
    chosen = "onednn" if ratio <= MARGIN else "openblas"
    made = {"library": chosen, "key": key, "openblas_s": openblas_s, "onednn_s": onednn_s,
            "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "why": f"measured on this machine: oneDNN took {ratio:.2f}x OpenBLAS's time for a wide step"}
    try:
        kept_at.write_text(json.dumps(made, indent=1))
    except OSError:
        pass  # a read-only cache: measured again in the next process
    return made


def describe(measure_now=False):
    """A sentence for ``fastnn info`` and ``fastnn bench``: where wide float32 steps' products go."""
    if not blas.ROUTED:
        return "NumPy's OpenBLAS (oneDNN not installed)" if blas.NUMPY_OPENBLAS else blas.library()
    d = decision(measure_now)
    if d is None:
        return ("oneDNN or NumPy's OpenBLAS, whichever measures faster at the first wide float32 fit "
                "(or `fastnn compile`); not measured yet")
    name = "oneDNN's dnnl_sgemm" if d["library"] == "onednn" else "NumPy's OpenBLAS"
    return f"{name} ({d['why']})"


@contextlib.contextmanager
def wide_step(dtype):
    """Context for a training call of wide steps in ``dtype``: its float32 products go to
    oneDNN when ``decision`` says so (TBB held to fastnn's thread budget), else nothing
    changes. Yields whether they go to oneDNN."""
    if not blas.ROUTED or np.dtype(dtype) != np.float32 or decision()["library"] != "onednn":
        yield False
        return

    global _users
    with _lock:
        if _users == 0:
            blas.ONEDNN_SLOT.value = _address
        _users += 1
    try:
        with onednn.threads_limited():
            yield True
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                blas.ONEDNN_SLOT.value = None


@contextlib.contextmanager
def wide_training(work):
    """Context for a training call of wide steps with the workspace ``work``: their float32
    products on oneDNN where ``wide_step`` routes them there, else on OpenBLAS with the
    threads that other processes' load leaves (``busy``; ``engine.fit_epoch`` measures
    around each epoch)."""
    with wide_step(work.grad.dtype) as routed, contextlib.nullcontext() if routed else busy.adapting(work):
        yield

