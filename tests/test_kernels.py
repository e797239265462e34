"""Every kernel in ``kernels/`` against the NumPy reference (``fastnn.reference``).

The kernels are called exactly as ``fastnn._core.engine`` calls them (C-contiguous float
arrays, int64 size/code arrays, Python ints and floats for scalars), so these tests
reuse the signatures that training compiles and cost no extra compilation.

Tolerances, one table per dtype (stumpy's habit):

* float64: kernels and reference do the same arithmetic; only the summation order
  differs (BLAS blocking vs NumPy's pairwise sums, a fused loop vs a vectorised
  expression), so they agree to ~1e-14 relative. We ask 1e-10 (the issue's bound),
  with an absolute floor of 1e-12 for entries that cancel to ~0 (the data are O(1)).
* float32: the kernel runs in float32 and is compared with the reference evaluated in
  float64 on the *same* float32 inputs, so the tolerance bounds the kernel's own
  rounding. Unit roundoff is 6e-8; the element-wise kernels do a handful of roundings
  (<= ~1e-6 relative), sums here have <= 10 O(1) terms (<= ~1e-6 absolute). A whole
  network pass or an epoch of up to 20 updates compounds this over layers and steps,
  so those get a few times more. Measured (numba 0.68, this machine): largest
  float32 error 9.4e-7 absolute on O(1) values, so the bounds below leave ~2-5x
  headroom. Any real bug (a wrong term, a missing factor) is O(1e-2) or larger.
"""
import numpy as np
import pytest

from fastnn import NeuralNetwork, Trainer, reference
from fastnn._core.tutorial_engine import KernelEngine
from fastnn.kernels import activations, codes, dense, epoch, losses, network, optimizers, views
from fastnn.kernels.bundles import Scratch
from fastnn.optimizers import SGD, Adam, OptimizerState

TOL = {
    np.float64: {
        "elementwise": dict(rtol=1e-10, atol=1e-12),
        "network": dict(rtol=1e-10, atol=1e-12),
        "epoch": dict(rtol=1e-10, atol=1e-12),
    },
    np.float32: {
        "elementwise": dict(rtol=1e-5, atol=2e-6),
        "network": dict(rtol=2e-5, atol=5e-6),
        "epoch": dict(rtol=2e-5, atol=5e-6),
    },
}
DTYPES = [np.float64, np.float32]
F64 = np.float64

HIDDEN_CODES = [codes.IDENTITY, codes.SIGMOID, codes.TANH, codes.RELU, codes.LEAKY_RELU, codes.ELU]
ALL_CODES = HIDDEN_CODES + [codes.SOFTMAX]
# Non-default alphas, so that a kernel ignoring alpha (or using the default) shows.
ALPHA = {codes.LEAKY_RELU: 0.1, codes.ELU: 0.7}
# Every (loss, output activation) pair the API allows (fastnn._core.tables.ALLOWED_OUTPUTS).
LOSS_PAIRS = [
    (codes.MSE, codes.IDENTITY),
    (codes.MSE, codes.SIGMOID),
    (codes.MSE, codes.SOFTMAX),
    (codes.LOG_LOSS, codes.SIGMOID),
    (codes.CATEGORICAL_CROSSENTROPY, codes.SOFTMAX),
]
# (rows, columns): batch 1, width 1, both, and a general block.
SHAPES = [(1, 1), (1, 5), (6, 1), (7, 3)]


def check(got, want, dtype, kind="elementwise"):
    assert got.dtype == dtype  # kernels never promote
    np.testing.assert_allclose(got, want, **TOL[dtype][kind])


def ids(names):
    return lambda v: names.get(v, str(v))


CODE_NAMES = {codes.IDENTITY: "identity", codes.SIGMOID: "sigmoid", codes.TANH: "tanh", codes.RELU: "relu",
              codes.LEAKY_RELU: "leaky_relu", codes.ELU: "elu", codes.SOFTMAX: "softmax"}


def targets(loss, out, shape, rng):
    """Targets that make sense for the loss: real for mse/identity, [0, 1] otherwise,
    0/1 and soft labels for log_loss, one-hot rows for categorical cross-entropy."""
    n, k = shape
    if loss == codes.CATEGORICAL_CROSSENTROPY:
        return np.eye(k)[rng.integers(0, k, n)]
    if loss == codes.LOG_LOSS:
        Y = rng.uniform(0, 1, shape)
        return np.where(rng.uniform(size=shape) < 0.5, np.round(Y), Y)  # half hard 0/1, half soft
    return rng.standard_normal(shape) if out == codes.IDENTITY else rng.uniform(0, 1, shape)


