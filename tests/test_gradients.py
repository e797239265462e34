"""Central-difference gradient checks (float64), on the kernels and on the reference.

For every hidden activation x every (loss, output activation) pair the API allows, and
with and without L2, the analytic gradient of

    J(theta) = mean batch loss + 0.5 * l2 * sum over layers of sum(W^2)

(and the weighted mean sum w_i loss_i / sum w_i with sample weights)

must equal (J(theta + h e_i) - J(theta - h e_i)) / 2h for every parameter i. The kernels
are checked against their own loss (network.forward_layers + losses.loss_sum) and the
reference against its own (reference.forward + reference.mean_loss); test_kernels.py
shows the two losses agree, test_hand_step.py pins both to hand-worked numbers.

Tolerance: with h = 1e-5 the truncation error is ~h^2 |J'''| / 6 ~ 1e-11 and the
rounding error ~eps |J| / h ~ 1e-11, so rtol 1e-6 with an atol of 1e-8 (gradients
here are O(0.01-1)) has ample headroom while a wrong term (O(1e-2)) cannot hide.
"""
import numpy as np
import pytest

from fastnn import NeuralNetwork, reference
from fastnn.kernels import epoch, losses, network
from fastnn.kernels.bundles import Scratch

HIDDEN = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "identity"]
PAIRS = [
    ("mse", "identity"),
    ("mse", "sigmoid"),
    ("mse", "softmax"),
    ("log_loss", "sigmoid"),
    ("categorical_crossentropy", "softmax"),
]
# Non-default slopes/scales, so that a derivative ignoring alpha shows (ELU with
# alpha != 1 also has a derivative kink at 0, kept away from like ReLU's).
ALPHA = {"leaky_relu": 0.1, "elu": 0.7}
H = 1e-5
GRAD_TOL = dict(rtol=1e-6, atol=1e-8)
# Pre-activations must stay this far from the kinks at 0 (relu, leaky_relu, elu): a
# step of h moves any pre-activation by far less (|dZ| <= h * sum|inputs| ~ 1e-4).
KINK_MARGIN = 2e-2
N, D_IN, HIDDEN_SIZES, D_OUT = 5, 3, [4, 3], 3


def targets(loss, out, rng):
    if loss == "categorical_crossentropy":
        return np.eye(D_OUT)[rng.integers(0, D_OUT, N)]
    if loss == "log_loss":
        return np.where(rng.uniform(size=(N, D_OUT)) < 0.5, rng.integers(0, 2, (N, D_OUT)), rng.uniform(size=(N, D_OUT)))
    return rng.standard_normal((N, D_OUT)) if out == "identity" else rng.uniform(size=(N, D_OUT))


def hidden_preactivations(net, X):
    """Z of every hidden layer, from the reference's activations."""
    As = reference.forward(net, X)
    return [As[l] @ W + b for l, (W, b) in enumerate(zip(net.weights[:-1], net.biases[:-1]))]


def problem(activation, loss, out, seed):
    """A network with random weights AND biases, and data whose hidden pre-activations are
    all at least KINK_MARGIN from 0 (redrawn until so: a few draws at most)."""
    rng = np.random.default_rng(seed)
    net = reference.NeuralNetwork(D_IN, HIDDEN_SIZES, D_OUT, loss, activation=activation, output_activation=out,
                                  alpha=ALPHA.get(activation), seed=0)
    for _ in range(100):
        net.params[...] = rng.normal(0.0, 0.7, net.params.size)
        X = rng.standard_normal((N, D_IN))
        if min(np.abs(Z).min() for Z in hidden_preactivations(net, X)) > KINK_MARGIN:
            break
    else:
        raise AssertionError("could not draw data away from the activation kinks")
    return net, X, targets(loss, out, rng)


def numeric_gradient(J, theta):
    g = np.empty_like(theta)
    for i in range(theta.size):
        old = theta[i]
        theta[i] = old + H
        up = J()
        theta[i] = old - H
        down = J()
        theta[i] = old
        g[i] = (up - down) / (2 * H)
    return g


