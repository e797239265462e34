"""Importing fastnn without the cyclic garbage collector's full passes.

Importing Numba builds its typing and lowering registries: ~300k objects that live as
long as the process. While they are created, the collector's thresholds trigger a full
collection, which traverses every one of them: 16-46 ms of an ``import fastnn`` that took
0.2 s in a fresh virtualenv (docs/performance.md, "The first process, 2026-12-07"). None
of those objects is garbage, so the collector pauses while fastnn imports (and while its
scikit-learn face imports scikit-learn's modules), and runs again as before afterwards.

The pause alone would leave them all in the youngest generation, and the first young
collection after it would traverse them (docs/performance.md, "The import and the first
load, again"). So the block ends by moving every tracked
object to the oldest generation (``gc.freeze()`` then ``gc.unfreeze()``: no traversal), as
if they had aged there: a long-running process pays one full collection over them, later;
a short script often never. The objects that were alive before the block move too, so a
young reference cycle among them is collected by that full collection rather than a young
one.
"""
import contextlib
import gc


@contextlib.contextmanager
def paused():
    """The collector off inside the block (if it was on), back on after it, also on errors;
    every object alive after it in the oldest generation (module docstring)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        if was_enabled:
            gc.enable()
