"""Trainer: the tutorial's training loop, one compiled call per epoch."""
import numpy as np

from . import _tables
from ._validation import check_X, check_choice, check_float, check_int, check_y
from .errors import DivergenceError
from .optimizers import OptimizerState, resolve


def _as_predictions(y_pred, dtype):
    """y_pred as a finite 2-D array (a 1-D one is one output per sample)."""
    A = np.asarray(y_pred)
    if A.ndim == 1:
        A = A.reshape(-1, 1)
    if A.ndim != 2:
        raise ValueError(f"y_pred must be 1-D or 2-D (n_samples, n_outputs); got shape {A.shape}.")
    return check_X(A, A.shape[1], dtype, "y_pred")


class Trainer:
    """Trains a ``NeuralNetwork``, drop-in for the tutorial's ``Trainer``.

    Parameters
    ----------
    model : NeuralNetwork
        The network to train (``fastnn.NeuralNetwork`` or ``fastnn.reference.NeuralNetwork``).
    loss_func : {'mse', 'log_loss', 'categorical_crossentropy'}, default 'mse'
        The loss *reported* in ``train_loss`` and ``test_loss``, as in the tutorial;
        the gradient always follows the model's own ``loss_func``.

    Attributes
    ----------
    train_loss : list of float
        Per epoch, the mean training loss (for a full batch: before that epoch's
        update, as the tutorial measures it; for minibatches: the mean of each
        batch's loss before its update, weighted by batch size).
    test_loss : list of float
        Per epoch, the loss on (X_test, y_test) after the epoch (when given).
    optimizer_state : OptimizerState or None
        Moment buffers and update count, kept between ``train`` calls with the same
        optimizer so that training continues where it stopped.
    """

    def __init__(self, model, loss_func="mse"):
        if not hasattr(model, "_engine") or not hasattr(model, "params"):
            raise TypeError(f"model must be a fastnn NeuralNetwork; got {type(model).__name__}.")
        self.model = model
        self.loss_func = check_choice("loss_func", loss_func, tuple(_tables.LOSSES))
        self.train_loss = []
        self.test_loss = []
        self.optimizer_state = None

    def save_checkpoint(self, path):
        """Save model, optimizer state and history to ``path`` so training resumes exactly.

        See ``fastnn.io.save_checkpoint``; ``Trainer.load_checkpoint(path)`` reads it back.
        """
        from .io import save_checkpoint

        save_checkpoint(self, path)

    @staticmethod
    def load_checkpoint(path):
        """The trainer saved at ``path`` (its class and engine are the file's). See ``fastnn.io``."""
        from .io import load_checkpoint

        return load_checkpoint(path)

    def calculate_loss(self, y_true, y_pred):
        """The tutorial's helper: mean ``loss_func`` of predictions against targets."""
        model = self.model
        A = _as_predictions(y_pred, model.dtype)
        Y = check_y(y_true, A.shape[0], self.loss_func, A.shape[1], model.dtype, "y_true")
        return float(model._engine.mean_loss(A, Y, _tables.LOSSES[self.loss_func], model.clip_eps))

    def train(
        self,
        X_train,
        y_train,
        X_test,
        y_test,
        epochs,
        learning_rate,
        *,
        batch_size=None,
        shuffle=True,
        optimizer="gd",
        verbose=0,
    ):
        """Train for ``epochs`` epochs, appending to ``train_loss`` and ``test_loss``.

        Parameters
        ----------
        X_train, y_train : array-like
            Training samples (n, input_size) and targets (see ``NeuralNetwork``).
        X_test, y_test : array-like or None
            Evaluated after every epoch into ``test_loss``; both None to skip.
        epochs : int >= 1
        learning_rate : float > 0
        batch_size : int, optional
            Rows per gradient step; None (the tutorial's behaviour) uses the whole
            training set. The last minibatch of an epoch may be smaller.
        shuffle : bool, default True
            Reshuffle the rows every epoch (minibatches only), from the model's seed.
        optimizer : {'gd', 'sgd', 'momentum', 'nesterov', 'adam'} or SGD or Adam, default 'gd'
            'gd' and 'sgd' are plain gradient steps; 'momentum' and 'nesterov' use
            momentum 0.9; pass ``fastnn.SGD(...)`` or ``fastnn.Adam(...)`` to set
            hyperparameters.
        verbose : int, default 0
            0 silent (the tutorial's); 1 or more prints one line per epoch.

        Raises
        ------
        DivergenceError
            When an epoch's loss or weights become non-finite; the model keeps the
            weights of the last finite epoch.
        """
        model = self.model
        epochs = check_int("epochs", epochs)
        lr = check_float("learning_rate", learning_rate)
        optimizer = resolve(optimizer)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False; got {shuffle!r}.")
        verbose = check_int("verbose", int(verbose) if isinstance(verbose, (bool, np.bool_)) else verbose, minimum=0)
        X = check_X(X_train, model.input_size, model.dtype, "X_train")
        Y = check_y(y_train, X.shape[0], model.loss_func, model.output_size, model.dtype, "y_train")
        if (X_test is None) != (y_test is None):
            raise ValueError("X_test and y_test must be given together (or both None).")
        if X_test is not None:
            X_te = check_X(X_test, model.input_size, model.dtype, "X_test")
            Y_te = check_y(y_test, X_te.shape[0], model.loss_func, model.output_size, model.dtype, "y_test")
        n = X.shape[0]
        batch = n if batch_size is None else min(check_int("batch_size", batch_size), n)

        state = self.optimizer_state
        if state is None or not state.matches(optimizer, model.params.size, model.dtype):
            state = self.optimizer_state = OptimizerState(optimizer, model.params.size, model.dtype)
        engine = model._engine
        work = engine.workspace(model, batch)
        metric = _tables.LOSSES[self.loss_func]
        order = np.arange(n, dtype=np.int64)
        last_good = model.params.copy()
        last_t = state.t
        for epoch in range(1, epochs + 1):
            # Full batch: the order only changes summation rounding, so keep the
            # tutorial's (and do not consume random numbers).
            idx = model._rng.permutation(n).astype(np.int64) if shuffle and batch < n else order
            last_good[...] = model.params
            m_good, v_good, last_t = state.m.copy(), state.v.copy(), state.t
            loss = engine.train_epoch(model, X, Y, idx, batch, optimizer, state, lr, metric, work)
            if not (np.isfinite(loss) and engine.all_finite(model.params)):
                model.params[...] = last_good
                state.m[...], state.v[...], state.t = m_good, v_good, last_t
                raise DivergenceError(
                    f"training diverged at epoch {epoch}: the loss became {loss} (non-finite loss or weights). "
                    f"The model keeps the weights from the end of epoch {epoch - 1}; "
                    f"try a smaller learning_rate (got {lr}).",
                    epoch,
                )
            self.train_loss.append(float(loss))
            line = f"epoch {epoch}/{epochs} - loss: {loss:.6g}"
            if X_test is not None:
                model.a2 = engine.predict(model, X_te)
                self.test_loss.append(float(engine.mean_loss(model.a2, Y_te, metric, model.clip_eps)))
                line += f" - test_loss: {self.test_loss[-1]:.6g}"
            if verbose:
                print(line, flush=True)
        return self
