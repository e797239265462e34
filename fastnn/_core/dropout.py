"""Dropout rates, their integer thresholds and the mask stream, on the Python side.

The kernel (``fastnn.kernels.dropout``) keeps a unit when the top 32 bits of
``random_bits(key, counter)`` are >= round(p * 2^32); ``stream_bits`` below is the same
generator in NumPy, so ``fastnn.reference`` draws bit-identical masks.
"""
import numbers

import numpy as np

from .validation import check_float

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
TWO_32 = 4294967296.0


def rates(dropout, n_hidden, name="dropout"):
    """``dropout`` (one rate, or one per hidden layer) -> a tuple of n_hidden rates in [0, 1)."""
    if dropout is None:
        dropout = 0.0
    if isinstance(dropout, numbers.Real) and not isinstance(dropout, bool):
        values = (check_float(name, dropout, 0.0, 1.0, low_open=False, high_open=True),) * n_hidden
        if n_hidden == 0 and dropout > 0:
            raise ValueError(f"{name} needs hidden layers to drop units from; this network has none (got {dropout}).")
        return values
    if isinstance(dropout, (str, bytes)) or not hasattr(dropout, "__len__"):
        raise TypeError(f"{name} must be a float in [0, 1) or a sequence of one per hidden layer; got {dropout!r}.")
    if len(dropout) != n_hidden:
        raise ValueError(f"{name} must have one rate per hidden layer ({n_hidden}); got {len(dropout)}: {list(dropout)!r}.")
    return tuple(check_float(f"{name}[{i}]", p, 0.0, 1.0, low_open=False, high_open=True) for i, p in enumerate(dropout))


def thresholds(rates_):
    """The kernel's keep thresholds, round(p * 2^32) as int64 (the effective rate is threshold / 2^32)."""
    return np.array([int(round(p * TWO_32)) for p in rates_], dtype=np.int64)


def stream_key(seed, rng):
    """A mask stream's key: from an integer ``seed`` (a SeedSequence of (seed, "drop"), so a
    seeded run is reproducible and does not touch the shuffling stream), else (seed None)
    one draw from the RandomState ``rng``."""
    if seed is not None:
        return int(np.random.SeedSequence([int(seed), 0x64726F70]).generate_state(1, np.uint64)[0])
    return int(rng.randint(0, 2**62, dtype=np.int64))


def new_key(model):
    """The mask stream's key of a ``fastnn.NeuralNetwork``: from its seed, else its RNG."""
    return stream_key(model.seed, model._rng)


def kernel_thresholds(thresholds):
    """``thresholds``, or None when no layer drops anything: the kernels then compile and
    run without dropout's code."""
    return None if thresholds is None or not np.asarray(thresholds).any() else thresholds


def stream_bits(key, counter, size):
    """Elements counter .. counter + size - 1 of the stream ``key``: (size,) uint64."""
    z = np.uint64(key) + (np.uint64(counter) + np.arange(size, dtype=np.uint64)) * _GOLDEN  # wraps mod 2^64
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def keep_mask(key, counter, threshold, shape):
    """Boolean mask of the kept units of a (n, d) block starting at ``counter``."""
    n = int(np.prod(shape))
    return ((stream_bits(key, counter, n) >> np.uint64(32)) >= np.uint64(threshold)).reshape(shape)
