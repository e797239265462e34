"""compute_dtype='bfloat16': the kernels (oneDNN's bf16 GEMM) against the reference's
bfloat16 mode, the rounding itself, gradients, model files and the error paths.

Tolerance, kernels vs ``fastnn.reference`` in bfloat16 mode (u = 2^-24, float32's unit
roundoff; one bfloat16 ulp is at most 2^-7 relative, 8 significant bits):

* A product with the same bfloat16 operands: each term a_k b_k is exact in float32
  (8 + 8 significant bits), so the two sides differ only in the order in which they
  add K terms in float32: |C_kernel - C_ref| <= 2 gamma_K (|A~| |B~|) elementwise,
  gamma_K = K u / (1 - K u) (each side at most gamma_K from the exact sum). Bias adds
  and ReLU/identity keep the difference plus one rounding of the result (2u |Z|).
* Rounding a float32 value known to within e to bfloat16 is monotone, so the rounded
  value is within max(|r(a + e) - r(a)|, |r(a - e) - r(a)|) of the reference's r(a):
  0 unless a lies within e of a rounding midpoint, one bfloat16 ulp when it does.
  Carried layer by layer, this is an exact elementwise bound on a forward pass
  (``forward_bound``); a product of unrounded float32 operands misses it by ~2^-9.
* Training compounds these: a flip changes a gradient product by <= 2^-7 of
  |A~|^T |D~| per flipped operand, and Adam's first steps (about lr sign(g)) can turn
  a gradient that is ~0 either way, so no useful worst case exists over epochs. Flips
  need a value within ~sqrt(K) u of a rounding midpoint, so they are rare, and what
  remains is summation order, ~sqrt(K) u ~ 1e-7 relative. Measured here: losses 1e-7
  relative after 3 epochs (SGD, momentum, Adam), one SGD step's gradient 2.4e-8
  normwise, parameters after 3 Adam epochs 1e-5 lr. The tests allow 1e-5 on losses and
  on one step's gradient (normwise) and 1e-3 lr on parameters: 100x headroom, while
  float32 products (no rounding) differ by ~2^-9 ~ 2e-3 and fail them.

Dropout draws the float32 path's masks (the same stream and counters), so it adds no
rounding of its own: the kernel and the reference scale f(Z) by the same float32 M and
round the same M f(Z), and the gates M f'(Z) are float32 on both sides. The tolerances
above stand; measured with dropout: losses 1.4e-7 relative over 2 epochs, parameters
2e-5 lr (Adam, batches of 1 row), one batch's gradient 5e-8 normwise.

Compiled signatures are kept to one of each bf16 kernel (float32, the tutorial's
objective, dense rows), plus one epoch with dropout: every network below shares them.
"""
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import BFloat16Unavailable, reference
from fastnn._core import bf16 as core_bf16, onednn

U = 2.0**-24
WHY = core_bf16.availability()
needs_onednn = pytest.mark.skipif(WHY is not None, reason=f"bfloat16 kernels cannot run here: {WHY}")


def gamma(k):
    return k * U / (1 - k * U)


def bits(x):
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def pair(sizes, loss="mse", activation="relu", output_activation="identity", seed=3, **extra):
    """A bf16 kernel network and its reference twin, same initial weights."""
    kw = dict(activation=activation, output_activation=output_activation, dtype="float32", seed=seed, init="he",
              compute_dtype="bfloat16", **extra)
    return (fastnn.NeuralNetwork(sizes[0], sizes[1:-1], sizes[-1], loss, **kw),
            reference.NeuralNetwork(sizes[0], sizes[1:-1], sizes[-1], loss, **kw))


def data(n, d_in, d_out, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d_in)).astype(np.float32)
    return X, np.tanh(X @ rng.standard_normal((d_in, d_out))).astype(np.float32)


