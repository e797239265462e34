"""The shared fit loop of ``fastnn.sklearn``'s estimators: scikit-learn's bookkeeping
(initialisation order, early stopping, warm start, partial_fit, L-BFGS through scipy)
around the compiled epoch of ``fastnn._core.sk_engine``. Not public: use MLPClassifier/MLPRegressor.
"""
import numbers
import warnings

import numpy as np
import scipy.optimize
from sklearn.base import BaseEstimator, _fit_context, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network._multilayer_perceptron import BaseMultilayerPerceptron as _SkMLP
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, validate_data

from ._core import dropout as _dropout
from ._core import sk_engine as engine

_STOCHASTIC_SOLVERS = ("sgd", "adam")


class _BaseMLP(BaseEstimator):
    """Shared by MLPClassifier and MLPRegressor; not for direct use."""

    # scikit-learn's own constraint objects (so the messages are its messages, word for
    # word), with fastnn's extra activations, dropout, weight_decay, dtype and compute_dtype. A sequence
    # of dropout rates is checked element by element at fit, when the number of hidden layers is known.
    _parameter_constraints: dict = {
        **_SkMLP._parameter_constraints,
        "activation": [StrOptions(set(engine.HIDDEN_ACTIVATIONS))],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left"), "array-like"],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "dtype": [None, StrOptions({"float32", "float64"}), Options(type, {np.float32, np.float64})],
        "compute_dtype": [None, StrOptions({"bfloat16"})],
    }

    # -- the network as the kernels see it -------------------------------------------------
    def _spec(self):
        units = [self.coefs_[0].shape[0]] + [W.shape[1] for W in self.coefs_]
        # getattr: an estimator pickled before compute_dtype existed predicts as it did.
        return engine.Spec(units, self.activation, self.out_activation_, self.coefs_[0].dtype,
                           getattr(self, "compute_dtype", None))

    def _theta(self, spec):
        """The flat parameters: the cached buffer while coefs_/intercepts_ still view it."""
        theta = getattr(self, "_packed", None)
        if theta is not None and theta.dtype == spec.dtype and theta.size == spec.n_params:
            coefs, intercepts = spec.unpack(theta)
            if all(
                a.shape == b.shape and np.shares_memory(a, b) and a.ctypes.data == b.ctypes.data
                for a, b in zip(coefs + intercepts, list(self.coefs_) + list(self.intercepts_))
            ):
                return theta
        return spec.pack(self.coefs_, self.intercepts_)

    def _set_theta(self, spec, theta):
        self._packed = theta
        self.coefs_, self.intercepts_ = spec.unpack(theta)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_packed", None)  # coefs_/intercepts_ hold the same numbers
        return state

    def _forward_pass_fast(self, X, check_input=True):
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32), reset=False)
        spec = self._spec()
        return engine.predict(spec, self._theta(spec), X)

    # -- fitting ----------------------------------------------------------------------------
    def _fit_dtype(self, X):
        if self.compute_dtype is not None:
            return np.dtype(np.float32)  # bfloat16 products train float32 master weights
        if self.dtype is not None:
            return np.dtype(self.dtype)
        return np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)

    def _init_coef(self, fan_in, fan_out, dtype):
        # Glorot's uniform initialisation, as scikit-learn draws it: float64, then cast.
        factor = 2.0 if self.activation == "logistic" else 6.0
        init_bound = np.sqrt(factor / (fan_in + fan_out))
        coef_init = self._random_state.uniform(-init_bound, init_bound, (fan_in, fan_out))
        intercept_init = self._random_state.uniform(-init_bound, init_bound, fan_out)
        return coef_init.astype(dtype, copy=False), intercept_init.astype(dtype, copy=False)

    def _initialize(self, y, layer_units, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        if not is_classifier(self):
            self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:
            self.out_activation_ = "logistic"
        coefs, intercepts = [], []
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            W, b = self._init_coef(fan_in, fan_out, dtype)
            coefs.append(W)
            intercepts.append(b)
        spec = engine.Spec(layer_units, self.activation, self.out_activation_, dtype, self.compute_dtype)
        self._set_theta(spec, spec.pack(coefs, intercepts))
        self._best_theta = self._packed.copy()
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        if np.any(np.array(hidden_layer_sizes) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden_layer_sizes)
        thresholds = _dropout.thresholds(_dropout.rates(self.dropout, len(hidden_layer_sizes)))
        if np.any(thresholds > 0) and self.solver not in _STOCHASTIC_SOLVERS:
            raise ValueError(
                f"dropout needs a stochastic solver ('adam' or 'sgd'): L-BFGS needs a deterministic objective. "
                f"Got dropout={self.dropout!r} with solver={self.solver!r}; use dropout=0 or another solver."
            )
        if self.weight_decay > 0 and self.solver not in _STOCHASTIC_SOLVERS:
            raise ValueError(
                f"weight_decay is an update rule of the stochastic solvers ('adam' or 'sgd'); got "
                f"weight_decay={self.weight_decay!r} with solver={self.solver!r}: use alpha (an L2 term in the "
                "loss) with 'lbfgs', or another solver."
            )
        if self.compute_dtype is not None:
            self._check_compute_dtype()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)

        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [n_features] + hidden_layer_sizes + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, self._fit_dtype(X))
            self._dropout_stream = None  # a new fit draws a new mask stream
        spec = self._spec()
        if list(spec.sizes) != layer_units:
            raise ValueError(
                f"The network fitted before has layer sizes {list(spec.sizes)}; this call needs {layer_units} "
                "(hidden_layer_sizes or the number of outputs changed). Refit with warm_start=False."
            )
        theta = self._theta(spec)
        self._set_theta(spec, theta)
        data = engine.data(X, y, sample_weight, spec.dtype)
        if self.solver in _STOCHASTIC_SOLVERS:
            self._fit_stochastic(spec, theta, X, y, data, sample_weight, incremental, thresholds)
        else:
            self._fit_lbfgs(spec, theta, data)
        if not np.isfinite(self._packed).all():
            raise ValueError(engine.NON_FINITE)
        return self

    def _check_compute_dtype(self):
        """What compute_dtype='bfloat16' cannot do (before anything is loaded), then whether
        it can run here: ``fastnn.BFloat16Unavailable`` names the missing extra or CPU feature."""
        given = f"compute_dtype={self.compute_dtype!r}"
        if self.solver not in _STOCHASTIC_SOLVERS:
            # No full-batch bfloat16 kernel, and L-BFGS's line search needs a loss and a
            # gradient that agree to more than bfloat16's 8 bits.
            raise ValueError(f"{given} needs a stochastic solver ('adam' or 'sgd'); got solver={self.solver!r}. "
                             "Use compute_dtype=None with 'lbfgs'.")
        if self.dtype is not None and np.dtype(self.dtype) != np.float32:
            raise ValueError(f"{given} trains float32 weights (bfloat16 products, float32 master weights); got "
                             f"dtype={self.dtype!r}. Use dtype=None or 'float32', or compute_dtype=None.")
        engine.require(self.compute_dtype)

    def _fit_lbfgs(self, spec, theta, data):
        order = spec.sklearn_order()  # scipy sees scikit-learn's packing: the same iterates
        n = data.Y.shape[0]
        idx = np.arange(n, dtype=np.int64)
        work = engine.lbfgs_workspace(spec, n)

        def fun(x):
            theta[order] = x
            loss = engine.loss_grad(spec, data, idx, theta, self.alpha, work)
            return loss, work.grad[order].astype(np.float64)

        iprint = 1 if (self.verbose is True or self.verbose >= 1) else -1
        with engine.lbfgs_calls(work):  # a split fit's helper thread stops with it
            opt_res = scipy.optimize.minimize(
                fun,
                theta[order].astype(np.float64),
                method="L-BFGS-B",
                jac=True,
                options={
                    "maxfun": self.max_fun,
                    "maxiter": self.max_iter,
                    "gtol": self.tol,
                    **_get_additional_lbfgs_options_dict("iprint", iprint),
                },
            )
        self.n_iter_ = _check_optimize_result("lbfgs", opt_res, self.max_iter)
        self.loss_ = opt_res.fun
        theta[order] = opt_res.x

    def _dropout_key(self):
        """The dropout mask stream's key. An int random_state gives a key of its own
        (a SeedSequence of (random_state, "drop")), so the shuffles and the early-stopping
        split are the ones drawn without dropout; a RandomState instance (or None: NumPy's
        global one) gives one draw, taken after the early-stopping split."""
        seed = self.random_state if isinstance(self.random_state, numbers.Integral) else None
        return _dropout.stream_key(seed, self._random_state)

    def _fit_stochastic(self, spec, theta, X, y, data, sample_weight, incremental, thresholds):
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = engine.Optimizer(self, spec.n_params, spec.dtype)
        opt = self._optimizer
        opt.weight_decay = float(self.weight_decay)  # partial_fit: the value of this call
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        n_all = X.shape[0]
        if early_stopping:
            # Split row numbers, not the data: the same draw as splitting (X, y[, sample_weight]).
            should_stratify = is_classifier(self) and self.n_outputs_ == 1
            stratify = y if should_stratify else None
            train_idx, val_idx = train_test_split(
                np.arange(n_all), random_state=self._random_state, test_size=self.validation_fraction,
                stratify=stratify,
            )
            if val_idx.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' or the size of your dataset."
                )
            X_val = _safe_indexing(X, val_idx)
            y_val = y[val_idx]
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
            sw_val = None if sample_weight is None else sample_weight[val_idx]
            train_idx = train_idx.astype(np.int64)
        else:
            train_idx = None
            X_val = y_val = sw_val = None

        n_samples = n_all if train_idx is None else train_idx.shape[0]
        sample_idx = np.arange(n_samples, dtype=np.int64)
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        use_dropout = bool(np.any(thresholds > 0))
        # Minibatches of dense, unweighted rows without weight decay may split between
        # cores (``engine.workspace``; the split kernel's epochs variant, which the install compiles).
        # Full batches keep BLAS's threads: split, ReLU and Adam ran slower
        # (docs/performance.md, "The helper joins while it pays").
        splittable = (data.sw.size == 0 and data.indptr.size == 0 and not self.weight_decay
                      and batch_size < n_samples)
        work = engine.workspace(spec, batch_size, use_dropout, n_samples, splittable)
        if use_dropout and getattr(self, "_dropout_stream", None) is None:
            self._dropout_stream = [self._dropout_key(), 0]  # partial_fit and warm_start continue it
        stream = self._dropout_stream if use_dropout else None

        try:
            with engine.training(work):
                self.n_iter_ = 0
                for it in range(self.max_iter):
                    if self.shuffle:
                        # scikit-learn's utils.shuffle: one permutation of the current order.
                        perm = np.arange(n_samples)
                        self._random_state.shuffle(perm)
                        sample_idx = sample_idx[perm]
                    rows = sample_idx if train_idx is None else train_idx[sample_idx]
                    self.loss_, counter = engine.train_epoch(
                        spec, data, rows, batch_size, theta, opt, self.alpha, work,
                        thresholds if use_dropout else None, stream if use_dropout else (0, 0),
                    )
                    if use_dropout:
                        stream[1] = counter
                    self.n_iter_ += 1
                    self.t_ += n_samples
                    self.loss_curve_.append(self.loss_)
                    if self.verbose:
                        print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                    self._update_no_improvement_count(early_stopping, spec, theta, X_val, y_val, sw_val)
                    opt.iteration_ends(self.t_)
                    if self._no_improvement_count > self.n_iter_no_change:
                        if early_stopping:
                            msg = "Validation score did not improve more than tol=%f for %d consecutive epochs." % (
                                self.tol, self.n_iter_no_change)
                        else:
                            msg = "Training loss did not improve more than tol=%f for %d consecutive epochs." % (
                                self.tol, self.n_iter_no_change)
                        if opt.trigger_stopping(msg, self.verbose):
                            break
                        self._no_improvement_count = 0
                    if incremental:
                        break
                    if self.n_iter_ == self.max_iter:
                        warnings.warn(
                            "Stochastic Optimizer: Maximum iterations (%d) reached and the optimization hasn't "
                            "converged yet." % self.max_iter,
                            ConvergenceWarning,
                        )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if early_stopping:
            theta[...] = self._best_theta  # restore the best weights

    def _update_no_improvement_count(self, early_stopping, spec, theta, X_val, y_val, sw_val):
        if early_stopping:
            val_score = self._score_output(engine.predict(spec, theta, X_val), y_val, sw_val)
            self.validation_scores_.append(val_score)
            if self.verbose:
                print("Validation score: %f" % self.validation_scores_[-1])
            last_valid_score = self.validation_scores_[-1]
            if last_valid_score < (self.best_validation_score_ + self.tol):
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last_valid_score > self.best_validation_score_:
                self.best_validation_score_ = last_valid_score
                self._best_theta = theta.copy()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _score_output(self, out, y, sample_weight):
        y_pred = self._output_to_prediction(out)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return self._score_function(y, y_pred, sample_weight=sample_weight)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (classification) or real numbers (regression).
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. %s is not stochastic." % self.solver
            )
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