def kernel_loss_and_grad(net, X, Y, l2, sw=None):
    """J and its gradient from the kernels, called as epoch.fit_epoch calls them; with
    sample weights sw, J is the weighted mean loss."""
    sizes, act_codes = net.layer_sizes_array, net.activation_codes
    width = X.shape[0] * int(sizes[1:].sum())
    acts, deltas, grad = np.empty(width), np.empty(width), np.empty(net.params.size)
    sw = np.empty(0) if sw is None else sw
    weight_sum = float(sw.sum()) if sw.size else float(X.shape[0])
    scratch = Scratch(X.ravel(), Y.ravel(), np.empty(0), acts, deltas, np.empty(0), grad)
    spec = net._spec  # the engine's description of the network

    def J():
        A = network.forward_layers(X, net.params, sizes, act_codes, net.alpha, acts)
        penalty = 0.5 * l2 * network.sum_squares_weights(net.params, sizes)
        return losses.loss_sum(A, Y, sw, net.loss_code, net.clip_eps) / weight_sum + penalty

    epoch.batch_gradient(X, Y, sw, weight_sum, l2, spec.net(net.params), spec.objective(net.loss_code), None,
                         np.uint64(0), scratch)
    return J, grad


def reference_loss_and_grad(net, X, Y, l2, sw=None):
    def J():
        A = reference.forward(net, X)[-1]
        penalty = 0.5 * l2 * sum(np.sum(W * W) for W in net.weights)
        return reference.mean_loss(A, Y, net.loss_code, net.clip_eps, sw) + penalty

    return J, reference.gradients(net, reference.forward(net, X), Y, l2, sw=sw)


@pytest.mark.parametrize("impl", ["kernels", "reference"])
@pytest.mark.parametrize("l2", [0.0, 0.1])
@pytest.mark.parametrize("loss,out", PAIRS, ids=lambda v: v)
@pytest.mark.parametrize("activation", HIDDEN)
def test_gradient_matches_central_differences(activation, loss, out, l2, impl):
    seed = HIDDEN.index(activation) * 10 + PAIRS.index((loss, out))
    net, X, Y = problem(activation, loss, out, seed)
    J, grad = (kernel_loss_and_grad if impl == "kernels" else reference_loss_and_grad)(net, X, Y, l2)
    numeric = numeric_gradient(J, net.params)
    assert np.abs(numeric).max() > 1e-3  # a live check, not 0 == 0
    np.testing.assert_allclose(grad, numeric, **GRAD_TOL)


@pytest.mark.parametrize("impl", ["kernels", "reference"])
@pytest.mark.parametrize("loss,out", PAIRS, ids=lambda v: v)
def test_weighted_gradient_matches_central_differences(loss, out, impl):
    # J = sum_i w_i loss_i / sum_i w_i + 0.5 l2 sum(W^2): the weights reach the delta of each row.
    net, X, Y = problem("tanh", loss, out, 50 + PAIRS.index((loss, out)))
    sw = np.random.default_rng(7).uniform(0.1, 3.0, N)
    J, grad = (kernel_loss_and_grad if impl == "kernels" else reference_loss_and_grad)(net, X, Y, 0.1, sw)
    numeric = numeric_gradient(J, net.params)
    assert np.abs(numeric).max() > 1e-3
    np.testing.assert_allclose(grad, numeric, **GRAD_TOL)
    _, unweighted = (kernel_loss_and_grad if impl == "kernels" else reference_loss_and_grad)(net, X, Y, 0.1)
    assert not np.allclose(grad, unweighted, **GRAD_TOL)  # the weights do change the gradient


def test_gradient_check_catches_a_wrong_gradient():
    # The check has teeth: dropping the sigmoid's derivative at the output (the
    # tutorial's mse mistake) is far outside GRAD_TOL.
    net, X, Y = problem("tanh", "mse", "sigmoid", 99)
    J, grad = reference_loss_and_grad(net, X, Y, 0.0)
    As = reference.forward(net, X)
    wrong_delta_grad = As[-2].T @ (2 * (As[-1] - Y) / (N * D_OUT))  # missing A(1 - A)
    last_W = slice(net.params.size - D_OUT - HIDDEN_SIZES[-1] * D_OUT, net.params.size - D_OUT)
    numeric = numeric_gradient(J, net.params)
    np.testing.assert_allclose(grad[last_W], numeric[last_W], **GRAD_TOL)
    assert not np.allclose(wrong_delta_grad.ravel(), numeric[last_W], **GRAD_TOL)


def test_kernel_and_reference_nets_are_interchangeable():
    # The kernel helpers above take a reference.NeuralNetwork: its layout is fastnn's.
    a = NeuralNetwork(D_IN, HIDDEN_SIZES, D_OUT, "mse", seed=4)
    b = reference.NeuralNetwork(D_IN, HIDDEN_SIZES, D_OUT, "mse", seed=4)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.layer_sizes_array, b.layer_sizes_array)
    np.testing.assert_array_equal(a.activation_codes, b.activation_codes)