# -- activations --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("code", ALL_CODES, ids=ids(CODE_NAMES))
def test_bias_activation(code, shape, dtype, rng):
    Z = (3 * rng.standard_normal(shape)).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    alpha = ALPHA.get(code, 0.0)
    want = reference.activate(Z.astype(F64) + b.astype(F64), code, alpha)
    got = Z.copy()
    activations.bias_activation(got, b, code, alpha)
    check(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", [codes.SIGMOID, codes.SOFTMAX], ids=ids(CODE_NAMES))
def test_bias_activation_never_overflows(code, dtype):
    # Logits far beyond exp's range: outputs stay finite probabilities, equal to the reference.
    Z = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0], [800.0, 800.0, -800.0, 0.0, 1.0]], dtype=dtype)
    b = np.array([0.0, 0.0, 0.0, 0.0, -1.0], dtype=dtype)
    got = Z.copy()
    activations.bias_activation(got, b, code, 0.0)
    assert np.isfinite(got).all() and (got >= 0).all() and (got <= 1).all()
    check(got, reference.activate(Z.astype(F64) + b.astype(F64), code, 0.0), dtype)


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 63, reason="needs an 80-bit long double for the exact sigmoid")
def test_float64_sigmoid_within_a_few_ulps(rng):
    # One division (vmath.vexp_ratio) where 1 / (1 + exp(-z)) has two: as accurate as the
    # reference's own formula (within 3 ulps of the sigmoid in long double), NaN kept.
    z = np.concatenate([8 * rng.standard_normal(200_000), np.linspace(-40, 40, 20_001),
                        rng.uniform(-1e-6, 1e-6, 1000), [0.0, -0.0]])
    got = z.reshape(-1, 1).copy()
    activations.bias_activation(got, np.zeros(1), codes.SIGMOID, 0.0)
    exact = 1 / (1 + np.exp(-z.astype(np.longdouble)))
    ulps = np.abs(got[:, 0].astype(np.longdouble) - exact) / np.spacing(exact.astype(F64))
    assert ulps.max() <= 3.0
    with np.errstate(over="ignore"):
        reference_ulps = np.abs((1 / (1 + np.exp(-z))).astype(np.longdouble) - exact) / np.spacing(exact.astype(F64))
    assert reference_ulps.max() > 1.0  # the reference is not correctly rounded either
    nan = np.array([[np.nan, 1.0]])
    activations.bias_activation(nan, np.zeros(2), codes.SIGMOID, 0.0)
    assert np.isnan(nan[0, 0]) and nan[0, 1] == 1 / (1 + np.exp(-1.0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("code", HIDDEN_CODES, ids=ids(CODE_NAMES))
def test_multiply_derivative(code, shape, dtype, rng):
    alpha = ALPHA.get(code, 0.0)
    A = reference.activate(3 * rng.standard_normal(shape), code, alpha).astype(dtype)
    D = rng.standard_normal(shape).astype(dtype)
    want = D.astype(F64) * reference.derivative(A.astype(F64), code, alpha)
    got, A_before = D.copy(), A.copy()
    activations.multiply_derivative(got, A, code, alpha)
    check(got, want, dtype)
    np.testing.assert_array_equal(A, A_before)  # A is only read


# -- losses -------------------------------------------------------------------------------
def sample_weights(weighted, n, dtype, rng):
    """(sw for the kernels, sw for the reference, weight sum): empty/None/n when unweighted."""
    if not weighted:
        return np.empty(0, dtype=dtype), None, float(n)
    sw = rng.uniform(0.1, 3.0, n).astype(dtype)
    return sw, sw.astype(F64), float(sw.astype(F64).sum())


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (5, 1), (6, 3)])
@pytest.mark.parametrize("loss,out", LOSS_PAIRS)
def test_loss_sum(loss, out, shape, dtype, weighted, rng):
    if out == codes.SOFTMAX and shape[1] == 1:
        shape = (shape[0], 2)  # a softmax over one output is the constant 1
    A = reference.activate(2 * rng.standard_normal(shape), out, 0.0).astype(dtype)
    Y = targets(loss, out, shape, rng).astype(dtype)
    sw, sw64, weight_sum = sample_weights(weighted, shape[0], dtype, rng)
    eps = float(np.finfo(dtype).eps)  # as NeuralNetwork.clip_eps
    got = losses.loss_sum(A, Y, sw, loss, eps) / weight_sum
    want = reference.mean_loss(A.astype(F64), Y.astype(F64), loss, eps, sw64)
    np.testing.assert_allclose(got, want, **TOL[dtype]["elementwise"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", [codes.LOG_LOSS, codes.CATEGORICAL_CROSSENTROPY])
def test_loss_sum_clips_probabilities(loss, dtype):
    # Exact 0 and 1 outputs against the wrong label: log(0) must not happen.
    A = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.0]], dtype=dtype)
    Y = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=dtype)
    eps = float(np.finfo(dtype).eps)
    got = losses.loss_sum(A, Y, np.empty(0, dtype=dtype), loss, eps) / 2
    assert np.isfinite(got)
    np.testing.assert_allclose(got, reference.mean_loss(A.astype(F64), Y.astype(F64), loss, eps), **TOL[dtype]["elementwise"])
    if loss == codes.CATEGORICAL_CROSSENTROPY:
        # -1/2 (log(clip(0)) + log(clip(0))) = -log(eps), by hand.
        np.testing.assert_allclose(got, -np.log(eps), rtol=1e-12)


