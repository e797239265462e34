"""The helper thread of a split training call (``fastnn.kernels.split``).

For the whole training call a helper thread sits in ``split.split_run`` (compiled,
without the GIL) and computes block 1 of each batch while the caller computes block 0
(``split_run`` again), unless the caller, done first, takes block 1 too; they meet
through flags in shared memory.
Handing the block over through Python instead (semaphores, the GIL) took a sixth of
the tutorial's epoch, and a Numba parallel region much longer to compile
(docs/performance.md).
The test set's predictions after each epoch go the same way.
The helper spins while it waits (yielding its core after a while), so it lives only
as long as the training call: ``KernelEngine.training`` stops it at the end. Within the
call it joins only while it pays (``Pace``); paused, it sleeps.
"""
import threading
import time

import numpy as np

from .fpu import run_flushing_subnormals
from ..kernels import split


class BlockHelper:
    """A thread running ``split_run`` as HELPER over fixed arrays. ``args``: the block
    arguments (net, objective, blocks); ``rest``: arguments of the caller's first call
    (the same types make it the same compiled function; the helper reads only those of
    them that ``key`` holds, with ``args``: the default)."""

    def __init__(self, args, rest, key=None):
        self.args, self.rest = args, rest
        self.key = args if key is None else key
        self.ctrl = np.zeros(split.CTRL_SIZE, dtype=np.int64)  # the hand-off's flags (see kernels/split.py)
        self.results = np.zeros(3)  # block 1's loss and correct count; the batch's L2 coefficient
        self.thread = threading.Thread(target=run_flushing_subnormals,
                                       args=(split.split_run, split.HELPER, self.ctrl, self.results, *args, *rest),
                                       name="fastnn-split", daemon=True)
        self.thread.start()
        try:
            self._wait_until_ready()
        except BaseException:  # e.g. Ctrl-C during a cold compile: stop the helper once it is up
            threading.Thread(target=self._stop_when_ready, name="fastnn-split-stop", daemon=True).start()
            raise

    def _wait_until_ready(self):
        while self.ctrl[split.STATE] != split.READY:  # the first call compiles split_run (or loads it)
            if not self.thread.is_alive():
                raise RuntimeError("fastnn's split helper thread stopped before it was ready")
            time.sleep(1e-4)

    def _stop_when_ready(self):
        # STOP written before READY would be overwritten by it: wait for READY first.
        while self.ctrl[split.STATE] != split.READY and self.thread.is_alive():
            time.sleep(1e-3)
        self.stop()

    def join_in(self, joins):
        """Let the helper claim jobs (``joins``), or keep it paused: the caller then
        computes both blocks of each job, the same bits."""
        state = split.READY if joins else split.PAUSED
        if self.ctrl[split.STATE] != state:
            self.ctrl[split.STATE] = state  # polled with acquire loads, as ``stop``'s store

    def serves(self, key):
        """Whether this helper runs over exactly these arrays and values (its ``key``)."""
        return _same(key, self.key)

    def stop(self):
        self.ctrl[split.STATE] = split.STOP  # the helper polls with acquire loads: it sees this store
        self.thread.join()


def _same(a, b):
    """Whether a and b are the same arrays (identical objects) and equal other values,
    through (named) tuples. Asked before every split epoch: the same object answers at once,
    and the loop is a plain one, not a generator (docs/performance.md, "The first process,
    2026-12-07": the per-epoch check)."""
    if a is b:
        return True
    if isinstance(a, tuple):
        if not isinstance(b, tuple) or len(a) != len(b):
            return False
        for x, y in zip(a, b):
            if not _same(x, y):
                return False
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return False  # arrays: only the identical object (tested above) is the same
    return type(a) is type(b) and a == b


class Pace:
    """Whether the helper takes part in the next split call (epoch, or L-BFGS's loss and
    gradient) of a training call, from the calls' times. Either way the results are the
    same bits (kernels/split.py): this decides speed only.

    On a quiet machine the helper makes a split epoch faster. But on a virtual machine,
    for seconds at a time, the epochs with the helper ran slower than the caller alone,
    while those on one core kept their speed (docs/performance.md, "The helper joins
    while it pays"): two threads that meet at every step depend on where the host runs
    the two virtual cores. So the calls are timed: after ``PROBE_FIRST`` calls with the
    helper, one runs without it (a probe), and the faster way (the probe's time against
    the median of the other's last ``KEEP``) runs until the next probe, which comes twice
    as many calls later while the choice holds (up to ``PROBE_MAX``) and ``PROBE_FIRST``
    calls later when it changes. A call's time is its whole ``split_run``, the same work
    either way.
    """

    PROBE_FIRST, PROBE_MAX = 16, 64
    KEEP = 3

    def __init__(self):
        self.helper = True  # the current choice
        self.calls = 0
        self.interval = self.PROBE_FIRST
        self.next_probe = self.PROBE_FIRST
        self.times = []  # the current choice's last KEEP call times

    def helper_joins(self):
        """Whether the helper takes part in the next call."""
        return self.helper != (self.calls == self.next_probe)

    def record(self, joined, seconds):
        """The time of the call just made, with the helper (``joined``) or without."""
        self.calls += 1
        if joined == self.helper:
            self.times = (self.times + [seconds])[-self.KEEP:]
            return
        if seconds < float(np.median(self.times)):  # the probe was faster: switch
            self.helper, self.times, self.interval = joined, [seconds], self.PROBE_FIRST
        else:
            self.interval = min(2 * self.interval, self.PROBE_MAX)
        self.next_probe = self.calls - 1 + self.interval  # counted from the probe's call
