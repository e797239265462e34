"""Importing fastnn without the cyclic garbage collector's full passes.

Importing Numba builds its typing and lowering registries: ~300k objects that live as
long as the process. While they are created, the collector's thresholds trigger a full
collection, which traverses every one of them: 16-46 ms of an ``import fastnn`` that took
0.2 s in a fresh virtualenv (docs/performance.md, "The first process, 2026-12-07"). None
of those objects is garbage, so the collector pauses while fastnn imports (and while its
scikit-learn face imports scikit-learn's modules), and runs again as before afterwards:
the objects then age through the generations as usual; a long-running process pays that
full collection once, later, a short script often never.
"""
import contextlib
import gc


@contextlib.contextmanager
def paused():
    """The collector off inside the block (if it was on), back on after it, also on errors."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