def test_weighted_loss_by_hand():
    # MSE of rows with squared errors 1 and 4 (one output), weights 3 and 1: (3 + 4) / 4.
    A, Y = np.array([[1.0], [2.0]]), np.zeros((2, 1))
    assert losses.loss_sum(A, Y, np.array([3.0, 1.0]), codes.MSE, 1e-15) / 4.0 == 1.75
    assert reference.mean_loss(A, Y, codes.MSE, 1e-15, np.array([3.0, 1.0])) == 1.75


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (5, 1), (6, 3)])
@pytest.mark.parametrize("loss,out", LOSS_PAIRS)
def test_output_delta(loss, out, shape, dtype, weighted, rng):
    if out == codes.SOFTMAX and shape[1] == 1:
        shape = (shape[0], 2)
    A = reference.activate(2 * rng.standard_normal(shape), out, 0.0).astype(dtype)
    Y = targets(loss, out, shape, rng).astype(dtype)
    sw, sw64, weight_sum = sample_weights(weighted, shape[0], dtype, rng)
    got = np.empty_like(A)
    losses.output_delta(A, Y, sw, loss, out, 1.0 / weight_sum, got)
    check(got, reference.output_delta(A.astype(F64), Y.astype(F64), loss, out, sw64), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (6, 1), (40, 10)])
@pytest.mark.parametrize("kind", [losses.ARGMAX_ACCURACY, losses.THRESHOLD_ACCURACY])
def test_count_correct(kind, shape, dtype, rng):
    # Outputs on a coarse grid, so that rows hold ties: the first maximum counts, as np.argmax's.
    A = rng.integers(0, 4, shape).astype(dtype) / 4
    Y = np.eye(shape[1], dtype=dtype)[rng.integers(0, shape[1], shape[0])] if kind == losses.ARGMAX_ACCURACY \
        else rng.integers(0, 2, shape).astype(dtype)
    assert losses.count_correct(A, Y, kind) == reference.count_correct(A, Y, kind)
    assert losses.count_correct(A, Y, losses.NO_ACCURACY) == 0.0


def test_count_correct_first_maximum_by_hand():
    A = np.array([[0.2, 0.4, 0.4], [0.5, 0.5, 0.0], [0.1, 0.1, 0.1]])
    Y = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    # Rows 2 and 3: the first of the tied maxima (0) is the target's; row 1's (1) is not.
    assert losses.count_correct(A, Y, losses.ARGMAX_ACCURACY) == 2.0


def test_views_share_the_buffer_and_check_their_bounds():
    buf = np.arange(20, dtype=np.float32)
    V = views.view2d(buf, 3, 4, 2)
    np.testing.assert_array_equal(V, buf[3:11].reshape(4, 2))
    assert V.flags.c_contiguous and V.strides == (8, 4)
    F = views.flat(V)
    F[0] = -1.0  # one memory: the buffer sees writes through either view
    assert buf[3] == -1.0 and F.shape == (8,)
    assert views.view2d(buf, 20, 0, 5).shape == (0, 5)
    for offset, rows, cols in [(15, 3, 2), (-1, 1, 1), (0, 21, 1)]:
        with pytest.raises(IndexError, match="does not fit"):
            views.view2d(buf, offset, rows, cols)
    with pytest.raises(Exception, match="C-contiguous"):
        views.flat(np.ones((3, 4), np.float32).T)
    x = np.array([1.5, -0.0, np.inf], np.float32)
    b = views.bits(x, np.int32)
    np.testing.assert_array_equal(b, x.view(np.int32))
    b[0] = np.float32(2.0).view(np.int32)  # the same memory
    assert x[0] == 2.0
    with pytest.raises(Exception, match="integer type of its width"):
        views.bits(x, np.int64)


