"""Numba kernels of fastnn, installed as ``fastnn.kernels``.

Kernels import only numpy and numba and know nothing of the public API: they trust
their inputs (the callers in ``fastnn`` validate), allocate nothing in the hot path
and write into buffers the caller owns. Layers are described by an integer array of
sizes, so one compilation per dtype serves every architecture.
"""
