"""One SGD step of a tiny network, worked out by hand (scikit-learn's habit).

Network: 2 inputs -> 2 hidden (ReLU) -> 1 output (sigmoid), loss log_loss with
fastnn's convention L = -1/(n k) sum [y log a + (1 - y) log(1 - a)], whose output
delta is dL/dz = (a - y) / (n k). Learning rate 0.5.

    W1 = [[0.5, -0.5],     b1 = [0.0, 0.25]     W2 = [[ 1.0],    b2 = [0.5]
          [0.25, 0.5]]                                [-1.0]]

Batch of two samples, x1 = [1, 2] with y1 = 1 and x2 = [2, -1] with y2 = 0:

  forward
    z1(x1) = [1*0.5 + 2*0.25 + 0,  1*(-0.5) + 2*0.5 + 0.25] = [1.0, 0.75]  -> h1 = [1.0, 0.75]
    z1(x2) = [2*0.5 - 1*0.25 + 0,  2*(-0.5) - 1*0.5 + 0.25] = [0.75, -1.25] -> h2 = [0.75, 0]
             (the second unit is off for x2: ReLU gates its gradient)
    z2 = [1.0 - 0.75 + 0.5, 0.75 - 0 + 0.5] = [0.75, 1.25]
    a  = sigmoid(z2) = [1 / (1 + e^-0.75), 1 / (1 + e^-1.25)] = [0.679178699175393, 0.7772998611746911]
  loss
    L = -1/2 [log(0.679178699175393) + log(1 - 0.7772998611746911)]
      = -1/2 [-0.386871006114900 - 1.501929081345372] = 0.9444000437301362
  backward (n = 2, k = 1)
    d   = (a - y) / 2 = [(0.679178699175393 - 1) / 2, 0.7772998611746911 / 2]
        = [-0.1604106504123035, 0.38864993058734554]                      (call them d1, d2)
    dW2 = h^T d = [1.0 d1 + 0.75 d2, 0.75 d1 + 0 d2] = [0.13107679752820567, -0.12030798780922763]
    db2 = d1 + d2 = 0.22823928017504203
    hidden delta = (d W2^T) * relu'(z1):  x1 -> [d1, -d1],  x2 -> [d2, 0]  (unit 2 off)
    dW1 = X^T delta = [[1 d1 + 2 d2, 1 (-d1) + 2 * 0], [2 d1 - 1 d2, 2 (-d1) - 1 * 0]]
        = [[0.6168892107623876, 0.1604106504123035], [-0.7094712314119526, 0.320821300824607]]
    db1 = [d1 + d2, -d1] = [0.22823928017504203, 0.1604106504123035]
  step theta <- theta - 0.5 grad
    W1 = [[0.5 - 0.30844460538119380, -0.5 - 0.08020532520615175],
          [0.25 + 0.35473561570597630, 0.5 - 0.16041065041230350]]
       = [[0.19155539461880622, -0.5802053252061518], [0.6047356157059762, 0.3395893495876965]]
    b1 = [0 - 0.11411964008752101, 0.25 - 0.08020532520615175] = [-0.11411964008752101, 0.16979467479384824]
    W2 = [[1 - 0.06553839876410284], [-1 + 0.06015399390461382]] = [[0.9344616012358972], [-0.9398460060953862]]
    b2 = 0.5 - 0.11411964008752101 = 0.385880359912479

Batch of one (x1, y1 only): d = a1 - 1 = -0.320821300824607, L = -log(a1) = 0.38687100611489994,
    dW2 = [1.0 d, 0.75 d] = [-0.320821300824607, -0.24061597561845527], db2 = d,
    delta = [d, -d], dW1 = [[d, -d], [2d, -2d]], db1 = [d, -d];
    after the step: W1 = [[0.6604106504123035, -0.6604106504123035], [0.570821300824607, 0.17917869917539297]],
    b1 = [0.1604106504123035, 0.08958934958769649], W2 = [[1.1604106504123035], [-0.8796920121907723]],
    b2 = 0.6604106504123035.
"""
import numpy as np
import pytest

import fastnn
from fastnn import reference

LR = 0.5
W1 = [[0.5, -0.5], [0.25, 0.5]]
B1 = [[0.0, 0.25]]
W2 = [[1.0], [-1.0]]
B2 = [[0.5]]