# -- dense layers -------------------------------------------------------------------------
DENSE_SHAPES = [(1, 1, 1), (1, 4, 3), (5, 1, 3), (6, 4, 1), (9, 7, 5)]  # (n, d_in, d_out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,d_in,d_out", DENSE_SHAPES)
@pytest.mark.parametrize("code", ALL_CODES, ids=ids(CODE_NAMES))
def test_dense_forward(code, n, d_in, d_out, dtype, rng):
    A_prev = rng.standard_normal((n, d_in)).astype(dtype)
    W = rng.standard_normal((d_in, d_out)).astype(dtype)
    b = rng.standard_normal(d_out).astype(dtype)
    alpha = ALPHA.get(code, 0.0)
    A = np.empty((n, d_out), dtype=dtype)
    dense.dense_forward(A_prev, W, b, code, alpha, A)
    want = reference.activate(A_prev.astype(F64) @ W.astype(F64) + b.astype(F64), code, alpha)
    check(A, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("n,d_in,d_out", DENSE_SHAPES)
@pytest.mark.parametrize("prev_code", HIDDEN_CODES, ids=ids(CODE_NAMES))
def test_dense_backward(prev_code, n, d_in, d_out, l2, dtype, rng):
    alpha = ALPHA.get(prev_code, 0.0)
    A_prev = reference.activate(2 * rng.standard_normal((n, d_in)), prev_code, alpha).astype(dtype)
    W = rng.standard_normal((d_in, d_out)).astype(dtype)
    D = rng.standard_normal((n, d_out)).astype(dtype)
    dW = np.full((d_in, d_out), np.nan, dtype=dtype)  # NaN: every entry must be written
    db = np.full(d_out, np.nan, dtype=dtype)
    D_prev = np.full((n, d_in), np.nan, dtype=dtype)
    dense.dense_backward(A_prev, W, D, l2, dW, db, D_prev, prev_code, alpha)
    a, w, d = A_prev.astype(F64), W.astype(F64), D.astype(F64)
    check(dW, a.T @ d + l2 * w, dtype)
    check(db, d.sum(axis=0), dtype)
    check(D_prev, (d @ w.T) * reference.derivative(a, prev_code, alpha), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_backward_first_layer_skips_input_delta(dtype, rng):
    # The first layer passes a (0, 0) D_prev: only dW and db are computed.
    X = rng.standard_normal((4, 3)).astype(dtype)
    W = rng.standard_normal((3, 2)).astype(dtype)
    D = rng.standard_normal((4, 2)).astype(dtype)
    dW, db = np.empty((3, 2), dtype=dtype), np.empty(2, dtype=dtype)
    dense.dense_backward(X, W, D, 0.0, dW, db, np.empty((0, 0), dtype=dtype), 0, 0.0)
    check(dW, X.astype(F64).T @ D.astype(F64), dtype)
    check(db, D.astype(F64).sum(axis=0), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_column_sum(shape, dtype, rng):
    D = rng.standard_normal(shape).astype(dtype)
    out = np.full(shape[1], np.nan, dtype=dtype)
    dense.column_sum(D, out)
    check(out, D.astype(F64).sum(axis=0), dtype)


# -- optimizer updates (each re-derived inline, in order of increasing complexity) ----------
def kernel_update(code, theta, g, m, v, lr, mu=0.0, beta1=0.9, beta2=0.999, eps=1e-8, t=1):
    # Exactly the scalar kinds epoch.train_epoch passes: Python int code and t, floats.
    optimizers.update(code, theta, g, m, v, float(lr), float(mu), float(beta1), float(beta2), float(eps), int(t))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [1, 37])
def test_update_sgd(p, dtype, rng):
    theta = rng.standard_normal(p).astype(dtype)
    m, v = np.zeros(p, dtype=dtype), np.zeros(0, dtype=dtype)  # OptimizerState's buffers for SGD
    expected = theta.astype(F64)
    state = OptimizerState(SGD(), p, F64)
    ref_theta = theta.astype(F64)
    for t in range(1, 4):
        g = rng.standard_normal(p).astype(dtype)
        g64 = g.astype(F64)  # the expected values in float64 from the same gradient
        expected = expected - 0.1 * g64  # theta <- theta - lr g
        kernel_update(codes.SGD, theta, g, m, v, 0.1, t=t)
        reference.update(SGD(), ref_theta, g64, state, 0.1)
        check(theta, expected, dtype, "epoch")
        check(theta, ref_theta, dtype, "epoch")
    assert state.t == 3


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("p", [1, 37])
def test_update_momentum(p, nesterov, dtype, rng):
    mu, lr = 0.9, 0.05
    opt = SGD(momentum=mu, nesterov=nesterov)
    code = codes.NESTEROV if nesterov else codes.MOMENTUM
    assert opt.code == code
    theta = rng.standard_normal(p).astype(dtype)
    m, v = np.zeros(p, dtype=dtype), np.zeros(0, dtype=dtype)
    exp_theta, exp_vel = theta.astype(F64), np.zeros(p)
    state = OptimizerState(opt, p, F64)
    ref_theta = theta.astype(F64)
    for t in range(1, 4):
        g = rng.standard_normal(p).astype(dtype)
        g64 = g.astype(F64)  # the expected values in float64 from the same gradient
        exp_vel = mu * exp_vel - lr * g64  # velocity: v <- mu v - lr g
        # plain momentum steps by v; Nesterov looks ahead: mu v - lr g
        exp_theta = exp_theta + (mu * exp_vel - lr * g64 if nesterov else exp_vel)
        kernel_update(code, theta, g, m, v, lr, mu=mu, t=t)
        reference.update(opt, ref_theta, g64, state, lr)
        check(m, exp_vel, dtype, "epoch")
        check(theta, exp_theta, dtype, "epoch")
        check(theta, ref_theta, dtype, "epoch")
        check(state.m, exp_vel, F64, "epoch")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [1, 37])
def test_update_adam(p, dtype, rng):
    lr, b1, b2, eps = 0.01, 0.8, 0.99, 1e-7  # non-default, so defaults cannot stand in
    opt = Adam(beta1=b1, beta2=b2, epsilon=eps)
    theta = rng.standard_normal(p).astype(dtype)
    m, v = np.zeros(p, dtype=dtype), np.zeros(p, dtype=dtype)
    exp_theta, exp_m, exp_v = theta.astype(F64), np.zeros(p), np.zeros(p)
    state = OptimizerState(opt, p, F64)
    ref_theta = theta.astype(F64)
    for t in range(1, 4):
        g = rng.standard_normal(p).astype(dtype)
        g64 = g.astype(F64)  # the expected values in float64 from the same gradient
        exp_m = b1 * exp_m + (1 - b1) * g64  # first moment
        exp_v = b2 * exp_v + (1 - b2) * g64 * g64  # second moment
        # Bias correction m/(1-b1^t), v/(1-b2^t) folded into the step (scikit-learn's form).
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        exp_theta = exp_theta - lr_t * exp_m / (np.sqrt(exp_v) + eps)
        kernel_update(codes.ADAM, theta, g, m, v, lr, beta1=b1, beta2=b2, eps=eps, t=t)
        reference.update(opt, ref_theta, g64, state, lr)
        check(m, exp_m, dtype, "epoch")
        check(v, exp_v, dtype, "epoch")
        check(theta, exp_theta, dtype, "epoch")
        check(theta, ref_theta, dtype, "epoch")
    assert state.t == 3


# -- whole-network passes ---------------------------------------------------------------
# (input, hidden, output, activation, loss, output activation): width-1 layers included.
NETS = [
    (3, [1], 2, "tanh", "mse", "identity"),
    (1, [4], 1, "relu", "log_loss", "sigmoid"),
    (4, [5, 3], 3, "elu", "categorical_crossentropy", "softmax"),
    (4, [5, 3], 3, "leaky_relu", "mse", "softmax"),
    (2, [3], 2, "sigmoid", "mse", "sigmoid"),
    (3, [2, 1, 2], 1, "identity", "log_loss", "sigmoid"),
]
LOSS_NAMES = {"mse": codes.MSE, "log_loss": codes.LOG_LOSS, "categorical_crossentropy": codes.CATEGORICAL_CROSSENTROPY}
OUT_NAMES = {"identity": codes.IDENTITY, "sigmoid": codes.SIGMOID, "softmax": codes.SOFTMAX}


def make_net(spec, dtype, seed=0):
    d_in, hidden, d_out, act, loss, out = spec
    alpha = {"leaky_relu": 0.1, "elu": 0.7}.get(act)
    return NeuralNetwork(d_in, hidden, d_out, loss, activation=act, output_activation=out, alpha=alpha,
                         init="glorot", dtype=dtype, seed=seed)


def as_float64(net):
    """A float64 twin of ``net`` holding exactly its (possibly float32) parameters."""
    twin = reference.NeuralNetwork(net.input_size, list(net.hidden_sizes), net.output_size, net.loss_func,
                                   activation=net.activation, output_activation=net.output_activation,
                                   alpha=net.alpha, seed=0)
    twin.params[...] = net.params
    return twin


def data_for(spec, n, dtype, rng):
    d_in, _, d_out, _, loss, out = spec
    X = rng.standard_normal((n, d_in)).astype(dtype)
    Y = targets(LOSS_NAMES[loss], OUT_NAMES[out], (n, d_out), rng).astype(dtype)
    return X, Y


def packed_blocks(buf, sizes, n):
    """Split a packed work buffer into its per-layer (n, d_l) blocks."""
    blocks, off = [], 0
    for d in sizes[1:]:
        blocks.append(buf[off : off + n * d].reshape(n, d))
        off += n * d
    return blocks


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7])
@pytest.mark.parametrize("spec", NETS, ids=lambda s: f"{s[0]}-{s[1]}-{s[2]}-{s[3]}-{s[4]}-{s[5]}")
def test_forward_layers(spec, n, dtype, rng):
    net = make_net(spec, dtype)
    X, _ = data_for(spec, n, dtype, rng)
    sizes = net.layer_sizes_array
    acts = np.full(n * int(sizes[1:].sum()), np.nan, dtype=dtype)
    out = network.forward_layers(X, net.params, sizes, net.activation_codes, net.alpha, acts)
    As = reference.forward(as_float64(net), X.astype(F64))
    for got, want in zip(packed_blocks(acts, sizes, n), As[1:]):
        check(got, want, dtype, "network")
    check(out, As[-1], dtype, "network")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("l2", [0.0, 0.05])
