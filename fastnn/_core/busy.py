"""Wide steps' BLAS threads on a busy machine: as many as the cores other processes leave.

OpenBLAS cuts each matrix product into equal parts, one per thread, and the product ends
with its slowest part. When another process keeps one of the cores busy, the thread of
ours that shares it gets half of it (the scheduler's fair share), and every product waits
for that thread: on 2 cores with another process spinning on one, a wide epoch took 2.9x
its quiet time on two threads and 1.8x on one (docs/performance.md, "Wide layers on a
busy machine"). Small steps are not concerned: they keep BLAS on one thread, or split
their batches with a helper that joins only while it pays (``fastnn._core.split``).

So a training call of wide steps on OpenBLAS watches the load (``adapting``, from
``products.wide_training``): over each window of its epochs (``WINDOW`` seconds at least), the
CPU time other processes took on this process's cores is the cores' busy time
(/proc/stat) less this process's own CPU time; the next epochs run on the thread count
the call began with, less the cores so held, rounded at half a core (``threads_for``).
The choice carries over to the next call (a loop of one-epoch calls adapts too).

Nothing changes where /proc/stat cannot be read (not Linux), where the call begins on one
thread, while another training call adapts, or where the user fixed the count
(``fastnn.set_num_threads``, ``FASTNN_NUM_THREADS``): OpenBLAS's float32 products differ
in their last bits between thread counts, so a run whose count follows the load is not
bit-for-bit repeatable, and a fixed count is how to get that back.
"""
import contextlib
import os
import threading
import time

from . import threads

WINDOW = 0.25  # seconds of epochs per measurement: /proc/stat counts in ticks of 10 ms
STAT = "/proc/stat"
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

_lock = threading.Lock()
_active = False  # a training call adapts: one at a time (BLAS's thread count is per process)
_held = None  # cores other processes held in the last measurement, for the next epochs and calls


def cores():
    """The CPUs this process may run on, or None where the platform does not say."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def busy_seconds(cpus, path=STAT):
    """Busy time of ``cpus`` since boot, in seconds: user, nice, system, irq and softirq
    time (not idle, iowait or steal: time the hypervisor gave another machine slows
    every core alike). None when ``path`` cannot be read or lists none of them."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    wanted = {f"cpu{c}" for c in cpus}
    ticks, found = 0, False
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] in wanted and len(fields) > 7:
            ticks += int(fields[1]) + int(fields[2]) + int(fields[3]) + int(fields[6]) + int(fields[7])
            found = True
    return ticks / _TICK if found else None


def sample(cpus):
    """(wall seconds, this process's CPU seconds, the cores' busy seconds) now."""
    return time.perf_counter(), time.process_time(), busy_seconds(cpus)


def held_by_others(start, end):
    """Cores that other processes kept busy between two ``sample``s, on average."""
    wall = end[0] - start[0]
    others = (end[2] - start[2]) - (end[1] - start[1])
    return max(others, 0.0) / wall if wall > 0 else 0.0


def threads_for(most, n_cpus, held):
    """BLAS threads for the next epochs: ``most`` while other processes hold less than half
    a core, else the ``n_cpus`` cores less those they ``held``, rounded at half a core
    (from there a thread on a shared core gets half of it or less, and holds up the
    rest), between 1 and ``most``."""
    if held < 0.5:
        return most
    return max(1, min(most, int(n_cpus - held + 0.5)))


class Pace:
    """One training call's watch of the load: ``before_epoch`` sets the thread count that
    the last measurement leaves, ``after_epoch`` measures once a window has passed."""

    def __init__(self, cpus, most, start=None):
        self.cpus, self.most = cpus, most
        self.threads = most  # BLAS's count now
        self.start = start  # the sample that opened the window

    def before_epoch(self):
        want = self.most if _held is None else threads_for(self.most, len(self.cpus), _held)
        if want != self.threads:
            threads.limit_blas(want)
            self.threads = want
        if self.start is None:
            self.start = sample(self.cpus)

    def after_epoch(self):
        global _held
        if self.start is None or time.perf_counter() - self.start[0] < WINDOW:
            return
        end = sample(self.cpus)
        if end[2] is not None and self.start[2] is not None:
            _held = held_by_others(self.start, end)
        self.start = None


@contextlib.contextmanager
def adapting(work):
    """Context for a training call of wide steps on OpenBLAS with the workspace ``work``:
    inside, ``work.blas_pace`` is a ``Pace`` for its epochs (``engine.fit_epoch`` calls
    it), or None when the thread count stays as it is (module docstring); BLAS's count at
    the start comes back at the end. The call's first sample opens the first window."""
    global _active
    cpus = cores()
    most = 1 if threads.fixed() or cpus is None else threads.get_num_threads()
    first = sample(cpus) if most >= 2 else None
    if first is None or first[2] is None:
        yield
        return
    with _lock:
        mine, _active = not _active, True
    if not mine:
        yield
        return
    pace = work.blas_pace = Pace(cpus, most, first)
    try:
        yield
    finally:
        work.blas_pace = None
        if pace.threads != most:
            threads.limit_blas(most)
        with _lock:
            _active = False


def describe():
    """A sentence for ``fastnn info``: how wide steps on OpenBLAS choose their threads here."""
    cpus = cores()
    if threads.fixed():
        return f"{threads.budget()}, as set (fastnn.set_num_threads or FASTNN_NUM_THREADS), whatever the load"
    if cpus is None or busy_seconds(cpus) is None:
        return "BLAS's own count (no /proc/stat here to read other processes' load from)"
    return (f"BLAS's count ({threads.get_num_threads()}) less the cores other processes keep busy, "
            f"measured over each {WINDOW} s of epochs (on {len(cpus)} cores)")

