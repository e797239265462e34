"""Ctrl-C during a training call: the first press finishes the running epoch, the second
stops it at the next minibatch boundary.

An epoch is one compiled call that releases the GIL, and Python runs signal handlers only
between bytecodes, so a handler cannot reach a running epoch. CPython's C-level handler,
though, writes the signal's number to the wakeup fd (``signal.set_wakeup_fd``) at once:
``counting_interrupts`` points that fd at a pipe that a small thread reads (one per process,
blocked in ``os.read`` between calls), and the thread bumps the call's ``flags[0]``, which the epoch kernel loads before each batch and stops at when it
reaches ``flags[1]`` (kernels/guard.py; one load per batch, no system call in the kernel).
A Python handler for SIGINT counts the presses instead of raising; the previous handler
and wakeup fd come back when the block ends.

Outside the main thread (where Python allows neither) nothing is installed: the flags
stay 0, and Ctrl-C goes to the main thread as usual.
"""
import _signal
import contextlib
import os
import signal
import threading

import numpy as np

# The press that stops an epoch between batches (the first lets it finish).
STOP_AT = 2


class Presses:
    """The presses of Ctrl-C during a ``counting_interrupts`` block.

    Attributes
    ----------
    flags : ndarray of int64, shape (2,)
        The epoch kernels' stop flags: presses seen by the watcher thread, and ``STOP_AT``.
    count : int
        Presses the Python handler has run for: what the caller acts on between epochs.
        The handler runs in the main thread as soon as a compiled call returns, and only
        for presses inside the block; the watcher may see a press a little later, so a
        press just before the block ended may reach the next block's ``flags`` (it takes
        two such to stop an epoch).
    """

    def __init__(self):
        self.flags = np.array([0, STOP_AT], dtype=np.int64)
        self.count = 0

    def _handle(self, signum, frame):
        self.count += 1


class _Watcher:
    """The pipe and the thread that reads it, made once per process (a thread per training
    call cost 0.1-0.2 ms, a sixth of a digits epoch) and pointed at each call's flags."""

    def __init__(self):
        self.read_end, self.write_end = os.pipe()
        os.set_blocking(self.write_end, False)  # set_wakeup_fd wants it so: a C handler must not block
        self.flags = None  # the running call's, or None between calls
        self.pid = os.getpid()
        threading.Thread(target=self._watch, name="fastnn-interrupt", daemon=True).start()

    def _watch(self):
        while True:
            try:
                data = os.read(self.read_end, 64)
            except OSError:
                return
            presses = data.count(int(signal.SIGINT))
            flags = self.flags
            if presses and flags is not None:
                flags[0] += presses  # the only writer; the kernels only load it


_watcher = None
_watcher_lock = threading.Lock()


def _the_watcher():
    global _watcher
    with _watcher_lock:
        if _watcher is None or _watcher.pid != os.getpid():  # a forked child has no thread
            _watcher = _Watcher()
        return _watcher


@contextlib.contextmanager
def counting_interrupts():
    """``with counting_interrupts() as presses:`` -- Ctrl-C inside the block is counted in
    ``presses`` (a ``Presses``) rather than raised; the caller decides what it means."""
    presses = Presses()
    if threading.current_thread() is not threading.main_thread():
        yield presses
        return
    watcher = _the_watcher()
    # The C module's functions: ``signal``'s wrappers convert handlers to and from enums,
    # three quarters of this block's cost (13 us of every training call).
    previous_handler = _signal.getsignal(signal.SIGINT)
    previous_fd = None
    watcher.flags = presses.flags
    try:
        previous_fd = _signal.set_wakeup_fd(watcher.write_end)
        if previous_handler is not None:  # None: a handler not installed from Python, left alone
            _signal.signal(signal.SIGINT, presses._handle)
        yield presses
    finally:
        if previous_handler is not None:
            _signal.signal(signal.SIGINT, previous_handler)
        if previous_fd is not None:
            _signal.set_wakeup_fd(previous_fd)
        watcher.flags = None