X2 = np.array([[1.0, 2.0], [2.0, -1.0]])
Y2 = np.array([[1.0], [0.0]])
CASES = {
    "batch_of_2": dict(
        X=X2, y=Y2,
        a=[[0.679178699175393], [0.7772998611746911]],
        loss=0.9444000437301362,
        grad=dict(W1=[[0.6168892107623876, 0.1604106504123035], [-0.7094712314119526, 0.320821300824607]],
                  b1=[[0.22823928017504203, 0.1604106504123035]],
                  W2=[[0.13107679752820567], [-0.12030798780922763]],
                  b2=[[0.22823928017504203]]),
        after=dict(W1=[[0.19155539461880622, -0.5802053252061518], [0.6047356157059762, 0.3395893495876965]],
                   b1=[[-0.11411964008752101, 0.16979467479384824]],
                   W2=[[0.9344616012358972], [-0.9398460060953862]],
                   b2=[[0.385880359912479]]),
    ),
    "batch_of_1": dict(
        X=X2[:1], y=Y2[:1],
        a=[[0.679178699175393]],
        loss=0.38687100611489994,
        grad=dict(W1=[[-0.320821300824607, 0.320821300824607], [-0.641642601649214, 0.641642601649214]],
                  b1=[[-0.320821300824607, 0.320821300824607]],
                  W2=[[-0.320821300824607], [-0.24061597561845527]],
                  b2=[[-0.320821300824607]]),
        after=dict(W1=[[0.6604106504123035, -0.6604106504123035], [0.570821300824607, 0.17917869917539297]],
                   b1=[[0.1604106504123035, 0.08958934958769649]],
                   W2=[[1.1604106504123035], [-0.8796920121907723]],
                   b2=[[0.6604106504123035]]),
    ),
}
IMPLS = {"fastnn": fastnn, "reference": reference}
RTOL = 1e-12  # the literals carry 16 significant digits


def tiny_network(impl):
    nn = IMPLS[impl].NeuralNetwork(2, 2, 1, "log_loss", activation="relu")
    assert nn.output_activation == "sigmoid"  # the tutorial's default for log_loss
    nn.weights1, nn.bias1, nn.weights2, nn.bias2 = W1, B1, W2, B2
    return nn


def assert_params(nn, expected):
    for name, attr in (("W1", "weights1"), ("b1", "bias1"), ("W2", "weights2"), ("b2", "bias2")):
        np.testing.assert_allclose(getattr(nn, attr), expected[name], rtol=RTOL, atol=1e-15, err_msg=name)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", list(IMPLS))
def test_forward_and_loss(impl, case):
    c = CASES[case]
    nn = tiny_network(impl)
    a = nn.forward(c["X"])
    np.testing.assert_allclose(a, c["a"], rtol=RTOL)
    assert nn.a2 is a
    loss = IMPLS[impl].Trainer(nn, "log_loss").calculate_loss(c["y"], a)
    np.testing.assert_allclose(loss, c["loss"], rtol=RTOL)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", list(IMPLS))
def test_backward_takes_one_sgd_step(impl, case):
    c = CASES[case]
    nn = tiny_network(impl)
    nn.backward(c["X"], c["y"], LR)
    assert_params(nn, c["after"])


@pytest.mark.parametrize("case", list(CASES))
def test_reference_gradient(case):
    c = CASES[case]
    nn = tiny_network("reference")
    grad = reference.gradients(nn, reference.forward(nn, c["X"]), c["y"], 0.0)
    g = c["grad"]
    want = np.concatenate([np.ravel(g["W1"]), np.ravel(g["b1"]), np.ravel(g["W2"]), np.ravel(g["b2"])])
    np.testing.assert_allclose(grad, want, rtol=RTOL, atol=1e-15)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", list(IMPLS))
def test_one_full_batch_epoch_is_the_same_step(impl, case):
    # Trainer's full-batch epoch: the loss is measured before the update, as the tutorial does.
    c = CASES[case]
    nn = tiny_network(impl)
    trainer = IMPLS[impl].Trainer(nn, "log_loss").train(c["X"], c["y"], None, None, 1, LR)
    np.testing.assert_allclose(trainer.train_loss, [c["loss"]], rtol=RTOL)
    assert_params(nn, c["after"])
