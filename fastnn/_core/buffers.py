"""Where the buffers the kernels stream through start: on a cache line, and the arrays one
loop reads and writes together at different offsets within a 4 KiB page.

NumPy puts every large array 16 bytes past a page boundary (glibc's header before the
block it maps), so all of them at the same place in a page. That costs the loops over
them twice (Adam reads theta, g, m and v and writes three of them, element by element):
- 16 bytes off a cache line, every 64-byte vector load and store spans two lines;
- at one offset modulo 4 KiB, a load of one array seems to the core to depend on the
  store to another just before it (it compares the addresses' low 12 bits first: "4K
  aliasing"), and waits for it.
Placed here instead, Adam over a wide network's parameters runs at the memory's speed,
where it ran at about 60% of it (docs/performance.md, "Buffers on cache lines";
``benchmarks/placement.py`` measures it). Where a buffer starts changes no result:
the kernels' loops and BLAS's products do the same operations in the same order wherever
their operands are.
"""
import ctypes

import numpy as np

CACHE_LINE = 64
PAGE = 4096

# The slots: a buffer's offset within a page is slot * PAGE / SLOTS. Arrays that one loop
# walks together take different slots. The update's four: theta, g, m, v.
SLOTS = 4
PARAMS, GRADIENT, FIRST_MOMENT, SECOND_MOMENT = range(SLOTS)
# A step's passes: a layer's activations and its deltas are walked together
# (``multiply_derivative``), and the batch gathered for the first layer is beside both.
ACTIVATIONS, DELTAS, BATCH = PARAMS, FIRST_MOMENT, SECOND_MOMENT


def placed(size, dtype, offset):
    """An uninitialised C-contiguous 1-D array of ``size`` elements of ``dtype`` that starts
    ``offset`` bytes past a page boundary (a view of a slightly larger block, which it keeps
    alive as its ``base``)."""
    dtype = np.dtype(dtype)
    nbytes = int(size) * dtype.itemsize
    block = np.empty(nbytes + PAGE, dtype=np.uint8)
    # The address through ctypes.c_char: a third of the cost of ``block.ctypes.data``, which
    # matters because a Workspace, made at every ``train`` call, places several buffers.
    start = (offset - ctypes.addressof(ctypes.c_char.from_buffer(block))) % PAGE
    return block[start : start + nbytes].view(dtype)


def empty(size, dtype, slot):
    """``placed`` at ``slot``: ``slot`` * 1 KiB past a page boundary."""
    return placed(size, dtype, slot * (PAGE // SLOTS))


def zeros(size, dtype, slot):
    """``empty``, filled with zeros."""
    out = empty(size, dtype, slot)
    out.fill(0)
    return out


def copy(a, dtype, slot):
    """A copy of the 1-D array-like ``a`` as ``dtype`` placed at ``slot`` (``empty``)."""
    a = np.asarray(a)
    out = empty(a.size, dtype, slot)
    out[...] = a.reshape(-1)
    return out
