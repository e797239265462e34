"""scikit-learn drop-ins: ``MLPClassifier`` and ``MLPRegressor`` on fastnn's kernels.

Same constructor signatures, defaults, methods, fitted attributes, warnings and error
messages as scikit-learn 1.9's estimators, and the same training trajectory at the same
``random_state``: the random numbers are drawn in scikit-learn's order (weights then
biases per layer as float64, the early-stopping split, one shuffle per epoch that
compounds ``idx = idx[perm]``), and the losses, L2 term, gradients and updates follow
its conventions. An epoch is one compiled call (``fastnn.kernels.epoch.fit_epoch``); L-BFGS is
scipy's, driven by one compiled full-batch loss-and-gradient call.

Extensions, off by default: hidden activations 'leaky_relu' (slope 0.01) and 'elu'
(scale 1.0), the keyword-only ``weight_decay`` (decoupled weight decay, AdamW with
'adam'), the keyword-only ``dropout`` (inverted dropout of the hidden layers while
fitting with 'adam' or 'sgd'; masks from ``fastnn.kernels.dropout``'s counter-based
stream, keyed by ``random_state``) and the keyword-only ``dtype`` (compute in float32
or float64 whatever the input's dtype; by default float32 input stays float32, anything
else becomes float64), and the keyword-only ``compute_dtype='bfloat16'`` (bfloat16 matrix
products on float32 weights, through oneDNN: ``fastnn._core.bf16``).
"""
import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.metrics import accuracy_score, r2_score
from sklearn.neural_network import MLPRegressor as _SkMLPRegressor
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import column_or_1d
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from ._sk_base import _BaseMLP


_PARAMS_DOC = """
    All parameters, attributes and methods are scikit-learn 1.9's (see
    ``sklearn.neural_network.{name}``); fastnn adds:

    activation : {{'identity', 'logistic', 'tanh', 'relu', 'leaky_relu', 'elu'}}, default='relu'
        'leaky_relu' (negative slope 0.01) and 'elu' (scale 1.0) are fastnn extensions.
    dropout : float in [0, 1) or sequence of float, default=0.0
        Keyword-only fastnn extension: inverted dropout rate after every hidden layer,
        or one rate per hidden layer. Only while fitting with solver='adam' or 'sgd'
        (L-BFGS needs a deterministic objective: dropout > 0 with 'lbfgs' raises a
        ValueError); ``predict`` never drops, and kept units are scaled by 1 / (1 - p)
        so it needs no rescaling. ``loss_curve_`` holds the losses of the dropped
        network. The masks come from a counter-based stream (splitmix64, as in
        ``fastnn.kernels.epoch``; the rate is realised as round(p 2^32) / 2^32): an int
        ``random_state`` seeds its key through ``numpy.random.SeedSequence``, leaving
        the shuffles and the early-stopping split as without dropout; a RandomState
        instance (or None: NumPy's global one) gives the key by one draw after the
        early-stopping split. ``partial_fit`` and ``warm_start`` continue the stream;
        a new fit restarts it. 0 is exactly no dropout.
    dtype : {{'float32', 'float64'}}, default=None
        Keyword-only fastnn extension: the dtype of the weights and of all computation.
        None follows the input: float32 stays float32, anything else is float64.
    weight_decay : float >= 0, default=0.0
        Keyword-only fastnn extension: decoupled weight decay (Loshchilov & Hutter; AdamW
        with solver='adam'): each update also subtracts learning_rate * weight_decay * W
        from the weights (not the intercepts), W taken before the update. Unlike
        ``alpha`` it is not part of the loss. Only with solver='adam' or 'sgd' (it is an
        update rule: with 'lbfgs' a value > 0 raises a ValueError). 0 is exactly no decay.
    compute_dtype : {{'bfloat16'}}, default=None
        Keyword-only fastnn extension: the precision of the matrix products. None: the
        weights' dtype. 'bfloat16': the operands of every product (while fitting, and in
        ``predict``/``predict_proba``, so also early stopping's validation scores) are
        rounded to bfloat16 and accumulate in float32, through oneDNN; the weights
        (float32 master weights: ``dtype=None`` trains float32 whatever the input's
        dtype), the optimizer state, the loss and every element-wise pass stay float32.
        Faster for wide hidden layers, accurate to about 2^-8 of each product
        (docs/training.md, "Mixed precision"). Only with solver='adam' or 'sgd' and
        with ``dtype`` None or 'float32': otherwise a ValueError. Needs
        ``pip install 'fastnn[bf16]'`` and a CPU with AVX512-BF16, else fit (and predict)
        raise ``fastnn.BFloat16Unavailable`` saying which is missing. ``predict`` reads
        the current value: ``set_params(compute_dtype=None)`` predicts a bfloat16-trained
        estimator with float32 products. ``fastnn.to_onnx`` exports float32 products.
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = "Multi-layer perceptron classifier: scikit-learn's, on fastnn's kernels.\n" + _PARAMS_DOC.format(
        name="MLPClassifier")

    def __init__(
        self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001, batch_size="auto",
        learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
        random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9, nesterovs_momentum=True,
        early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
        n_iter_no_change=10, max_fun=15000, dtype=None, dropout=0.0, weight_decay=0.0,
        compute_dtype=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.compute_dtype = compute_dtype

    loss = "log_loss"  # scikit-learn's classifier has it as a fixed attribute, not a parameter
    _score_function = staticmethod(accuracy_score)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self, X, y, accept_sparse=["csr", "csc"], multi_output=True, dtype=(np.float64, np.float32), reset=reset
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the previous call "
                        f"to fit. Previously got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. 'y' has {classes}."
                )
        # bool, so that float32 data is not upcast by the targets
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    def _output_to_prediction(self, out):
        if self.n_outputs_ == 1:
            out = out.ravel()
        return self._label_binarizer.inverse_transform(out)

    def predict(self, X):
        """Class labels for X: (n_samples,), or (n_samples, n_classes) for multi-label."""
        check_is_fitted(self)
        return self._output_to_prediction(self._forward_pass_fast(X))

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y); ``classes`` is required on the first call."""
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_log_proba(self, X):
        """Log of ``predict_proba``."""
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def predict_proba(self, X):
        """Probabilities (n_samples, n_classes)."""
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = "Multi-layer perceptron regressor: scikit-learn's, on fastnn's kernels.\n" + _PARAMS_DOC.format(
        name="MLPRegressor")

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": _SkMLPRegressor._parameter_constraints["loss"],
    }

    def __init__(
        self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
        batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
        shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
        nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
        epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dtype=None, dropout=0.0, weight_decay=0.0,
        compute_dtype=None,
    ):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.compute_dtype = compute_dtype

    _score_function = staticmethod(r2_score)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
            dtype=(np.float64, np.float32), reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _output_to_prediction(self, out):
        return out.ravel() if out.shape[1] == 1 else out

    def predict(self, X):
        """Predicted values (n_samples,) or (n_samples, n_outputs)."""
        check_is_fitted(self)
        return self._output_to_prediction(self._forward_pass_fast(X))

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)


__all__ = ["MLPClassifier", "MLPRegressor"]
