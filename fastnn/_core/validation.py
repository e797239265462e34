"""Input checks shared by every public entry point: clear errors before any kernel runs.

Messages say what was wrong, what was expected and what was given.
"""
import decimal
import math
import numbers
import sys

import numpy as np


def issparse(X):
    """Whether X is a SciPy sparse matrix or array, without importing SciPy: when
    ``scipy.sparse`` was never imported, nothing is one (a script that uses NumPy alone
    saves the import, 0.1 s)."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(X)


# What an object array may hold: real numbers (not strings, None, complex or containers).
_REAL_OBJECTS = (numbers.Real, decimal.Decimal, np.bool_)


def check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {valid}; got {value!r}.")
    return value


def check_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {minimum}; got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value}.")
    return int(value)


def check_float(name, value, low=0.0, high=np.inf, low_open=True, high_open=False):
    """A real number in the interval given (open or closed at each end)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__} {value!r}.")
    value = float(value)
    lo_ok = value > low if low_open else value >= low
    hi_ok = value < high if high_open else value <= high
    if not (math.isfinite(value) and lo_ok and hi_ok):  # math's: a ufunc on one float costs 1 us
        # An infinite end is open whatever the flag: the number must be finite.
        interval = (f"{'(' if low_open or np.isinf(low) else '['}{low}, "
                    f"{high}{')' if high_open or np.isinf(high) else ']'}")
        raise ValueError(f"{name} must be a finite number in {interval}; got {value!r}.")
    return value


def check_dtype(dtype):
    # A name, a scalar type or a dtype. np.dtype(None) is float64 and np.dtype(np.float64(2.0))
    # reads a number's type: neither is a dtype the user meant, so both are rejected.
    try:
        dt = np.dtype(dtype) if isinstance(dtype, (str, type, np.dtype)) else None
    except TypeError:
        dt = None
    if dt is None or dt.name not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64; got {dtype!r}.")
    return dt


def _as_numeric(name, a):
    if a is None:
        raise TypeError(f"{name} must be an array of numbers; got None.")
    if hasattr(a, "toarray") or hasattr(a, "tocsr"):
        raise TypeError(f"{name} is a sparse matrix; only the training and validation inputs may be sparse "
                        "(use .toarray()).")
    try:
        arr = np.asarray(a)
    except ValueError as err:  # ragged nested lists
        raise ValueError(f"{name} must be a rectangular array of numbers; {err}") from None
    kind = arr.dtype.kind
    if kind == "O":
        # float() would parse strings and turn None into NaN: accept real numbers only.
        bad = [x for x in arr.flat if not isinstance(x, _REAL_OBJECTS)][:1]
        if bad:
            bad = bad[0]
            raise TypeError(f"{name} must hold numbers; got an object array holding {type(bad).__name__} {bad!r:.50}.")
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must hold numbers; got an object array that does not convert to float.") from None
        except OverflowError:
            raise ValueError(f"{name} holds a number too large for float64; expected finite values.") from None
    elif kind == "c":
        raise TypeError(f"{name} must be real; got a complex array ({arr.dtype}).")
    elif kind not in "biuf":
        raise TypeError(f"{name} must hold numbers; got an array of dtype {arr.dtype}.")
    return arr


def _finalise(name, arr, dtype):
    """Cast once to a writable C-contiguous array of ``dtype`` and reject NaN/inf."""
    if arr.dtype == dtype and arr.flags.c_contiguous:
        out = arr  # as it is (np.errstate alone costs more than the rest of a call's checks)
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is reported just below
            out = np.asarray(arr, dtype=dtype, order="C")
    if not out.flags.writeable:  # kernels take writable arrays only: one signature per dtype
        out = out.copy()
    if not np.isfinite(out).all():
        bad = np.argwhere(~np.isfinite(out))[0]
        raise ValueError(
            f"{name} contains NaN or infinity (first at index {tuple(int(i) for i in bad)}, "
            f"after conversion to {np.dtype(dtype).name}); expected finite values."
        )
    return out


def check_X(X, n_features, dtype, name="X"):
    """X as a finite (n, n_features) C-contiguous array of ``dtype``, n >= 1."""
    arr = _as_numeric(name, X)
    if arr.ndim != 2:
        hint = " (use X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for one sample)" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, {n_features}); got an array of shape {arr.shape}{hint}.")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); expected at least one sample.")
    if arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features per sample; the network's input_size is {n_features}.")
    return _finalise(name, arr, dtype)