@pytest.mark.parametrize("n", [1, 7])
@pytest.mark.parametrize("spec", NETS, ids=lambda s: f"{s[0]}-{s[1]}-{s[2]}-{s[3]}-{s[4]}-{s[5]}")
def test_backward_layers_and_batch_gradient(spec, n, l2, dtype, rng):
    net = make_net(spec, dtype)
    X, Y = data_for(spec, n, dtype, rng)
    sizes, act_codes = net.layer_sizes_array, net.activation_codes
    width = n * int(sizes[1:].sum())
    net64 = as_float64(net)
    As = reference.forward(net64, X.astype(F64))
    want = reference.gradients(net64, As, Y.astype(F64), l2)

    # backward_layers alone: the output delta is given (the reference's, cast to dtype).
    acts, deltas = np.empty(width, dtype=dtype), np.empty(width, dtype=dtype)
    network.forward_layers(X, net.params, sizes, act_codes, net.alpha, acts)
    D_out = reference.output_delta(As[-1], Y.astype(F64), net.loss_code, act_codes[-1])
    packed_blocks(deltas, sizes, n)[-1][...] = D_out
    grad = np.full(net.params.size, np.nan, dtype=dtype)
    network.backward_layers(X, net.params, sizes, act_codes, net.alpha, acts, deltas, l2, grad)
    check(grad, want, dtype, "network")

    # epoch.batch_gradient: forward pass, output delta and backward together.
    grad2 = np.full(net.params.size, np.nan, dtype=dtype)
    deltas2 = np.empty(width, dtype=dtype)
    no_weights = np.empty(0, dtype=dtype)
    scratch = Scratch(X.ravel(), Y.ravel(), no_weights, acts, deltas2, no_weights, grad2)
    epoch.batch_gradient(X, Y, no_weights, float(n), l2, net._spec.net(net.params), net._spec.objective(net.loss_code),
                         None, np.uint64(0), scratch)
    check(grad2, want, dtype, "network")
    check(packed_blocks(deltas2, sizes, n)[-1], D_out, dtype, "network")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chunk", [1, 3, 7])
