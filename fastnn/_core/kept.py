"""What a training call makes that the next call may use again: ``Kept``, one per Trainer.

The tutorial's scripts train one epoch per ``train`` call, so that they can print or plot
after each. Every call made its scratch (the engine's workspace) and one-hot encoded its
labels afresh: with digits-sized data a measurable part of the call, the Python and more
so the epoch's first reads and writes of the new memory (docs/performance.md, "What a
one-epoch call keeps"). A call that asks for the same (network, batch rows, dropout, data)
now gets the same; what it does not ask for is freed when it asks for another. Only
small things are kept (``KEEP_BYTES``): a wide network's workspace holds a gradient as
large as its parameters, and is still freed between calls.
"""
import numpy as np

from .validation import check_y

KEEP_BYTES = 4 << 20


class Kept:
    """A Trainer's workspace and one-hot labels of its last call, for its next one."""

    def __init__(self):
        self._work = None  # (what it serves, the engine's workspace)
        self._labels = {}  # name -> (a copy of the labels, what they were checked for, their one-hot rows)

    def workspace(self, engine, model, rows, dropout, epoch_rows, splittable):
        """``engine.workspace(model, rows, dropout, epoch_rows=..., splittable=...)``, or the
        last call's when it was made for the same and the engine says it holds scratch only
        (``reusable``: one core, no bfloat16 twins) and it is small."""
        serves = (engine, model._spec, rows, dropout, epoch_rows, splittable)
        if self._work is not None and self._work[0] == serves:
            return self._work[1]
        self._work = None  # freed before the new one is made
        work = engine.workspace(model, rows, dropout, epoch_rows=epoch_rows, splittable=splittable)
        if engine.reusable(work) and work.nbytes() <= KEEP_BYTES:
            self._work = (serves, work)
        return work

    def check_y(self, y, n_samples, loss_func, n_outputs, dtype, name):
        """``validation.check_y``. Integer class labels, which it one-hot encodes, are
        compared with those of the last call under the same ``name`` and, when equal, the
        rows encoded then are returned again: the compare reads the labels once, where
        encoding wrote a new (n, k) array. Labels changed in place are not equal, and are
        checked and encoded again."""
        encoded = (loss_func == "categorical_crossentropy" and isinstance(y, np.ndarray) and y.ndim == 1
                   and y.dtype.kind in "iu")
        if not encoded:
            return check_y(y, n_samples, loss_func, n_outputs, dtype, name)
        checked_for = (n_samples, n_outputs, np.dtype(dtype))
        kept = self._labels.pop(name, None)  # dropped unless it serves again
        if kept is not None and kept[1] == checked_for and kept[0].dtype == y.dtype and np.array_equal(kept[0], y):
            self._labels[name] = kept
            return kept[2]
        Y = check_y(y, n_samples, loss_func, n_outputs, dtype, name)
        if y.nbytes + Y.nbytes <= KEEP_BYTES:
            self._labels[name] = (y.copy(), checked_for, Y)
        return Y
