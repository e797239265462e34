"""The individual kernels of fastnn.kernels against their counterparts in fastnn.reference.

The kernels get the argument types fastnn's engine gives them (C-contiguous writable
arrays of the network's dtype, int64 sizes and codes, Python floats and ints), so
calling them here compiles no signature that training does not.

- DenseLayer: kernels.dense.dense_forward / dense_backward on one 784 -> width ReLU layer
  (backward also computes the delta of a ReLU input layer, as every layer but the first
  does), against the per-layer expressions of reference.forward / reference.gradients.
- NetworkPass: whole-network passes of 784 -> width -> 10, kernels.network.forward_layers
  and the output delta + backward pass against reference.forward and reference.gradients.
- AdamUpdate: kernels.optimizers.update against reference.update over the flat buffer of
  784 -> width -> 10 (the batch size plays no part).
"""
import timeit

import numpy as np

from .common import CLASSES, DTYPES, GRID, GRID_NAMES, IMPLEMENTATIONS, LEARNING_RATE, SEED, WIDE_FEATURES, WIDTHS
from .common import build, fix_threads, train_epochs, wide


def _trained_net(implementation, width, dtype):
    """A 784 -> width -> 10 ReLU network after one short epoch (warm kernels, real weights)."""
    X, Y = wide(dtype)
    net, trainer = build(implementation, WIDE_FEATURES, width, dtype)
    train_epochs(trainer, X[:256], Y[:256], 32)
    return net


class DenseLayer:
    params = GRID
    param_names = GRID_NAMES
    timer = timeit.default_timer

    def setup(self, implementation, width, batch_size, dtype):
        from fastnn.kernels import codes

        fix_threads()
        rng = np.random.default_rng(SEED)
        net = _trained_net(implementation, width, dtype)
        self.code, self.alpha, self.l2 = int(codes.RELU), float(net.alpha), 0.0
        self.A_prev = np.maximum(rng.standard_normal((batch_size, WIDE_FEATURES)), 0).astype(dtype)  # ReLU outputs
        self.W = net.weights[0]  # (784, width) view of the flat buffer, as in the engine
        self.b = net.params[WIDE_FEATURES * width : WIDE_FEATURES * width + width]  # (width,)
        self.D = rng.standard_normal((batch_size, width)).astype(dtype)
        self.A = np.empty((batch_size, width), dtype=dtype)
        self.dW = np.empty_like(self.W)
        self.db = np.empty_like(self.b)
        self.D_prev = np.empty_like(self.A_prev)
        if implementation == "fastnn":
            from fastnn.kernels.dense import dense_backward, dense_forward

            self.forward = lambda: dense_forward(self.A_prev, self.W, self.b, self.code, self.alpha, self.A)
            self.backward = lambda: dense_backward(
                self.A_prev, self.W, self.D, self.l2, self.dW, self.db, self.D_prev, self.code, self.alpha
            )
        else:
            from fastnn import reference

            # The loop bodies of reference.forward and reference.gradients for one layer.
            def forward():
                return reference.activate(self.A_prev @ self.W + self.b, self.code, self.alpha)

            def backward():
                dW = self.A_prev.T @ self.D + self.l2 * self.W
                db = self.D.sum(axis=0)
                D_prev = (self.D @ self.W.T) * reference.derivative(self.A_prev, self.code, self.alpha)
                return dW, db, D_prev

            self.forward, self.backward = forward, backward
        self.forward()
        self.backward()

    def time_dense_forward(self, implementation, width, batch_size, dtype):
        self.forward()

    def time_dense_backward(self, implementation, width, batch_size, dtype):
        self.backward()


class NetworkPass:
    params = GRID
    param_names = GRID_NAMES
    timer = timeit.default_timer

    def setup(self, implementation, width, batch_size, dtype):
        fix_threads()
        X, Y = wide(dtype)
        self.X, self.Y = X[:batch_size].copy(), Y[:batch_size].copy()
        net = self.net = _trained_net(implementation, width, dtype)
        if implementation == "fastnn":
            from fastnn.kernels.losses import output_delta
            from fastnn.kernels.network import backward_layers, forward_layers

            # The engine's work buffers (fastnn._core.engine.Workspace) for this batch size.
            n_act = batch_size * (width + CLASSES)
            acts, deltas = np.empty(n_act, dtype=dtype), np.empty(n_act, dtype=dtype)
            grad = np.empty_like(net.params)
            unit_weights = np.empty(0, dtype=dtype)  # empty: every row weighs 1
            args = (net.params, net.layer_sizes_array, net.activation_codes, net.alpha)
            out = slice(batch_size * width, n_act)  # the output layer's block of acts and deltas
            A_out, D_out = acts[out].reshape(batch_size, CLASSES), deltas[out].reshape(batch_size, CLASSES)
            self.forward = lambda: forward_layers(self.X, *args, acts)

            def gradients():  # what epoch.batch_gradient does after the forward pass
                output_delta(A_out, self.Y, unit_weights, net.loss_code, int(net.activation_codes[-1]), 1.0 / batch_size, D_out)
                backward_layers(self.X, *args, acts, deltas, 0.0, grad)

            self.gradients = gradients
        else:
            from fastnn import reference

            self.As = reference.forward(net, self.X)
            self.forward = lambda: reference.forward(net, self.X)
            self.gradients = lambda: reference.gradients(net, self.As, self.Y, 0.0)
        self.forward()  # the gradients read the activations of this forward pass
        self.gradients()

    def time_forward(self, implementation, width, batch_size, dtype):
        self.forward()

    def time_gradients(self, implementation, width, batch_size, dtype):
        self.gradients()


class AdamUpdate:
    params = (IMPLEMENTATIONS, WIDTHS, DTYPES)
    param_names = ["implementation", "width", "dtype"]
    timer = timeit.default_timer

    def setup(self, implementation, width, dtype):
        from fastnn import Adam
        from fastnn.optimizers import OptimizerState

        fix_threads()
        net = _trained_net(implementation, width, dtype)
        self.theta = net.params
        # A small gradient, so that millions of updates leave the weights finite.
        self.g = (1e-3 * np.random.default_rng(SEED).standard_normal(self.theta.size)).astype(dtype)
        optimizer = Adam()
        self.state = OptimizerState(optimizer, self.theta.size, net.dtype)
        if implementation == "fastnn":
            from fastnn._core.engine import hyperparameters
            from fastnn.kernels.optimizers import update

            mu, beta1, beta2, eps = hyperparameters(optimizer)
            state, code = self.state, optimizer.code

            def step():
                state.t += 1
                update(code, self.theta, self.g, state.m, state.v, LEARNING_RATE, mu, beta1, beta2, eps, state.t)

            self.step = step
        else:
            from fastnn import reference

            self.step = lambda: reference.update(optimizer, self.theta, self.g, self.state, LEARNING_RATE)
        self.step()

    def time_update(self, implementation, width, dtype):
        self.step()
