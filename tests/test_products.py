"""Wide float32 steps on oneDNN (fastnn/_core/products.py): the router behind the kernels'
``fastnn_sgemm`` (kernels/blas.py), the measured and kept choice, and fits through it."""
import contextlib
import ctypes
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastnn
from fastnn._core import onednn, products, threads
from fastnn.kernels import blas
from fastnn.kernels.cblas import NO_TRANS, ROW_MAJOR, TRANS

i64, f32, p = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
CBLAS_SGEMM = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, ctypes.c_int, i64, i64, i64, f32, p, i64, p, i64, f32,
                               p, i64)
DNNL_SGEMM = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char, ctypes.c_char, i64, i64, i64, f32, p, i64, p, i64, f32, p, i64)
ONEDNN_ROUTED = blas.ROUTED and onednn.library_path() is not None
needs_onednn = pytest.mark.skipif(not ONEDNN_ROUTED, reason="oneDNN (the fastnn[bf16] extra) is not installed")


def _openblas_sgemm():
    lib, prefix, _ = blas._numpy_openblas()
    return ctypes.cast(getattr(lib, f"{prefix}cblas_sgemm64_"), ctypes.c_void_p).value


def _as_matrix(address, rows, cols, ld):
    return np.ctypeslib.as_array(ctypes.cast(address, ctypes.POINTER(ctypes.c_float)), (rows, ld))[:, :cols]


