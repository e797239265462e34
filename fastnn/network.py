"""NeuralNetwork: the tutorial's class, on one flat parameter buffer and compiled kernels."""
import numbers
from collections.abc import Sequence

import numpy as np

from . import io
from ._core import buffers, dropout as _dropout
from ._core import tables as _tables
from ._core.engine import Spec
from ._core.tutorial_engine import KernelEngine
from ._core.validation import check_choice, check_dtype, check_float, check_int, check_X, check_y
from .errors import DivergenceError
from .optimizers import SGD, OptimizerState


def _hidden_sizes(hidden_size):
    if isinstance(hidden_size, numbers.Integral) and not isinstance(hidden_size, bool):
        sizes = (hidden_size,)
    elif (isinstance(hidden_size, Sequence) and not isinstance(hidden_size, str)) or (
        isinstance(hidden_size, np.ndarray) and hidden_size.ndim == 1
    ):
        sizes = tuple(hidden_size)
    else:
        raise TypeError(f"hidden_size must be an int or a sequence of ints; got {hidden_size!r}.")
    return tuple(check_int("hidden_size" if len(sizes) == 1 else f"hidden_size[{i}]", h) for i, h in enumerate(sizes))


class NeuralNetwork:
    """A dense feed-forward network, drop-in for the tutorial's ``NeuralNetwork``.

    Parameters
    ----------
    input_size : int
        Number of input features.
    hidden_size : int or sequence of int
        Width of the hidden layer, or of each hidden layer in order (an empty
        sequence gives no hidden layer: a linear or logistic model).
    output_size : int
        Number of outputs (classes for categorical cross-entropy).
    loss_func : {'mse', 'log_loss', 'categorical_crossentropy'}, default 'mse'
        Loss whose gradient ``backward`` and ``Trainer`` follow.
    activation : {'sigmoid', 'tanh', 'relu', 'leaky_relu', 'elu', 'identity'}, default 'sigmoid'
        Activation of every hidden layer (the tutorial's is sigmoid).
    output_activation : {'identity', 'sigmoid', 'softmax'}, optional
        Defaults as in the tutorial: softmax for categorical cross-entropy, sigmoid
        otherwise. 'log_loss' needs sigmoid, categorical cross-entropy softmax; 'mse'
        takes any (identity for regression).
    alpha : float, optional
        Negative slope of leaky ReLU (default 0.01) or scale of ELU (default 1.0).
    init : {'normal', 'glorot', 'he'}, default 'normal'
        Weight initialisation: standard normal (the tutorial's), Glorot-uniform
        U(+-sqrt(6 / (fan_in + fan_out))) or He-normal N(0, 2 / fan_in). Biases start at 0.
    dtype : {'float64', 'float32'}, default float64
        Dtype of the parameters and of all computation.
    seed : int, optional
        Seeds the weights and the minibatch shuffling. With None, both draw from
        NumPy's global random state, in the tutorial's order: ``np.random.seed(s)``
        before construction gives exactly the tutorial's initial weights (and
        ``seed=s`` gives the same weights too).
    dropout : float or sequence of float in [0, 1), default 0
        Inverted dropout rate after every hidden layer (or one rate per hidden layer),
        applied by ``Trainer.train`` while training only; ``forward``, ``predict`` and
        ``backward`` never drop. Not stored by ``save``.
    compute_dtype : {None, 'bfloat16'}, default None
        Precision of the matrix products. None: the parameters' dtype. 'bfloat16'
        (float32 networks only): the operands of every matrix product are rounded to
        bfloat16 and accumulate in float32, through oneDNN, for training and for
        ``forward``/``predict``; parameters, optimizer state, losses and every
        element-wise pass (dropout's too) stay float32. Needs ``pip install 'fastnn[bf16]'`` and a CPU
        with AVX512-BF16 (``BFloat16Unavailable`` otherwise). See docs/training.md.

    Attributes
    ----------
    params : ndarray (n_params,)
        All weights and biases in one flat buffer: W_0, b_0, W_1, b_1, ...
    weights, biases : list of ndarray
        Views into ``params``: weights[l] (d_l, d_{l+1}), biases[l] (1, d_{l+1}).
    weights1, bias1, weights2, bias2 : ndarray
        The tutorial's names, for a single hidden layer; they read and write ``params``.
    a2 : ndarray
        Output of the last ``forward`` call, as in the tutorial.
    """

    _engine = KernelEngine

    def __init__(
        self,
        input_size,
        hidden_size,
        output_size,
        loss_func="mse",
        *,
        activation="sigmoid",
        output_activation=None,
        alpha=None,
        init="normal",
        dtype=np.float64,
        seed=None,
        dropout=0.0,
        compute_dtype=None,
    ):
        self.input_size = check_int("input_size", input_size)
        self.hidden_size = hidden_size
        self.hidden_sizes = _hidden_sizes(hidden_size)
        self.output_size = check_int("output_size", output_size)
        self.loss_func = check_choice("loss_func", loss_func, tuple(_tables.LOSSES))
        self.activation = check_choice("activation", activation, tuple(_tables.ACTIVATIONS))
        if output_activation is None:
            output_activation = _tables.DEFAULT_OUTPUT[loss_func]
        check_choice("output_activation", output_activation, tuple(_tables.OUTPUT_ACTIVATIONS))
        if output_activation not in _tables.ALLOWED_OUTPUTS[loss_func]:
            allowed = " or ".join(repr(a) for a in _tables.ALLOWED_OUTPUTS[loss_func])
            raise ValueError(
                f"output_activation {output_activation!r} does not fit loss_func {loss_func!r}; expected {allowed}."
            )
        self.output_activation = output_activation
        self.alpha = check_float("alpha", alpha if alpha is not None else _tables.DEFAULT_ALPHA.get(activation, 0.0), 0.0, low_open=False)
        self.init = check_choice("init", init, _tables.INITS)
        self.dtype = check_dtype(dtype)
        if seed is not None:
            seed = check_int("seed", seed, minimum=0)
            if seed >= 2**32:
                raise ValueError(f"seed must be an int in [0, 2**32); got {seed}.")
        self.seed = seed
        # The tutorial draws from the global state; a seed gets its own legacy stream, so
        # that seed=s and np.random.seed(s) give the same weights.
        self._rng = np.random if seed is None else np.random.RandomState(seed)

        self.layer_sizes = (self.input_size, *self.hidden_sizes, self.output_size)
        # Used by Trainer.train (unless it is given its own); forward/predict never drop.
        self.dropout = _dropout.rates(dropout, len(self.hidden_sizes))
        n_layers = len(self.layer_sizes) - 1
        act_codes = [_tables.ACTIVATIONS[activation]] * (n_layers - 1) + [_tables.OUTPUT_ACTIVATIONS[output_activation]]
        # What the engine knows of this network; the attributes below are its arrays.
        self._spec = Spec(self.layer_sizes, act_codes, self.alpha, self.dtype)
        self.layer_sizes_array = self._spec.sizes
        self.activation_codes = self._spec.act_codes
        self.loss_code = _tables.LOSSES[loss_func]
        self.clip_eps = self._spec.clip_eps
        self.params = buffers.zeros(self._spec.n_params, self.dtype, buffers.PARAMS)
        self._bind_views()
        self._initialise()
        self.a2 = None
        self.compute_dtype = self._check_compute_dtype(compute_dtype)

    def _check_compute_dtype(self, compute_dtype):
        """None, or 'bfloat16' after checking that it fits this network and can run here;
        the engine then becomes its bfloat16 variant (imported only now)."""
        if compute_dtype is None:
            return None
        check_choice("compute_dtype", compute_dtype, ("bfloat16",))
        if self.dtype != np.float32:
            raise ValueError(f"compute_dtype='bfloat16' needs dtype float32 (float32 master weights); got {self.dtype}.")
        self._engine = self._engine.with_compute_dtype(compute_dtype)
        return compute_dtype

    def _bind_views(self):
        """``weights`` and ``biases`` as views of ``params`` (biases (1, d), as the tutorial's)."""
        weights, biases = self._spec.unpack(self.params)
        self.weights, self.biases = weights, [b.reshape(1, -1) for b in biases]

    def _initialise(self):
        for W in self.weights:
            fan_in, fan_out = W.shape
            # Drawn as float64 in layer order (the tutorial's randn calls), then cast.
            if self.init == "normal":
                W[...] = self._rng.randn(fan_in, fan_out)
            elif self.init == "glorot":
                bound = np.sqrt(6.0 / (fan_in + fan_out))
                W[...] = self._rng.uniform(-bound, bound, (fan_in, fan_out))
            else:  # he
                W[...] = self._rng.randn(fan_in, fan_out) * np.sqrt(2.0 / fan_in)

    # -- the tutorial's parameter names, for one hidden layer -------------------------
    def _tutorial_param(index, kind):
        name = f"weights{index + 1}" if kind == "weight" else f"bias{index + 1}"

        def getter(self):
            self._require_one_hidden(name)
            return (self.weights if kind == "weight" else self.biases)[index]

        def setter(self, value):
            current = getter(self)
            value = np.asarray(value)
            # The exact shape, or (d,) for a (1, d) bias: a same-size array of another
            # shape (a transposed weight matrix) must not be silently reshaped.
            if value.shape != current.shape and not (current.shape[0] == 1 and value.shape == current.shape[1:]):
                raise ValueError(f"{name} must have shape {current.shape}; got {value.shape}.")
            value = value.reshape(current.shape)
            if not np.isfinite(value).all():
                raise ValueError(f"{name} must be finite.")
            current[...] = value

        return property(getter, setter)

    weights1 = _tutorial_param(0, "weight")
    bias1 = _tutorial_param(0, "bias")
    weights2 = _tutorial_param(1, "weight")
    bias2 = _tutorial_param(1, "bias")
    del _tutorial_param

    def _require_one_hidden(self, name):
        if len(self.hidden_sizes) != 1:
            raise AttributeError(
                f"{name} exists for one hidden layer only; this network has {len(self.hidden_sizes)}: "
                "use .weights[l] and .biases[l]."
            )

    # -- the tutorial's methods ---------------------------------------------------------
    def forward(self, X):
        """Output activations for X (n_samples, input_size); also kept as ``self.a2``."""
        X = check_X(X, self.input_size, self.dtype)
        self.a2 = self._engine.predict(self, X)
        return self.a2

    def backward(self, X, y, learning_rate):
        """One full-batch gradient-descent step on (X, y), as the tutorial's ``backward``.

        The gradient is that of ``loss_func`` averaged over the samples. Unlike the
        tutorial, which reuses the activations of the last ``forward`` call, this
        runs its own forward pass on X.
        """
        X = check_X(X, self.input_size, self.dtype)
        Y = check_y(y, X.shape[0], self.loss_func, self.output_size, self.dtype)
        lr = check_float("learning_rate", learning_rate)
        n = X.shape[0]
        optimizer = SGD()
        before = self.params.copy()
        loss = self._engine.train_epoch(
            self, X, Y, np.arange(n, dtype=np.int64), n, optimizer,
            OptimizerState(optimizer, self.params.size, self.dtype), lr, self.loss_code,
            self._engine.workspace(self, n),
        )
        if not (np.isfinite(loss) and self._engine.all_finite(self.params)):
            self.params[...] = before
            raise DivergenceError(
                f"backward diverged: the loss was {loss} and the step gave non-finite weights; "
                f"the weights are unchanged. Try a smaller learning_rate (got {lr}) or scale X.",
                1,
            )

    def predict(self, X):
        """Predictions for X: class indices (n,) for categorical cross-entropy, 0/1 labels
        (n, output_size) for log_loss, the outputs themselves for mse."""
        out = self.forward(X)
        if self.loss_func == "categorical_crossentropy":
            return np.argmax(out, axis=1)
        if self.loss_func == "log_loss":
            return (out > 0.5).astype(np.int64)
        return out

    def save(self, path, *, metadata=None):
        """Save this network to ``path`` (.npz: arrays plus a JSON header, written atomically).

        ``fastnn.load(path)`` gives it back; ``metadata`` (a JSON-serialisable dict) comes
        back as ``model.metadata``. See ``fastnn.io.save_model``.
        """
        io.save_model(self, path, metadata)

    # -- copies: pickle and copy.deepcopy ---------------------------------------------------
    def __getstate__(self):
        # weights and biases are views of params: pickled as they are, they would come back
        # as arrays of their own, which training (it writes params) would leave stale.
        state = self.__dict__.copy()
        del state["weights"], state["biases"]
        if state["_rng"] is np.random:  # unseeded: NumPy's global generator, which is not ours to copy
            state["_rng"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self._rng is None:
            self._rng = np.random
        self.params = buffers.copy(self.params, self.dtype, buffers.PARAMS)
        self._bind_views()

    def __repr__(self):
        return (
            f"{type(self).__name__}(layers={self.layer_sizes}, activation={self.activation!r}, "
            f"output_activation={self.output_activation!r}, loss_func={self.loss_func!r}, dtype={self.dtype.name}"
            + (f", compute_dtype={self.compute_dtype!r})" if self.compute_dtype else ")")
        )