# -- the rounding ----------------------------------------------------------------------------
def test_round_bf16_to_nearest_ties_to_even():
    r = reference.round_bf16
    one = np.float32(1.0)
    # 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even significand (1).
    assert r(one + np.float32(2.0**-8)) == one
    # 1 + 3 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
    assert r(one + np.float32(3 * 2.0**-8)) == one + np.float32(2.0**-6)
    assert r(one + np.float32(2.0**-8 + 2.0**-20)) == one + np.float32(2.0**-7)  # above the tie: up
    assert r(np.float32(-(1 + 2.0**-8 + 2.0**-20))) == -(one + np.float32(2.0**-7))
    assert r(np.float32(np.finfo(np.float32).max)) == np.inf  # rounds past the largest bfloat16
    assert np.isnan(r(np.float32(np.nan))) and r(np.float32(np.inf)) == np.inf
    assert r(np.float32(2.0**-130)) == np.float32(2.0**-130)  # subnormal with few bits: exact


def test_kernel_rounding_is_the_reference_rounding():
    """The kernels' to_bf16 (bit patterns) on random float32 bit patterns, NaNs included."""
    from fastnn.kernels import bf16 as kernels_bf16  # to_bf16 calls no library: runs without oneDNN

    rng = np.random.default_rng(0)
    x = rng.integers(0, 2**32, 100_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    h = np.empty(x.size, np.uint16)
    kernels_bf16.to_bf16(x, h)
    got = (h.astype(np.uint32) << 16).view(np.float32)
    want = reference.round_bf16(x)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(bits(got[~nan]), bits(want[~nan]))


def test_reference_bf16_mode_rounds_the_operands():
    """The reference's bfloat16 forward is float32 arithmetic on rounded operands."""
    ref = reference.NeuralNetwork(5, 4, 2, "mse", activation="relu", output_activation="identity",
                                  dtype="float32", seed=3, init="he", compute_dtype="bfloat16")
    X, _ = data(6, 5, 2)
    r = reference.round_bf16
    W0, W1 = ref.weights
    Z1 = np.maximum(r(X).astype(np.float64) @ r(W0) + ref.biases[0], 0)
    want = r(Z1.astype(np.float32)).astype(np.float64) @ r(W1) + ref.biases[1]
    np.testing.assert_allclose(ref.forward(X), want, rtol=1e-6, atol=1e-6)
    f32 = reference.NeuralNetwork(5, 4, 2, "mse", activation="relu", output_activation="identity",
                                  dtype="float32", seed=3, init="he")
    assert not np.allclose(ref.forward(X), f32.forward(X), rtol=1e-5, atol=0)  # the mode does something


# -- error paths (no oneDNN needed) --------------------------------------------------------
def test_compute_dtype_is_checked():
    with pytest.raises(ValueError, match="compute_dtype"):
        fastnn.NeuralNetwork(3, 2, 1, compute_dtype="float16")
    with pytest.raises(ValueError, match="needs dtype float32"):
        fastnn.NeuralNetwork(3, 2, 1, compute_dtype="bfloat16")  # float64 by default


def test_missing_onednn_names_the_extra(monkeypatch):
    monkeypatch.setattr(core_bf16, "_kernels", None)
    monkeypatch.setattr(core_bf16, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(core_bf16, "library_path", lambda: None)
    with pytest.raises(BFloat16Unavailable, match=r"pip install 'fastnn\[bf16\]'"):
        fastnn.NeuralNetwork(3, 2, 1, dtype="float32", compute_dtype="bfloat16")


def _fake_loader(monkeypatch, present):
    """llvmlite's loader on a fake oneDNN that needs libsvml.so: it fails, as the dynamic
    loader does, until libsvml.so was loaded; files in ``present`` load. Returns the calls."""
    import llvmlite.binding as llb

    calls = []

    def load(path):
        calls.append(os.path.basename(path))
        name = os.path.basename(path)
        if name != "libsvml.so" and "libsvml.so" not in calls[:-1]:
            raise RuntimeError("libsvml.so: cannot open shared object file: No such file or directory")
        if name not in present:
            raise RuntimeError(f"{path}: cannot open shared object file: No such file or directory")

    monkeypatch.setattr(llb, "load_library_permanently", load)
    return calls


def test_onednn_without_its_dependencies_names_the_missing_library(monkeypatch, tmp_path):
    # `pip install --no-deps onednn`: libdnnl is there, the libraries it links to are not.
    # Before, the loader retried the same missing path until a 10-deep chain of RuntimeErrors.
    (tmp_path / "libdnnl.so.3").touch()
    monkeypatch.setattr(core_bf16, "_kernels", None)
    monkeypatch.setattr(core_bf16, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(core_bf16, "library_path", lambda: str(tmp_path / "libdnnl.so.3"))
    calls = _fake_loader(monkeypatch, present={"libdnnl.so.3"})
    with pytest.raises(BFloat16Unavailable, match=r"needs libsvml.so, which is not installed.*pip install 'fastnn\[bf16\]'"):
        fastnn.NeuralNetwork(3, 2, 1, dtype="float32", compute_dtype="bfloat16")
    assert calls == ["libdnnl.so.3"]


def test_onednn_dependencies_beside_it_load_first(monkeypatch, tmp_path):
    (tmp_path / "libdnnl.so.3").touch()
    (tmp_path / "libsvml.so").touch()
    calls = _fake_loader(monkeypatch, present={"libdnnl.so.3", "libsvml.so"})
    onednn.load(str(tmp_path / "libdnnl.so.3"))
    assert calls == ["libdnnl.so.3", "libsvml.so", "libdnnl.so.3"]


def test_missing_cpu_feature_is_named(monkeypatch):
    monkeypatch.setattr(core_bf16, "_kernels", None)
    monkeypatch.setattr(core_bf16, "cpu_has_bf16", lambda: False)
    with pytest.raises(BFloat16Unavailable, match="avx512_bf16"):
        fastnn.NeuralNetwork(3, 2, 1, dtype="float32", compute_dtype="bfloat16")


def test_nothing_bf16_loads_unless_asked():
    code = ("import sys, numpy as np, fastnn\n"
            "nn = fastnn.NeuralNetwork(3, 4, 2, dtype='float32', seed=0); nn.forward(np.ones((2, 3)))\n"
            "print(sorted(m for m in sys.modules if 'bf16' in m or 'dnnl' in m))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- kernels vs reference -------------------------------------------------------------------
def forward_bound(ref, X):
    """Elementwise bound on |kernel - reference| of the output of ``ref`` (ReLU hidden
    layers, identity output) on X: the module docstring's argument, layer by layer."""
    r = reference.round_bf16
    A, e = X.astype(np.float64), np.zeros(X.shape)
    for layer, (W, b) in enumerate(zip(ref.weights, ref.biases)):
        At = r(A.astype(np.float32)).astype(np.float64)
        if layer == 0:
            dA = np.zeros(A.shape)
        else:  # how far the kernel's rounded input can be from the reference's
            up = r((A + e).astype(np.float32)).astype(np.float64)
            down = r((A - e).astype(np.float32)).astype(np.float64)
            dA = np.maximum(np.abs(up - At), np.abs(down - At)) + 2 * U * e
        Wt = np.abs(r(W).astype(np.float64))
        Z = At @ r(W).astype(np.float64) + b
        e = dA @ Wt + gamma(W.shape[0]) * (2 * np.abs(At) + dA) @ Wt
        e += 2 * U * (np.abs(Z) + e) + 1e-30  # the bias add's rounding; subnormals flushed
        A = np.maximum(Z, 0) if layer < len(ref.weights) - 1 else Z
    return e


@needs_onednn
@pytest.mark.parametrize("sizes, n", [((30, 64, 48, 5), 37), ((7, 1, 3), 1), ((300, 40, 2), 5)])
def test_forward_within_derived_bound(sizes, n):
    """Batches of 37 and 1 rows, a hidden layer of width 1, a long product (K = 300)."""
    nn, ref = pair(sizes)
    X, _ = data(n, sizes[0], sizes[-1])
    diff = np.abs(nn.forward(X).astype(np.float64) - ref.forward(X))
    bound = forward_bound(ref, X)
    assert np.all(diff <= bound), float(np.max(diff / bound))
    if n == 1:
        return  # (the width-1 ReLU is dead on this row: bfloat16 and float32 agree)
    # The bound is tight enough to tell bfloat16 from float32 products.
    f32 = reference.NeuralNetwork(sizes[0], sizes[1:-1], sizes[-1], "mse", activation="relu",
                                  output_activation="identity", dtype="float32", seed=3, init="he")
    assert not np.all(np.abs(f32.forward(X) - ref.forward(X)) <= bound)


@needs_onednn
def test_one_sgd_step_matches_reference():
    """``backward``: one full-batch step; the gradient recovered from it, normwise."""
    nn, ref = pair((12, 16, 8, 3), "categorical_crossentropy", "tanh", "softmax")
    X, Y = data(20, 12, 3)
    Y = np.eye(3, dtype=np.float32)[np.argmax(Y, axis=1)]
    before = nn.params.copy()
    nn.backward(X, Y, 1.0)
    ref.backward(X, Y, 1.0)
    g, g_ref = before - nn.params, before - ref.params
    assert np.linalg.norm(g - g_ref) <= 1e-5 * np.linalg.norm(g_ref)
    f32 = reference.NeuralNetwork(12, [16, 8], 3, "categorical_crossentropy", activation="tanh", dtype="float32",
                                  seed=3, init="he")
    f32.backward(X, Y, 1.0)
    assert np.linalg.norm(before - f32.params - g_ref) > 1e-5 * np.linalg.norm(g_ref)  # the test can tell


@needs_onednn
@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.05), ("momentum", 0.02), ("adam", 0.003)])
def test_epochs_match_reference(optimizer, lr):
    """Minibatches with a partial last one (50 rows, batches of 16), and a test set."""
    nn, ref = pair((6, 9, 5, 2))
    X, Y = data(70, 6, 2)
    curves = []
    for net, T in ((nn, fastnn.Trainer), (ref, reference.Trainer)):
        tr = T(net, "mse")
        tr.train(X[:50], Y[:50], X[50:], Y[50:], 3, lr, batch_size=16, optimizer=optimizer)
        curves.append((tr.train_loss, tr.test_loss))
    np.testing.assert_allclose(curves[0][0], curves[1][0], rtol=1e-5)
    np.testing.assert_allclose(curves[0][1], curves[1][1], rtol=1e-5)
    np.testing.assert_allclose(nn.params, ref.params, rtol=0, atol=lr * 1e-3)


@needs_onednn
def test_batches_of_one_row():
    nn, ref = pair((4, 3, 1), seed=5)
    X, Y = data(5, 4, 1)
    for net, T in ((nn, fastnn.Trainer), (ref, reference.Trainer)):
        T(net, "mse").train(X, Y, None, None, 2, 0.01, batch_size=1, optimizer="sgd")
    np.testing.assert_allclose(nn.params, ref.params, rtol=0, atol=1e-5)


@needs_onednn
def test_gradient_against_finite_differences():
    """The bfloat16 gradient is that of the float32 network to bfloat16's precision:
    each product's operands carry a relative error <= 2^-8, so the gradient is within
    ~3 2^-8 of the exact one normwise; 2^-5 leaves room, a wrong term does not fit."""
    nn, _ = pair((5, 6, 2), "mse", "tanh", "identity", seed=7)
    X, Y = data(8, 5, 2)
    exact = reference.NeuralNetwork(5, 6, 2, "mse", activation="tanh", output_activation="identity", seed=7)
    exact.params[...] = nn.params
    before = nn.params.copy()
    nn.backward(X, Y, 1.0)
    g = (before - nn.params).astype(np.float64)
    X64, Y64, h = X.astype(np.float64), Y.astype(np.float64), 1e-6
    fd = np.empty(g.size)
    for i in range(g.size):
        p = exact.params[i]
        losses = []
        for step in (h, -h):
            exact.params[i] = p + step
            losses.append(reference.mean_loss(exact.forward(X64), Y64, exact.loss_code, exact.clip_eps))
        exact.params[i] = p
        fd[i] = (losses[0] - losses[1]) / (2 * h)
    assert np.linalg.norm(g - fd) <= 2.0**-5 * np.linalg.norm(fd)


@needs_onednn
def test_save_load_keeps_compute_dtype(tmp_path):
    nn, _ = pair((4, 5, 2))
    path = tmp_path / "m.npz"
    nn.save(path)
    back = fastnn.load(path)
    assert back.compute_dtype == "bfloat16" and "compute_dtype='bfloat16'" in repr(back)
    X, _ = data(3, 4, 2)
    np.testing.assert_array_equal(back.forward(X), nn.forward(X))


@needs_onednn
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_divergence_keeps_the_last_finite_weights(dropout):
    """The epoch's guard (kernels/guard.py) stops before a non-finite update, as in
    float32; the diverging batch (the first here) leaves the mask counter where it was."""
    nn, _ = pair((4, 3, 2), dropout=dropout)
    X, Y = data(40, 4, 2)
    before = nn.params.copy()
    with pytest.raises(fastnn.DivergenceError):
        fastnn.Trainer(nn, "mse").train(X, Y * np.float32(1e30), None, None, 3, 1e30, batch_size=8, optimizer="sgd")
    np.testing.assert_array_equal(nn.params, before)
    if dropout:
        assert nn._dropout_stream[1] == 0


@needs_onednn
def test_fastnn_compile_covers_the_bfloat16_kernels():
    from fastnn._app.compile import _warm_bfloat16
    from fastnn.kernels import bf16 as kernels_bf16

    from fastnn.kernels.bundles import Dropout, TutorialObjective

    _warm_bfloat16()
    for kernel in (kernels_bf16.fit_epoch, kernels_bf16.evaluate, kernels_bf16.predict):
        assert kernel.signatures, f"{kernel.__name__} was not compiled by fastnn compile's warm-up"
    compiled = {(sig[4].instance_class, getattr(sig[7], "instance_class", None))
                for sig in kernels_bf16.fit_epoch.signatures}
    assert {(TutorialObjective, None), (TutorialObjective, Dropout)} <= compiled  # with and without dropout


@needs_onednn
def test_info_reports_the_bfloat16_kernels_and_a_coming_compile_warns(monkeypatch, capsys):
    from fastnn._app import cli
    from fastnn._app.compile import _warm_bfloat16
    from fastnn._core import precompile

    _warm_bfloat16()
    assert precompile.status(precompile.BFLOAT16, "float32")[0] == "ready"
    assert cli.main(["info", "--no-threading-probe"]) == 0
    assert re.search(r"kernels: bfloat16 float32 +ready: compiled for this machine", capsys.readouterr().out)
    # Where they are not compiled, the first bfloat16 kernel load says so once, naming the command.
    monkeypatch.setattr(precompile, "status", lambda face, dtype: ("compile", f"no compiled {face} kernels (test)"))
    monkeypatch.setattr(precompile, "_announced", set())
    monkeypatch.setattr(core_bf16, "_kernels", None)
    with pytest.warns(precompile.CompileWarning, match="compiling its bfloat16 kernels for float32.*fastnn compile"):
        core_bf16.kernels()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.setattr(core_bf16, "_kernels", None)
        core_bf16.kernels()  # once per process


def test_fastnn_compile_skips_bfloat16_where_it_cannot_run(monkeypatch):
    from fastnn._app.compile import _warm_bfloat16

    monkeypatch.setattr(core_bf16, "availability", lambda: "no oneDNN (test)")
    built = []
    monkeypatch.setattr(fastnn._app.compile, "NeuralNetwork", lambda *a, **k: built.append(k))
    _warm_bfloat16()
    assert built == []


@needs_onednn
def test_onnx_export_computes_float32_products():
    """fastnn.to_onnx of a bfloat16 network: its float32 weights with float32 products
    (documented), within test_onnx.py's float32 tolerance of the float32 network."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    nn, _ = pair((6, 9, 2))
    f32 = fastnn.NeuralNetwork(6, [9], 2, "mse", activation="relu", output_activation="identity", dtype="float32",
                               seed=3, init="he")
    np.testing.assert_array_equal(f32.params, nn.params)
    X, _ = data(20, 6, 2)
    session = ort.InferenceSession(fastnn.to_onnx(nn).SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"X": X})
    np.testing.assert_allclose(out, f32.forward(X), rtol=1e-5, atol=1e-5)
    assert np.max(np.abs(out - nn.forward(X))) > 1e-4


# -- dropout ---------------------------------------------------------------------------------
DROP_SIZES, DROP_RATES = (6, 9, 5, 7, 2), [0.3, 0.0, 0.5]  # a layer of rate 0 between dropped ones


def dropout_pair(sizes=DROP_SIZES, **kw):
    """``pair`` with DROP_RATES, and the float32 kernels' twin (same weights, same masks)."""
    nn, ref = pair(sizes, dropout=DROP_RATES, **kw)
    f32 = fastnn.NeuralNetwork(sizes[0], sizes[1:-1], sizes[-1], nn.loss_func, activation=nn.activation,
                               output_activation=nn.output_activation, dtype="float32", seed=nn.seed, init="he",
                               dropout=DROP_RATES)
    return nn, ref, f32


@needs_onednn
@pytest.mark.parametrize("optimizer, lr, batch", [("sgd", 0.05, 16), ("adam", 0.003, 1)])
def test_dropout_epochs_match_reference(optimizer, lr, batch):
    """50 rows in batches of 16 (a partial last one) or of 1 row, 2 epochs: the float32
    path's masks (its counter after each epoch), the reference's losses and weights."""
    nn, ref, f32 = dropout_pair()
    X, Y = data(50, 6, 2)
    losses = []
    for net, T in ((nn, fastnn.Trainer), (ref, reference.Trainer), (f32, fastnn.Trainer)):
        tr = T(net, "mse")
        tr.train(X, Y, None, None, 2, lr, batch_size=batch, optimizer=optimizer)
        losses.append(tr.train_loss)
    assert nn._dropout_stream == ref._dropout_stream == f32._dropout_stream
    assert nn._dropout_stream[1] == 2 * 50 * (9 + 5 + 7)  # every hidden layer's units, rate 0 too
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    np.testing.assert_allclose(nn.params, ref.params, rtol=0, atol=lr * 1e-3)
    assert np.max(np.abs(f32.params - ref.params)) > lr * 1e-3  # float32 products do not fit: the test can tell


@needs_onednn
def test_dropout_gradient_of_one_batch_matches_reference():
    """One full batch of plain SGD at lr 1: the step is the gradient, normwise 1e-5, as
    in test_one_sgd_step_matches_reference; the reference with float32 products and the
    same masks misses it."""
    nn, ref, _ = dropout_pair((12, 16, 8, 10, 3), loss="categorical_crossentropy", activation="tanh",
                              output_activation="softmax")
    X, Y = data(20, 12, 3)
    Y = np.eye(3, dtype=np.float32)[np.argmax(Y, axis=1)]
    ref32 = reference.NeuralNetwork(12, [16, 8, 10], 3, "categorical_crossentropy", activation="tanh",
                                    output_activation="softmax", dtype="float32", seed=3, init="he", dropout=DROP_RATES)
    before = nn.params.copy()
    for net, T in ((nn, fastnn.Trainer), (ref, reference.Trainer), (ref32, reference.Trainer)):
        T(net, "categorical_crossentropy").train(X, Y, None, None, 1, 1.0, batch_size=20, optimizer="sgd")
    g, g_ref, g32 = before - nn.params, before - ref.params, before - ref32.params
    assert np.linalg.norm(g - g_ref) <= 1e-5 * np.linalg.norm(g_ref)
    assert np.linalg.norm(g32 - g_ref) > 1e-5 * np.linalg.norm(g_ref)


@needs_onednn
def test_dropout_resumes_exactly():
    """1 + 1 epochs on the same trainer are 2 epochs, bit for bit: the counter carries over."""
    (nn, _, _), (full, _, _) = dropout_pair(), dropout_pair()
    X, Y = data(50, 6, 2)
    tr = fastnn.Trainer(nn, "mse")
    for _ in range(2):
        tr.train(X, Y, None, None, 1, 0.003, batch_size=16, optimizer="adam")
    fastnn.Trainer(full, "mse").train(X, Y, None, None, 2, 0.003, batch_size=16, optimizer="adam")
    np.testing.assert_array_equal(nn.params, full.params)
    assert nn._dropout_stream == full._dropout_stream


@needs_onednn
def test_dropout_code_is_compiled_only_for_dropout():
    """An epoch without dropout passes ``dropout=None``: Numba prunes its branches, so
    that signature holds no dropout code; one epoch signature with dropout per face."""
    from numba import types

    from fastnn.kernels import bf16 as kernels_bf16

    nn, _ = pair((4, 5, 2))
    X, Y = data(8, 4, 2)
    fastnn.Trainer(nn, "mse").train(X, Y, None, None, 1, 0.01, batch_size=4, optimizer="sgd")
    dropout_types = [sig[7] for sig in kernels_bf16.fit_epoch.signatures]  # fit_epoch's ``dropout``
    assert types.none in dropout_types
    assert sum(t != types.none for t in dropout_types) <= 2  # the tutorial's objective and scikit-learn's
