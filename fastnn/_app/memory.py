"""Memory measurements of ``fastnn bench``: the process's peak resident set size, sampled
while an implementation trains, and the performance issue's bound for fastnn."""
import ctypes
import gc
import mmap
import os
import sys
import threading

import numpy as np


MiB = 2**20
STATM = "/proc/self/statm"  # size resident shared text lib data dt, in pages


def rss_bound(w, dtype):
    """The performance issue's bound on fastnn's peak RSS during fit, in bytes.

    dataset + 4 x parameters (themselves, the gradient, two moments) + 3 x one batch's
    activations + 64 MiB, where the dataset is X (n, d_0) and the one-hot Y (n, d_L), the parameters are the weights and biases
    (d_{l-1} d_l + d_l per layer), and one batch's activations are batch x (d_1 + ... + d_L)
    values, all in ``dtype``.

    Parameters
    ----------
    w : Workload
    dtype : numpy dtype or its name

    Returns
    -------
    int
    """
    itemsize = np.dtype(dtype).itemsize
    d = w.sizes
    dataset = w.n * (d[0] + d[-1])
    parameters = sum(d_in * d_out + d_out for d_in, d_out in zip(d[:-1], d[1:]))
    activations = min(w.batch, w.n) * sum(d[1:])
    return (dataset + 4 * parameters + 3 * activations) * itemsize + 64 * MiB


def _read_rss(fd):
    """Resident set size in bytes from an open /proc/self/statm (its second field, in pages)."""
    return int(os.pread(fd, 256, 0).split()[1]) * mmap.PAGESIZE


class PeakRSS:
    """``with PeakRSS() as rss:`` (or ``rss = PeakRSS().start()`` ... ``rss.stop()``, to end
    the sampling inside a block) -- ``rss.increase`` is then the peak resident set size of the
    process during the block minus its value on entry, in bytes, or None where /proc/self/statm
    is absent (getrusage's ru_maxrss is the process's lifetime peak, which cannot give the
    increase over a baseline, so there is no honest fallback).

    A daemon thread samples every ``interval`` seconds: it sleeps in between and holds the GIL
    only to read one small file. Still, its wake-ups slowed 1 ms epochs by 10-20%, so the
    bench keeps it out of timed epochs. Peaks shorter than the interval can be missed.

    Parameters
    ----------
    interval : float
        Seconds between samples.

    Attributes
    ----------
    increase : int or None
        Set when the block ends (by ``stop``; stopping again changes nothing).
    """

    def __init__(self, interval=1e-3):
        self.interval = interval
        self.increase = None
        self._fd = None

    def start(self):
        try:
            self._fd = os.open(STATM, os.O_RDONLY)
            self._base = self._peak = _read_rss(self._fd)
        except (OSError, ValueError, IndexError, AttributeError):  # no /proc (or no os.pread)
            self._close()
            return self
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="bench-peak-rss", daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._done.wait(self.interval):
            self._peak = max(self._peak, _read_rss(self._fd))

    def stop(self):
        if self._fd is not None:
            self._done.set()
            self._thread.join()
            self.increase = max(self._peak, _read_rss(self._fd)) - self._base
            self._close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
        return False

    def _close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def lifetime_peak_rss():
    """The process's peak RSS so far in bytes (getrusage's ru_maxrss), or None without ``resource``."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def release_free_memory():
    """Free unreachable objects and hand glibc's free heap pages back to the OS, so that the next
    run's allocations show as RSS growth instead of silently reusing pages an earlier run freed."""
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl): nothing to trim with
            pass


def fmt_mib(nbytes):
    return "n/a" if nbytes is None else f"{nbytes / MiB:.1f}"