@pytest.mark.parametrize("spec", NETS[:3], ids=lambda s: f"{s[0]}-{s[1]}-{s[2]}-{s[3]}")
def test_predict_in_chunks(spec, chunk, dtype, rng):
    net = make_net(spec, dtype)
    X, _ = data_for(spec, 7, dtype, rng)  # chunk 3: chunks of 3, 3 and a partial 1
    sizes = net.layer_sizes_array
    acts = np.empty(chunk * int(sizes[1:].sum()), dtype=dtype)
    out = np.full((7, sizes[-1]), np.nan, dtype=dtype)
    network.predict(X, net.params, sizes, net.activation_codes, net.alpha, chunk, acts, out)
    check(out, reference.forward(as_float64(net), X.astype(F64))[-1], dtype, "network")


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_squares_weights_and_all_finite(dtype):
    net = make_net(NETS[2], dtype)
    want = sum(np.sum(W.astype(F64) ** 2) for W in net.weights)  # biases excluded
    np.testing.assert_allclose(network.sum_squares_weights(net.params, net.layer_sizes_array), want,
                               **TOL[dtype]["elementwise"])
    a = net.params.copy()
    assert network.all_finite(a)
    for bad in (np.nan, np.inf, -np.inf):
        a[-1] = bad
        assert not network.all_finite(a)