def check_X_or_sparse(X, n_features, dtype, name="X"):
    """``check_X``, or a SciPy sparse matrix as a finite CSR matrix of ``dtype`` with
    sorted indices (CSC and COO are converted; duplicate entries are summed)."""
    if not issparse(X):
        return check_X(X, n_features, dtype, name)
    import scipy.sparse as sp

    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] != n_features:
        raise ValueError(f"{name} is a sparse matrix of shape {X.shape}; expected (n_samples >= 1, {n_features}).")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers; got a sparse matrix of dtype {X.dtype}.")
    csr = sp.csr_matrix(X, dtype=dtype, copy=True)
    csr.sum_duplicates()
    # The kernels index with int64: converted once here rather than at every epoch.
    csr.indices, csr.indptr = csr.indices.astype(np.int64), csr.indptr.astype(np.int64)
    if not np.isfinite(csr.data).all():
        raise ValueError(f"{name} contains NaN or infinity (after conversion to {np.dtype(dtype).name}); "
                         "expected finite values.")
    return csr


def check_sample_weight(sample_weight, n_samples, dtype):
    """Sample weights as a (n_samples,) array of ``dtype``, finite and > 0. (A zero weight
    would let a shuffled minibatch weigh nothing at all: leave such rows out instead.)"""
    sw = _finalise("sample_weight", _as_numeric("sample_weight", sample_weight), dtype)
    if sw.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), one weight per training sample; "
                         f"got shape {sw.shape}.")
    if not sw.min() > 0:
        raise ValueError(f"sample_weight must be > 0 (leave out the rows that should not count); "
                         f"got values in [{sw.min()}, {sw.max()}].")
    return sw


def _one_hot(name, labels, n_outputs, dtype):
    """Class labels (n,) in [0, n_outputs) as one-hot rows (n, n_outputs) of ``dtype``."""
    if labels.dtype.kind not in "iu":  # floats (or bools): finite, whole numbers?
        labels = _finalise(name, labels, np.float64)
        whole = not np.any(labels != np.round(labels))
    else:  # integers: nothing to cast, nothing fractional or infinite to look for
        whole = True
    if not whole or labels.min() < 0 or labels.max() >= n_outputs:
        raise ValueError(
            f"{name} as class labels must be integers in [0, {n_outputs}) (output_size = {n_outputs}); "
            f"got values in [{labels.min()}, {labels.max()}]."
        )
    n = labels.shape[0]
    onehot = np.zeros((n, n_outputs), dtype=dtype)
    onehot[np.arange(n), labels.astype(np.intp, copy=False)] = 1
    return onehot


def check_y(y, n_samples, loss_func, n_outputs, dtype, name="y"):
    """Targets as a finite (n_samples, n_outputs) array of ``dtype``.

    categorical_crossentropy takes one-hot rows or integer class labels (n_samples,)
    in [0, n_outputs); the others take (n_samples, n_outputs), or (n_samples,) when
    n_outputs is 1. log_loss targets lie in [0, 1].
    """
    arr = _as_numeric(name, y)
    if arr.ndim == 0 or arr.ndim > 2:
        raise ValueError(f"{name} must be 1-D or 2-D; got an array of shape {arr.shape}.")
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name} has {arr.shape[0]} rows but X has {n_samples}; expected one target row per sample.")
    if loss_func == "categorical_crossentropy" and arr.ndim == 1:
        return _one_hot(name, arr, n_outputs, dtype)
    if arr.ndim == 1:
        if n_outputs != 1:
            raise ValueError(
                f"{name} is 1-D but the network has {n_outputs} outputs; expected shape ({n_samples}, {n_outputs})"
                + (" or integer class labels." if loss_func == "categorical_crossentropy" else ".")
            )
        arr = arr.reshape(-1, 1)
    if arr.shape[1] != n_outputs:
        raise ValueError(f"{name} has {arr.shape[1]} columns; the network's output_size is {n_outputs}.")
    out = _finalise(name, arr, dtype)
    if loss_func in ("log_loss", "categorical_crossentropy") and (out.min() < 0 or out.max() > 1):
        raise ValueError(
            f"{name} for {loss_func} must lie in [0, 1] (probabilities or 0/1 labels); "
            f"got values in [{out.min()}, {out.max()}]."
        )
    return out
