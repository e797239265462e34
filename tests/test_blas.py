"""The kernels' matrix products (kernels/blas.py): NumPy's OpenBLAS through two symbols the
cached kernels name, or adapters over Numba's np.dot (SciPy's BLAS) where NumPy has none."""
import glob
import json
import os
import subprocess
import sys
import warnings

import numba
import numpy as np
import pytest

import fastnn
from fastnn.kernels import blas

NUMPY_HAS_OPENBLAS = bool(glob.glob(os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs",
                                                 "lib*openblas*")))


@numba.njit
def _matmul(A, B, C):
    blas.matmul(A, B, C)


@numba.njit
def _dot(x, y):
    return blas.dot(x, y)


def _layouts(A):
    """A as C-ordered, as a transposed view (F-ordered) and as a strided view."""
    wide = np.zeros((A.shape[0], 2 * A.shape[1] + 1), A.dtype)
    wide[:, : 2 * A.shape[1] : 2] = A
    return {"C": A, "F": np.asfortranarray(A), "strided": wide[:, : 2 * A.shape[1] : 2]}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m,k,n", [(5, 3, 4), (1, 7, 3), (6, 1, 1), (1, 1, 1), (3, 0, 2), (0, 3, 2), (33, 70, 9)])
def test_matmul_matches_numpy_in_every_layout(m, k, n, dtype, rng):
    A, B = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    expected = A.astype(np.float64) @ B.astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a_name, a in _layouts(A).items():
        for b_name, b in _layouts(B).items():
            C = np.full((m, n), np.nan, dtype)
            _matmul(a, b, C)
            np.testing.assert_allclose(C, expected, rtol=tol, atol=tol, err_msg=f"A {a_name}, B {b_name}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_writes_a_row_slice_of_a_larger_output(dtype, rng):
    A, B = rng.standard_normal((4, 6)).astype(dtype), rng.standard_normal((6, 3)).astype(dtype)
    out = np.full((4, 5), -7.0, dtype)
    _matmul(A, B, out[:, 1:4])  # rows 5 apart: the leading dimension is 5, not 3
    np.testing.assert_allclose(out[:, 1:4], A @ B, rtol=1e-5)
    assert (out[:, [0, 4]] == -7.0).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dot(dtype, rng):
    x = rng.standard_normal(37).astype(dtype)
    assert _dot(x, x) == pytest.approx(float(x.astype(np.float64) @ x), rel=1e-5)
    assert _dot(x[::3], x[::3]) == pytest.approx(float(x[::3].astype(np.float64) @ x[::3]), rel=1e-5)
    assert _dot(x[:0], x[:0]) == 0.0


def test_matmul_compiles_into_branchy_callers_without_numba_warnings():
    # Inlined at Numba's IR level, matmul's layout tests made Numba's SSA pass warn
    # ("NumbaIRAssumptionWarning ... please report") 18 times in a user's first fit.
    @numba.njit
    def backward_like(X, W, D, D_prev, n_layers):
        for layer in range(n_layers - 1, -1, -1):
            if layer > 0:
                blas.matmul(X.T, D, W)
                blas.matmul(D, W.T, D_prev)
            else:
                blas.matmul(X.T, D, W)

    X, D, W, D_prev = np.ones((4, 3)), np.ones((4, 2)), np.zeros((3, 2)), np.zeros((4, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backward_like(X, W, D, D_prev, 2)
    assert not [w for w in caught if issubclass(w.category, numba.core.errors.NumbaPedanticWarning)]
    np.testing.assert_array_equal(W, X.T @ D)
    np.testing.assert_array_equal(D_prev, D @ W.T)


@pytest.mark.skipif(not NUMPY_HAS_OPENBLAS, reason="this NumPy bundles no OpenBLAS")
def test_the_kernels_call_numpys_openblas():
    assert blas.NUMPY_OPENBLAS
    assert blas.library().startswith("NumPy's OpenBLAS (OpenBLAS 0.")


# The same fit in a process whose kernels call SciPy's BLAS: it loads the kernels the suite's
# process compiled (the cache names the symbols, not a library) and trains to the same model.
FALLBACK_FIT = """
import json, sys, numpy as np, fastnn
from fastnn.kernels import blas, epoch
rng = np.random.default_rng(0)
X, y = rng.standard_normal((90, 8)), rng.integers(0, 3, 90)
nn = fastnn.NeuralNetwork(8, 16, 3, "categorical_crossentropy", seed=0)
fastnn.Trainer(nn, "categorical_crossentropy").train(X, y, None, None, 3, 0.1, batch_size=32, optimizer="adam")
theta = np.concatenate([p.ravel() for p in nn.weights + nn.biases])
print(json.dumps({"library": blas.library(), "theta": theta.tolist(),
                  "misses": sum(epoch.fit_epoch.stats.cache_misses.values())}))
"""


def _fit_here():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((90, 8)), rng.integers(0, 3, 90)
    nn = fastnn.NeuralNetwork(8, 16, 3, "categorical_crossentropy", seed=0)
    fastnn.Trainer(nn, "categorical_crossentropy").train(X, y, None, None, 3, 0.1, batch_size=32, optimizer="adam")
    return np.concatenate([p.ravel() for p in nn.weights + nn.biases])


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="the kernels run as Python")
def test_scipy_fallback_runs_the_cached_kernels_to_the_same_model():
    here = _fit_here()  # compiles (or loads) the kernels of this fit before the other process looks
    env = dict(os.environ, FASTNN_BLAS="scipy")
    out = subprocess.run([sys.executable, "-c", FALLBACK_FIT], env=env, capture_output=True, text=True, check=True)
    there = json.loads(out.stdout.strip().splitlines()[-1])
    assert there["library"] == "SciPy's BLAS through Numba's np.dot (FASTNN_BLAS=scipy)"
    assert there["misses"] == 0, "the fallback recompiled fit_epoch instead of loading it"
    np.testing.assert_allclose(np.asarray(there["theta"]), here, rtol=1e-12, atol=1e-14)


def test_an_unknown_fastnn_blas_value_warns_and_keeps_the_default():
    code = "import fastnn.kernels.blas as b; print(b.library())"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, FASTNN_BLAS="mkl"), capture_output=True,
                         text=True, check=True)
    assert "FASTNN_BLAS='mkl' is not 'numpy', 'scipy' or 'onednn'" in out.stderr
    expected = "NumPy's OpenBLAS" if NUMPY_HAS_OPENBLAS else "SciPy's BLAS"
    assert out.stdout.startswith(expected)