# -- a whole epoch ---------------------------------------------------------------------------
OPTIMIZERS = {
    "sgd": SGD(),
    "momentum": SGD(momentum=0.9),
    "nesterov": SGD(momentum=0.8, nesterov=True),
    "adam": Adam(beta1=0.85, beta2=0.99, epsilon=1e-7),
}
LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adam": 0.01}


def kernel_epoch(net, X, Y, idx, batch_size, opt, state, lr, metric_code, l2=0.0, l2_batch=0.0):
    """epoch.fit_epoch, through the engine that calls it (fresh work buffers)."""
    work = KernelEngine.workspace(net, batch_size)
    return KernelEngine.train_epoch(net, X, Y, idx, batch_size, opt, state, lr, metric_code, work, l2, l2_batch)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch_size", [1, 4, 10])  # 10 rows: batches of 4 end with a partial 2
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("spec", [NETS[2], NETS[1], NETS[0]], ids=lambda s: f"{s[3]}-{s[4]}-{s[5]}")
def test_train_epoch(spec, opt_name, batch_size, dtype, rng):
    opt, lr = OPTIMIZERS[opt_name], LR[opt_name]
    net = make_net(spec, dtype)
    net64 = as_float64(net)
    X, Y = data_for(spec, 10, dtype, rng)
    X64, Y64 = X.astype(F64), Y.astype(F64)
    state, state64 = OptimizerState(opt, net.params.size, dtype), OptimizerState(opt, net.params.size, F64)
    for _ in range(2):  # two epochs: the update count t and the moments carry over
        idx = rng.permutation(10).astype(np.int64)
        got = kernel_epoch(net, X, Y, idx, batch_size, opt, state, lr, net.loss_code)
        want = reference.NumpyEngine.train_epoch(net64, X64, Y64, idx, batch_size, opt, state64, lr, net.loss_code, None)
        np.testing.assert_allclose(got, want, **TOL[dtype]["epoch"])
        check(net.params, net64.params, dtype, "epoch")
        check(state.m, state64.m, dtype, "epoch")
        check(state.v, state64.v, dtype, "epoch")
        assert state.t == state64.t == (-(-10 // batch_size)) * (_ + 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_train_epoch_subset_l2_and_other_metric(dtype, rng):
    # idx a subset of the rows (7 of 12) in batches of 3 (3, 3, 1); both L2 terms on;
    # the reported metric (mse) differs from the loss followed (categorical cross-entropy).
    spec = NETS[2]
    opt = OPTIMIZERS["adam"]
    net = make_net(spec, dtype, seed=3)
    net64 = as_float64(net)
    X, Y = data_for(spec, 12, dtype, rng)
    idx = rng.permutation(12)[:7].astype(np.int64)
    state, state64 = OptimizerState(opt, net.params.size, dtype), OptimizerState(opt, net.params.size, F64)
    got = kernel_epoch(net, X, Y, idx, 3, opt, state, 0.01, codes.MSE, l2=0.01, l2_batch=0.05)
    want = reference.NumpyEngine.train_epoch(net64, X.astype(F64), Y.astype(F64), idx, 3, opt, state64, 0.01,
                                             codes.MSE, None, 0.01, 0.05)
    np.testing.assert_allclose(got, want, **TOL[dtype]["epoch"])
    check(net.params, net64.params, dtype, "epoch")
    assert state.t == state64.t == 3


@pytest.mark.parametrize("dtype", DTYPES)
def test_train_epoch_reads_consecutive_rows_in_place(dtype, rng):
    # Batches of 4 over rows 3-6 (consecutive: used in place), 9, 1, 2, 0 (gathered), then a
    # partial 7-8 (in place again); the same as the reference, and X and Y left as they were.
    spec = NETS[2]
    opt = OPTIMIZERS["adam"]
    net = make_net(spec, dtype, seed=4)
    net64 = as_float64(net)
    X, Y = data_for(spec, 10, dtype, rng)
    X_before, Y_before = X.copy(), Y.copy()
    idx = np.array([3, 4, 5, 6, 9, 1, 2, 0, 7, 8], dtype=np.int64)
    state, state64 = OptimizerState(opt, net.params.size, dtype), OptimizerState(opt, net.params.size, F64)
    got = kernel_epoch(net, X, Y, idx, 4, opt, state, 0.01, net.loss_code)
    want = reference.NumpyEngine.train_epoch(net64, X.astype(F64), Y.astype(F64), idx, 4, opt, state64, 0.01,
                                             net.loss_code, None)
    np.testing.assert_allclose(got, want, **TOL[dtype]["epoch"])
    check(net.params, net64.params, dtype, "epoch")
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(Y, Y_before)


# -- input conversion at the API boundary ----------------------------------------------------
def _readonly(a):
    a = a.copy()
    a.setflags(write=False)
    return a


X_VARIANTS = {
    "fortran": np.asfortranarray,
    "column_strided": lambda X: np.repeat(X, 2, axis=1)[:, ::2],
    "row_strided": lambda X: np.repeat(X, 2, axis=0)[::2],
    "read_only": _readonly,
    "int32": lambda X: np.round(4 * X).astype(np.int32),
    "int64_fortran_readonly": lambda X: _readonly(np.asfortranarray(np.round(4 * X).astype(np.int64))),
    "bool": lambda X: X > 0,
}


def _snapshot(a):
    return a.copy(), a.dtype, a.flags.writeable, a.flags.c_contiguous, a.flags.f_contiguous, a.strides


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", list(X_VARIANTS))
def test_X_kinds_accepted_and_left_alone(variant, dtype, rng):
    X = X_VARIANTS[variant](rng.standard_normal((9, 3)))
    Y = np.eye(2)[rng.integers(0, 2, 9)]
    before = _snapshot(X)
    X_copy = np.ascontiguousarray(X, dtype=dtype)  # what the kernels should see

    def model():
        return NeuralNetwork(3, 4, 2, "categorical_crossentropy", activation="tanh", dtype=dtype, seed=7)

    a, b = model(), model()
    np.testing.assert_array_equal(a.forward(X), b.forward(X_copy))
    ta = Trainer(a, "categorical_crossentropy").train(X, Y, X, Y, 3, 0.1, batch_size=4, optimizer="momentum")
    tb = Trainer(b, "categorical_crossentropy").train(X_copy, Y, X_copy, Y, 3, 0.1, batch_size=4, optimizer="momentum")
    assert ta.train_loss == tb.train_loss and ta.test_loss == tb.test_loss
    np.testing.assert_array_equal(a.params, b.params)
    after = _snapshot(X)
    np.testing.assert_array_equal(after[0], before[0])
    assert after[1:] == before[1:]


@pytest.mark.parametrize("variant", ["fortran", "row_strided", "read_only", "int", "bool"])
def test_y_kinds_accepted_and_left_alone(variant, rng):
    X = rng.standard_normal((8, 3))
    y = rng.integers(0, 2, (8, 2))
    y = {
        "fortran": lambda: np.asfortranarray(y.astype(float)),
        "row_strided": lambda: np.repeat(y, 2, axis=0)[::2].astype(float),
        "read_only": lambda: _readonly(y.astype(float)),
        "int": lambda: y,
        "bool": lambda: y.astype(bool),
    }[variant]()
    before = _snapshot(y)
    y_copy = np.ascontiguousarray(y, dtype=np.float64)

    def fit(targets_):
        nn = NeuralNetwork(3, 4, 2, "log_loss", seed=1)
        tr = Trainer(nn, "log_loss").train(X, targets_, None, None, 3, 0.5, batch_size=3)
        nn.backward(X, targets_, 0.1)
        return tr.train_loss, nn.params

    (la, pa), (lb, pb) = fit(y), fit(y_copy)
    assert la == lb
    np.testing.assert_array_equal(pa, pb)
    after = _snapshot(y)
    np.testing.assert_array_equal(after[0], before[0])
    assert after[1:] == before[1:]