@pytest.mark.skipif(not blas.NUMPY_OPENBLAS, reason="the router sits in front of NumPy's OpenBLAS")
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_router_calls_openblas_with_an_empty_slot_and_the_slot_s_function_otherwise(ta, tb, rng):
    slot = ctypes.c_void_p(0)
    router = blas._router(_openblas_sgemm(), slot)
    if router is None:
        pytest.skip("this LLVM reads no opaque pointers")
    seen = []

    def stand_in(transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
        # dnnl_sgemm's contract: row-major, 'N' or 'T'; computed here with NumPy.
        seen.append((transa, transb, m, n, k, lda, ldb, ldc))
        a = _as_matrix(A, k if transa == b"T" else m, m if transa == b"T" else k, lda)
        b = _as_matrix(B, n if transb == b"T" else k, k if transb == b"T" else n, ldb)
        c = _as_matrix(C, m, n, ldc)
        product = alpha * ((a.T if transa == b"T" else a) @ (b.T if transb == b"T" else b))
        c[...] = product if beta == 0 else product + beta * c  # beta = 0: C is not read
        return 0

    m, k, n = 5, 3, 4
    A = rng.random((k, m) if ta else (m, k), dtype=np.float32)
    B = rng.random((n, k) if tb else (k, n), dtype=np.float32)
    expected = (A.T if ta else A) @ (B.T if tb else B)
    call = CBLAS_SGEMM(router)
    for use_stand_in in (False, True):
        keep = DNNL_SGEMM(stand_in)
        slot.value = ctypes.cast(keep, ctypes.c_void_p).value if use_stand_in else None
        C = np.full((m, n), np.nan, np.float32)
        call(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, m, n, k, 1.0, A.ctypes.data, A.shape[1],
             B.ctypes.data, B.shape[1], 0.0, C.ctypes.data, n)
        np.testing.assert_allclose(C, expected, rtol=1e-6)
        assert len(seen) == use_stand_in
    assert seen == [(b"T" if ta else b"N", b"T" if tb else b"N", m, n, k, A.shape[1], B.shape[1], n)]


@pytest.mark.skipif(not blas.NUMPY_OPENBLAS, reason="the router sits in front of NumPy's OpenBLAS")
def test_router_redoes_a_product_onednn_refused_on_openblas(rng):
    slot = ctypes.c_void_p(0)
    router = blas._router(_openblas_sgemm(), slot)
    if router is None:
        pytest.skip("this LLVM reads no opaque pointers")
    refused = []
    keep = DNNL_SGEMM(lambda *args: refused.append(args[:2]) or 2)  # 2: dnnl_invalid_arguments
    slot.value = ctypes.cast(keep, ctypes.c_void_p).value
    A, B = rng.random((4, 3), dtype=np.float32), rng.random((3, 5), dtype=np.float32)
    C = np.full((4, 5), np.nan, np.float32)
    CBLAS_SGEMM(router)(ROW_MAJOR, NO_TRANS, NO_TRANS, 4, 5, 3, 1.0, A.ctypes.data, 3, B.ctypes.data, 5, 0.0,
                        C.ctypes.data, 5)
    assert refused == [(b"N", b"N")]
    np.testing.assert_allclose(C, A @ B, rtol=1e-6)


@pytest.fixture
def fresh_choice(monkeypatch, tmp_path):
    """products with no decision made, its file in tmp_path, oneDNN's loading stubbed."""
    monkeypatch.setattr(products, "_decisions", {})
    monkeypatch.setattr(products, "_address", None)
    monkeypatch.setattr(blas, "ROUTED", True)
    monkeypatch.setattr(onednn, "library_path", lambda: str(tmp_path / "libdnnl.so"))
    monkeypatch.setattr(products, "_key", lambda path: {"cpu": "this one", "threads": 2})
    monkeypatch.setattr(products, "_file", lambda key: tmp_path / "choice.json")
    monkeypatch.setattr(products, "dnnl_sgemm", lambda path=None: ctypes.cast(1234, ctypes.c_void_p))
    monkeypatch.delenv("FASTNN_BLAS", raising=False)
    return tmp_path / "choice.json"


@pytest.mark.parametrize("times,chosen", [((1.0, 0.9), "onednn"), ((1.0, 0.99), "openblas"), ((1.0, 1.2), "openblas")])
def test_the_choice_is_measured_once_and_kept_beside_the_kernels(fresh_choice, monkeypatch, times, chosen):
    calls = []
    monkeypatch.setattr(products, "measure", lambda path=None: calls.append(1) or times)
    made = products.decision()
    assert made["library"] == chosen and calls == [1]
    assert f"oneDNN took {times[1] / times[0]:.2f}x OpenBLAS's time" in made["why"]
    assert json.loads(fresh_choice.read_text())["library"] == chosen
    monkeypatch.setattr(products, "_decisions", {})  # a later process: reads the file, measures nothing
    assert products.decision()["library"] == chosen and calls == [1]
    assert products.describe().startswith("oneDNN's dnnl_sgemm" if chosen == "onednn" else "NumPy's OpenBLAS")


def test_a_kept_choice_for_another_key_is_measured_again(fresh_choice, monkeypatch):
    fresh_choice.write_text(json.dumps({"library": "onednn", "key": {"cpu": "another one", "threads": 2}, "why": "x"}))
    monkeypatch.setattr(products, "measure", lambda path=None: (1.0, 1.5))
    assert products.decision()["library"] == "openblas"


def test_without_a_measurement_info_says_so_and_measures_nothing(fresh_choice, monkeypatch):
    monkeypatch.setattr(products, "measure", lambda path=None: pytest.fail("measured"))
    assert "not measured yet" in products.describe()


def test_fastnn_blas_onednn_chooses_it_without_measuring(fresh_choice, monkeypatch):
    monkeypatch.setenv("FASTNN_BLAS", "onednn")
    monkeypatch.setattr(products, "measure", lambda path=None: pytest.fail("measured"))
    assert products.decision() == {"library": "onednn", "why": "FASTNN_BLAS=onednn"}


def test_a_onednn_that_cannot_load_leaves_openblas_and_says_why(fresh_choice, monkeypatch):
    def missing(path=None):
        raise OSError("libtbb.so.12: cannot open shared object file")

    monkeypatch.setattr(products, "dnnl_sgemm", missing)
    monkeypatch.setattr(products, "measure", lambda path=None: (1.0, 0.5))
    assert products.decision()["library"] == "openblas"
    assert "oneDNN could not be loaded: libtbb.so.12" in products.describe()


def test_a_wide_float32_call_fills_the_slot_while_it_runs(fresh_choice, monkeypatch):
    monkeypatch.setattr(products, "measure", lambda path=None: (1.0, 0.5))
    monkeypatch.setattr(onednn, "threads_limited", contextlib.nullcontext)
    with products.wide_step(np.float32):
        with products.wide_step(np.float32):  # another model's call, overlapping
            assert blas.ONEDNN_SLOT.value == 1234
        assert blas.ONEDNN_SLOT.value == 1234
    assert blas.ONEDNN_SLOT.value is None


def test_float64_calls_ask_for_no_choice(fresh_choice, monkeypatch):
    monkeypatch.setattr(products, "measure", lambda path=None: pytest.fail("measured"))
    with products.wide_step(np.float64):
        assert blas.ONEDNN_SLOT.value is None
    assert products._decisions == {}


# -- fits through oneDNN (where it is installed) --------------------------------------------
def _wide_fit(seed=0):
    """A float32 fit with steps above threads.SMALL_STEP_MACS (256 x 30k multiply-adds)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((512, 100)).astype(np.float32)
    y = rng.integers(0, 10, 512)
    nn = fastnn.NeuralNetwork(100, [128, 128], 10, "categorical_crossentropy", activation="relu", dtype=np.float32,
                              seed=0)
    fastnn.Trainer(nn, "categorical_crossentropy").train(X, y, None, None, 2, 1e-3, batch_size=256, optimizer="adam")
    return np.concatenate([w.ravel() for w in nn.weights + nn.biases])


@pytest.fixture
def counted_onednn(monkeypatch):
    """Wide float32 calls go to oneDNN through a wrapper that lists each product's
    (transa, transb, m, n, k); returns the list."""
    dnnl = products.dnnl_sgemm()
    dnnl.argtypes = DNNL_SGEMM._argtypes_
    shapes = []

    def counted(transa, transb, m, n, k, *rest):
        shapes.append((transa, transb, m, n, k))
        return dnnl(transa, transb, m, n, k, *rest)

    keep = DNNL_SGEMM(counted)
    monkeypatch.setattr(products, "_decisions", {threads.budget(): {"library": "onednn", "why": "this test"}})
    monkeypatch.setattr(products, "_address", ctypes.cast(keep, ctypes.c_void_p).value)
    yield shapes
    del keep


@needs_onednn
def test_a_wide_float32_fit_on_onednn_matches_openblas_and_repeats_exactly(counted_onednn, monkeypatch):
    on_onednn = _wide_fit()
    assert blas.ONEDNN_SLOT.value is None  # emptied after the training call
    # 2 epochs x 2 steps x (3 forward, 3 weight-gradient and 2 delta products)
    assert len(counted_onednn) == 32
    assert (b"N", b"N", 256, 128, 100) in counted_onednn and (b"T", b"N", 100, 128, 256) in counted_onednn
    np.testing.assert_array_equal(on_onednn, _wide_fit())
    monkeypatch.setattr(products, "_decisions", {threads.budget(): {"library": "openblas", "why": "this test"}})
    np.testing.assert_allclose(on_onednn, _wide_fit(), rtol=1e-4, atol=1e-5)
    assert len(counted_onednn) == 64  # the OpenBLAS fit made none


@needs_onednn
def test_the_sklearn_face_s_wide_float32_steps_go_there_too(counted_onednn):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((512, 100)).astype(np.float32), rng.integers(0, 10, 512)
    clf = fastnn.MLPClassifier(hidden_layer_sizes=(128, 128), batch_size=256, max_iter=2, random_state=0, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged in 2 iterations: the point is the products
        clf.fit(X, y)
    assert clf.coefs_[0].dtype == np.float32
    assert (b"N", b"N", 256, 128, 100) in counted_onednn and blas.ONEDNN_SLOT.value is None


@pytest.mark.skipif(not blas.onednn_beside(), reason="oneDNN is not installed")
def test_fastnn_blas_numpy_keeps_the_router_out():
    code = "import fastnn.kernels.blas as b; print(b.ROUTED)"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, FASTNN_BLAS="numpy"), capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"
