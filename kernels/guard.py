"""The tutorial face's guard on an epoch: a stop request read at each minibatch boundary,
and no update that would write a non-finite parameter or optimizer moment.

``fit_epoch`` and ``split_run`` take ``stop``, an int64 array (2,) (or None: the
scikit-learn face, whose code then compiles without any of this). Before each batch the
epoch reads ``stop[0]``, the presses of Ctrl-C that a watcher thread counts
(fastnn/_core/interrupt.py), with one atomic load, and returns when it reaches ``stop[1]``.
(An array, not a named tuple: Numba's dispatcher types a named tuple argument in Python,
about 19 us a call, 3% of a digits epoch.) Before each update it checks
the batch's loss and the update's result finite, and returns when either is not, so the
parameters stay those of the last finite step.

Checking every new value would cost a second pass of the update over four arrays. Instead
the epoch carries upper bounds of max |theta|, max |m| and max |v|, exact at its start and
advanced by each step from s = max |g| (one vectorised pass over the gradient, which also
catches a NaN or an infinity in it): while every bound stays below a quarter of the dtype's
largest number, no value of the step can overflow. Only when a bound fails does
``step_is_finite`` run the update on copies of the state, a chunk at a time, with the
update's own code (so its rounding), and check every value; after such a step the bounds are
taken exactly again. Normal training never gets near the bounds, and the checks only read:
an epoch's results are bit for bit those of the unguarded code.
"""
import numba.extending
import numpy as np

from ._jit import jit, limits_like
from .codes import ADAM, COMPLETE, DIVERGED, MOMENTUM, NESTEROV, SGD, STOPPED  # noqa: F401 (re-exported)
from .optimizers import _decayed_step, update
from .sync import load_acquire
from .views import bits as as_bits

@jit(inline="always")
def stop_requested(stop):
    """Whether the stop requests (stop[0], written by another thread) reached stop[1]."""
    return load_acquire(stop, 0) >= stop[1]


def max_abs(a, scratch):
    """max |a| as a float64 (0 for an empty array), infinity when ``a`` holds an infinity or
    a NaN; ``scratch``: an array of a's dtype, whose first element is overwritten.

    Compiled (the overload below) on the integer bit patterns with the sign cleared, which
    order as the magnitudes do (infinities and NaNs above every finite number): an integer
    maximum is associative, so it vectorises without fastmath, where a float reduction runs
    one element at a time (0.26 against 1.3 us over 4810 float32s).
    """
    m = np.max(np.abs(a), initial=0.0)
    return float(m) if np.isfinite(m) else np.inf


@numba.extending.overload(max_abs)
def _max_abs(a, scratch):
    # The integer type of a's width chosen here, at typing: a run-time ``a.itemsize`` test
    # compiled both views and both loops into every float32 and float64 fit.
    bits = np.int32 if a.dtype.bitwidth == 32 else np.int64
    magnitude = bits(np.iinfo(bits).max)  # every bit but the sign
    infinity = bits(0x7F800000) if bits is np.int32 else bits(0x7FF0000000000000)
    zero = bits(0)

    def impl(a, scratch):
        b = as_bits(a, bits)
        m = zero
        for i in range(b.size):
            x = b[i] & magnitude
            m = x if x > m else m
        if m >= infinity:
            return np.inf
        as_bits(scratch, bits)[0] = m
        return float(scratch[0])

    return impl


@jit
def exact_bounds(theta, optimizer, chunk):
    """(max |theta|, max |m|, max |v|) of the state as it is (``chunk``: scratch)."""
    return max_abs(theta, chunk), max_abs(optimizer.m, chunk), max_abs(optimizer.v, chunk)


@jit(inline="always")
def advanced_bounds(bounds, s, optimizer, decay, t, ulp):
    """Bounds of (max |theta|, max |m|, max |v|) after one step with a gradient of max |g|
    = s, from those before it (each rule of kernels/optimizers.py, element by element),
    widened by a few roundings (``ulp``: the dtype's machine epsilon)."""
    theta, m, v = bounds
    grow = 1.0 + 16.0 * ulp
    lrwd = 0.0 if decay is None else optimizer.lr * decay
    theta = theta * (1.0 + lrwd)
    lr = optimizer.lr
    if optimizer.code == SGD:
        theta += lr * s
    elif optimizer.code == MOMENTUM or optimizer.code == NESTEROV:
        m = (optimizer.mu * m + lr * s) * grow
        theta += optimizer.mu * m + lr * s if optimizer.code == NESTEROV else m
    elif optimizer.code == ADAM:
        lr_t = lr * np.sqrt(1.0 - optimizer.beta2**t) / (1.0 - optimizer.beta1**t)
        m = (optimizer.beta1 * m + (1.0 - optimizer.beta1) * s) * grow
        v = (optimizer.beta2 * v + (1.0 - optimizer.beta2) * (s * s)) * grow
        theta += lr_t * (m / optimizer.eps)  # |m_i| / (sqrt(v_i) + eps) <= |m_i| / eps
    return theta * grow, m, v


