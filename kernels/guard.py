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
advanced by each step from an upper bound s of max |g| (infinite when g may hold a NaN or an
infinity): while every bound stays below a quarter of the dtype's largest number, no value of
the step can overflow. s is ``max_abs`` of the gradient (one vectorised pass over it), or,
in ``fit_epoch``, ``gradient_bound``, which reads a layer narrower than the batch and
bounds a wider one from its input and delta (an eighth of the memory at 4096 x 4096).
Only when a bound fails does ``step_is_finite`` run the update on copies of the state, a
chunk at a time, with the update's own code (so its rounding), and check every value;
after such a step the bounds are taken exactly again. Normal training never gets near the
bounds, and the checks only read: an epoch's results are bit for bit those of the
unguarded code.
"""
import numba.extending
import numpy as np

from ._jit import jit, limits_like
from .codes import ADAM, COMPLETE, DIVERGED, MOMENTUM, NESTEROV, SGD, STOPPED  # noqa: F401 (re-exported)
from .network import activation_offset
from .optimizers import _decayed_step, update
from .sync import load_acquire
from .views import bits as as_bits
from .views import view2d

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
def product_bound(A, D, chunk):
    """sum_k max_i |A_ki| max_j |D_kj| (float64) for A (n, d_in), D (n, d_out) C-contiguous:
    an upper bound of every |(A^T D)_ij|; infinite when A or D holds a NaN or an infinity."""
    total = 0.0
    for k in range(A.shape[0]):
        a, d = max_abs(A[k], chunk), max_abs(D[k], chunk)
        if a == np.inf or d == np.inf:
            return np.inf  # not a * d: inf * 0 is a NaN, which a maximum would drop
        total += a * d
    return total


@jit
def gradient_bound(X, acts, deltas, sizes, l2, theta_bound, grad, chunk):
    """An upper bound of max |g| for the gradient ``grad`` that ``network.backward_layers``
    (or ``dropout.backward_dropout``) has just written for the batch X (n, d_0) from
    ``acts`` and ``deltas`` with the coefficient ``l2``; infinite when g may hold a NaN or
    an infinity. ``theta_bound``: an upper bound of max |theta|; ``chunk``: scratch.

    A layer's weight gradient dW = A^T D + l2 W has d_in d_out values; its input A and delta
    D have n (d_in + d_out). Where that is less (a layer wider than the batch: 16 MB against
    134 MB for L's 4096 x 4096 in float64), the layer is bounded instead of read:
        |dW_ij| <= sum_k |A_ki| |D_kj| + |l2| |W_ij|
                <= sum_k max_i |A_ki| max_j |D_kj| + |l2| theta_bound,
    widened for the roundings of the product (gamma_n, in any order of summation, with or
    without FMA), of the sum and of this bound's own float64 arithmetic. Finite operands
    under that bound cannot overflow the product, so a finite bound also says dW is finite.
    The biases' gradients (column sums of D) and the narrower layers are read exactly, in
    runs of consecutive blocks.
    """
    n = X.shape[0]
    _, eps = limits_like(grad)
    widen = 1.0 + 2.0 * (n + 2) * eps
    s = 0.0
    exact_from = np.int64(0)  # the start of the blocks not yet read
    off = np.int64(0)
    for layer in range(sizes.size - 1):
        d_in, d_out = sizes[layer], sizes[layer + 1]
        nw = d_in * d_out
        if n * (d_in + d_out) < nw:
            s = max(s, max_abs(grad[exact_from:off], chunk))
            D = view2d(deltas, activation_offset(sizes, layer, n), n, d_out)
            if layer == 0:
                bound = product_bound(X, D, chunk)
            else:
                bound = product_bound(view2d(acts, activation_offset(sizes, layer - 1, n), n, d_in), D, chunk)
            s = max(s, widen * (bound + abs(l2) * theta_bound))
            exact_from = off + nw  # the layer's biases are read with what follows
        off += nw + d_out
    return max(s, max_abs(grad[exact_from:off], chunk))


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
def check_step(loss, s, theta, g, optimizer, t, decay, sizes, bounds, chunk):
    """Before update t with the gradient g: (whether the batch's ``loss`` and the update's
    results are all finite, the bounds after it). ``s``: an upper bound of max |g|
    (``max_abs`` or ``gradient_bound``); ``bounds`` are those before the update
    (``exact_bounds``); ``chunk`` (3 C,) scratch of theta's dtype."""
    if not np.isfinite(loss):
        return False, bounds
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