@jit(inline="always")
def within(bounds, s, optimizer, limit):
    """Whether no value of a step bounded by ``bounds`` (and |g| by s) can overflow."""
    theta, m, v = bounds
    ok = s < limit and theta < limit and m < limit and v < limit
    if optimizer.code == ADAM:  # g * g, and the quotient m / (sqrt(v) + eps)
        ok = ok and s * s < limit and m / optimizer.eps < limit
    return ok


@jit
def _chunk_is_finite(code, theta, g, m, v, lo, hi, optimizer, t, lrwd, chunk):
    """Whether the update of elements [lo, hi) leaves them all finite, computed on copies in
    ``chunk`` (3 C,) by the update's own functions: the decayed rule with ``lrwd`` = lr wd,
    the plain one with None (which prunes the decayed rules from the compilation, as
    ``optimizers.step`` does)."""
    C = chunk.size // 3
    for a in range(lo, hi, C):
        n = min(C, hi - a)
        tc = chunk[0:n]
        mc = chunk[C : C + n] if m.size > 0 else m
        vc = chunk[2 * C : 2 * C + n] if v.size > 0 else v
        for i in range(n):
            tc[i] = theta[a + i]
        if m.size > 0:
            for i in range(n):
                mc[i] = m[a + i]
        if v.size > 0:
            for i in range(n):
                vc[i] = v[a + i]
        if lrwd is not None:
            _decayed_step(code, tc, g[a : a + n], mc, vc, optimizer.lr, optimizer.mu, optimizer.beta1,
                          optimizer.beta2, optimizer.eps, t, lrwd)
        else:
            update(code, tc, g[a : a + n], mc, vc, optimizer.lr, optimizer.mu, optimizer.beta1, optimizer.beta2,
                   optimizer.eps, t)
        for i in range(n):
            if not np.isfinite(tc[i]):
                return False
        for i in range(mc.size if m.size > 0 else 0):
            if not np.isfinite(mc[i]):
                return False
        for i in range(vc.size if v.size > 0 else 0):
            if not np.isfinite(vc[i]):
                return False
    return True


@jit
def step_is_finite(theta, g, optimizer, t, decay, sizes, chunk):
    """Whether ``optimizers.step`` (update t, ``decay`` or None) would leave theta, m and v
    finite; nothing of the state is written. As ``update_decoupled`` walks the layers, so
    does this: decayed weights, plain biases. Offsets are np.int64, never a literal 0
    (kernels/_jit.py)."""
    m, v = optimizer.m, optimizer.v
    if decay is None:
        return _chunk_is_finite(optimizer.code, theta, g, m, v, np.int64(0), theta.size, optimizer, t, None, chunk)
    lrwd = optimizer.lr * decay
    off = np.int64(0)
    for layer in range(sizes.size - 1):
        nw, nb = sizes[layer] * sizes[layer + 1], sizes[layer + 1]
        if not _chunk_is_finite(optimizer.code, theta, g, m, v, off, off + nw, optimizer, t, lrwd, chunk):
            return False
        if not _chunk_is_finite(optimizer.code, theta, g, m, v, off + nw, off + nw + nb, optimizer, t, None, chunk):
            return False
        off += nw + nb
    return True


@jit
def check_step(loss, theta, g, optimizer, t, decay, sizes, bounds, chunk):
    """Before update t: (whether the batch's ``loss`` and the update's results are all
    finite, the bounds after it). ``bounds`` are those before it (``exact_bounds``);
    ``chunk`` (3 C,) scratch of theta's dtype."""
    if not np.isfinite(loss):
        return False, bounds
    s = max_abs(g, chunk)
    largest, eps = limits_like(theta)
    after = advanced_bounds(bounds, s, optimizer, decay, t, eps)
    if np.isfinite(s) and within(after, s, optimizer, 0.25 * largest):
        return True, after
    if not step_is_finite(theta, g, optimizer, t, decay, sizes, chunk):
        return False, bounds
    return True, (np.inf, np.inf, np.inf)  # taken exactly after the step (``refresh``)


@jit(inline="always")
def refresh(bounds, theta, optimizer, chunk):
    """The bounds after a step: exact again after a step that needed the full check."""
    if bounds[0] == np.inf:
        return exact_bounds(theta, optimizer, chunk)
    return bounds
