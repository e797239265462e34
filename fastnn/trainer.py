"""Trainer: the tutorial's training loop, one compiled call per epoch.

Around each compiled epoch, Python does per-epoch work only: the shuffle, the
learning-rate schedule, validation (one more compiled call), the history, the
progress display and the callbacks.
"""
import time

import numpy as np

from . import io
from . import schedules as _schedules
from ._core import dropout as _dropout
from ._core import interrupt as _interrupt
from ._core import tables as _tables
from ._core.kept import Kept
from ._core.validation import (check_choice, check_float, check_int, check_sample_weight, check_X,
                               check_X_or_sparse, check_y, issparse)
from .errors import DivergenceError
from .kernels.codes import COMPLETE, DIVERGED
from .history import History, Progress
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
    history : History
        Per-epoch ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ``test_loss``,
        ``lr`` and ``time``, accumulated over ``train`` calls like ``train_loss``
        (assign ``fastnn.History()`` to start afresh).
    """

    def __init__(self, model, loss_func="mse"):
        if not hasattr(model, "_engine") or not hasattr(model, "params"):
            raise TypeError(f"model must be a fastnn NeuralNetwork; got {type(model).__name__}.")
        self.model = model
        self.loss_func = check_choice("loss_func", loss_func, tuple(_tables.LOSSES))
        self.train_loss = []
        self.test_loss = []
        self.optimizer_state = None
        self.history = History()
        self.log_keys = ()
        self._kept_calls = Kept()  # the workspace and one-hot labels of the last call, for the next

    def save_checkpoint(self, path):
        """Save model, optimizer state and history to ``path`` so training resumes exactly.

        See ``fastnn.io.save_checkpoint``; ``Trainer.load_checkpoint(path)`` reads it back.
        """
        io.save_checkpoint(self, path)

    @staticmethod
    def load_checkpoint(path):
        """The trainer saved at ``path`` (its class and engine are the file's). See ``fastnn.io``."""
        return io.load_checkpoint(path)

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
        dropout=None,
        l2=0.0,
        weight_decay=None,
        validation_data=None,
        validation_split=0.0,
        lr_schedule=None,
        callbacks=None,
        sample_weight=None,
    ):
        """Train for ``epochs`` epochs, appending to ``train_loss``, ``test_loss`` and ``history``.

        Parameters
        ----------
        X_train, y_train : array-like
            Training samples (n, input_size) and targets (see ``NeuralNetwork``).
            X_train may be a SciPy sparse matrix: it is kept as CSR and each batch's
            rows are gathered from it, never densified whole.
        X_test, y_test : array-like or None
            Evaluated after every epoch into ``test_loss``; both None to skip. A sparse
            X_test is densified once.
        epochs : int >= 1
        learning_rate : float > 0
            The rate, or the initial rate of ``lr_schedule``.
        batch_size : int, optional
            Rows per gradient step; None (the tutorial's behaviour) uses the whole
            training set. The last minibatch of an epoch may be smaller.
        shuffle : bool, default True
            Reshuffle the rows every epoch (minibatches only), from the model's seed.
        optimizer : {'gd', 'sgd', 'momentum', 'nesterov', 'adam', 'adamw'} or SGD or Adam, default 'gd'
            'gd' and 'sgd' are plain gradient steps; 'momentum' and 'nesterov' use
            momentum 0.9; 'adamw' is Adam with ``weight_decay`` 0.01 unless given; pass
            ``fastnn.SGD(...)`` or ``fastnn.Adam(...)`` to set hyperparameters.
        verbose : {0, 1, 2}, default 0
            0 silent (the tutorial's); 1 a progress bar over the epochs (tqdm, on stderr)
            showing the latest metrics; 2 one line per epoch on stdout.
        dropout : float or sequence of float in [0, 1), optional
            Inverted dropout rate after every hidden layer, or one per hidden layer;
            None uses the model's ``dropout`` (0 by default). Training only: ``forward``
            and ``predict`` never drop. Masks come from a stream seeded by the model's
            seed (reproducible; independent of the shuffling).
        l2 : float >= 0, default 0
            Coupled L2 penalty: adds 0.5 l2 sum(W^2) (weights, not biases) to the loss
            and l2 W to the gradients, as scikit-learn's ``alpha`` (before averaging: its
            alpha / n_samples).
        weight_decay : float >= 0, optional
            Decoupled weight decay: every update also does W -= lr * weight_decay * W
            (weights only). With Adam this is AdamW.
        validation_data : (X_val, y_val), optional
            Evaluated after every epoch into ``history['val_loss']`` (and ``val_accuracy``).
        validation_split : float in [0, 1), default 0
            Hold out this fraction of the training rows instead: for classification,
            the last round(fraction * count) rows of each class, in the order given
            (stratified; Keras also takes the last rows), otherwise the last
            round(fraction * n) rows. Shuffle the rows first if they are ordered.
        lr_schedule : str or schedule, optional
            'constant' (default), 'invscaling', 'step', 'exponential', 'plateau', or an
            object from ``fastnn.schedules``; see there for the formulas.
        callbacks : list, optional
            ``fastnn.EarlyStopping``, ``fastnn.ModelCheckpoint`` or your own (see
            ``fastnn.callbacks``); ``on_epoch_end`` returning True stops training.
        sample_weight : array-like of shape (n,), optional
            A weight > 0 per training sample: each batch then minimises its weighted mean
            loss, sum w_i loss_i / sum w_i (``l2`` is unchanged), and ``train_loss`` is
            that weighted mean. Rows held out by ``validation_split`` keep their weights
            in ``val_loss``; ``validation_data`` and the test set are unweighted, and
            accuracies count samples, not weights.

        Returns
        -------
        Trainer
            ``self``, as before, so ``trainer.train(...).train_loss`` keeps working; its
            ``history`` is Keras-shaped: ``trainer.train(...).history['val_loss']``.

        Raises
        ------
        DivergenceError
            When a batch's loss, or the update it would make, is not finite: the update
            is not made, so the model and the optimizer state are those of the last
            finite step (``epoch`` and ``step`` of the error say where; the unfinished
            epoch is not recorded in ``history``).
        KeyboardInterrupt
            After Ctrl-C: the first press lets the running epoch finish and keeps it
            (``train_loss``, ``history``, callbacks), then raises; a second press stops
            the epoch at the next minibatch boundary, keeping the steps it made in the
            weights and optimizer state but not in ``history`` (the message says how
            many; ``history.interrupted_steps``). ``history.interrupted`` is set either
            way. After the first kind, calling ``train`` again continues exactly as an
            uninterrupted run would.
        """
        run = self._prepare(X_train, y_train, X_test, y_test, epochs, learning_rate, batch_size, shuffle, optimizer,
                            verbose, dropout, l2, weight_decay, validation_data, validation_split, lr_schedule,
                            callbacks, sample_weight)
        for cb in run.callbacks:
            if hasattr(cb, "on_train_begin"):
                cb.on_train_begin(self)
        stopper = None
        # e.g. BLAS on one thread while batches are split between cores:
        with run.engine.training(run.work, self.model, run.X_te), _interrupt.counting_interrupts() as presses:
            run.stop = presses.flags
            self.history.interrupted_steps = None
            try:
                for epoch in range(1, run.epochs + 1):
                    logs = self._run_epoch(run, epoch)
                    self._commit(run, epoch, logs)
                    stopper = self._report(run, epoch, logs)
                    if presses.count:  # Ctrl-C during the epoch: it is kept, then training stops
                        raise KeyboardInterrupt
                    if stopper is not None:
                        self.history.stopped_epoch = len(self.history)
                        break
                if presses.count:  # pressed after the last epoch's check: still not swallowed
                    raise KeyboardInterrupt
            except KeyboardInterrupt:
                self.history.interrupted = True
                run.progress.close(run.interruption or f"interrupted: kept the {len(self.history)} completed epochs")
                raise
            except BaseException:
                run.progress.close()
                raise
        self._finish(run, stopper)
        return self

    # -- the steps of train: prepare, run an epoch, commit it (or roll back), report ------------
    def _prepare(self, X_train, y_train, X_test, y_test, epochs, learning_rate, batch_size, shuffle, optimizer,
                 verbose, dropout, l2, weight_decay, validation_data, validation_split, lr_schedule, callbacks,
                 sample_weight):
        """Validate every argument (before anything changes) and set up one training call."""
        model = self.model
        run = _Run()
        run.epochs = check_int("epochs", epochs)
        run.lr = check_float("learning_rate", learning_rate)
        if isinstance(optimizer, str) and optimizer == "adamw":
            optimizer, weight_decay = "adam", 0.01 if weight_decay is None else weight_decay
        run.optimizer = resolve(optimizer)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False; got {shuffle!r}.")
        verbose = check_int("verbose", int(verbose) if isinstance(verbose, (bool, np.bool_)) else verbose, minimum=0)
        run.l2 = check_float("l2", l2, 0.0, low_open=False)
        run.weight_decay = check_float("weight_decay", 0.0 if weight_decay is None else weight_decay, 0.0,
                                       low_open=False)
        rates = _dropout.rates(getattr(model, "dropout", 0.0) if dropout is None else dropout,
                               len(model.layer_sizes) - 2)
        run.thresholds = _dropout.thresholds(rates)
        run.use_dropout = bool(run.thresholds.any())  # thresholds are >= 0
        run.schedule = _schedules.resolve(lr_schedule)
        run.callbacks = list(callbacks or [])
        for cb in run.callbacks:
            if not callable(getattr(cb, "on_epoch_end", None)):
                raise TypeError(f"callbacks must have an on_epoch_end(epoch, logs) method; got {cb!r}.")
        kept = self._kept()
        run.X = check_X_or_sparse(X_train, model.input_size, model.dtype, "X_train")
        run.Y = kept.check_y(y_train, run.X.shape[0], model.loss_func, model.output_size, model.dtype, "y_train")
        if sample_weight is not None:
            run.sw = check_sample_weight(sample_weight, run.X.shape[0], model.dtype)
        if (X_test is None) != (y_test is None):
            raise ValueError("X_test and y_test must be given together (or both None).")
        if X_test is not None:
            run.X_te = check_X_or_sparse(X_test, model.input_size, model.dtype, "X_test")
            run.X_te = run.X_te.toarray() if issparse(run.X_te) else run.X_te
            run.Y_te = kept.check_y(y_test, run.X_te.shape[0], model.loss_func, model.output_size, model.dtype,
                                    "y_test")
        run.rows, run.X_val, run.Y_val, run.val_rows = self._validation(run.X, run.Y, validation_data,
                                                                        validation_split)
        run.sw_val = run.sw if run.X_val is run.X else None  # held-out rows keep their weights
        n = run.n = run.rows.size
        run.batch = n if batch_size is None else min(check_int("batch_size", batch_size), n)

        run.acc_kind = {"categorical_crossentropy": 1, "log_loss": 2}.get(model.loss_func, 0)
        run.acc_div = 1 if run.acc_kind == 1 else model.output_size
        keys = ["loss"] + (["accuracy"] if run.acc_kind else [])
        if run.X_val is not None:
            keys += ["val_loss"] + (["val_accuracy"] if run.acc_kind else [])
        if run.X_te is not None:
            keys.append("test_loss")
        self.log_keys = tuple(keys + ["lr", "time"])
        monitor = getattr(run.schedule, "monitor", None)
        if monitor is not None and monitor not in self.log_keys:
            raise ValueError(f"lr_schedule monitors {monitor!r}, which this run does not record; "
                             f"recorded: {', '.join(self.log_keys)}.")

        state = self.optimizer_state
        if state is None or not state.matches(run.optimizer, model.params.size, model.dtype):
            state = self.optimizer_state = OptimizerState(run.optimizer, model.params.size, model.dtype)
        run.state = state
        run.engine = model._engine
        # Batches may be split between two cores (dense, unweighted rows only; minibatches
        # with decoupled weight decay are not: another compiled kernel, which the install
        # does not compile).
        run.work = kept.workspace(
            run.engine, model, run.batch, run.use_dropout, n,
            splittable=run.sw is None and not issparse(run.X) and (run.batch >= n or not run.weight_decay),
        )
        run.metric = _tables.LOSSES[self.loss_func]
        run.stream = getattr(model, "_dropout_stream", None)
        if run.use_dropout and run.stream is None:
            run.stream = model._dropout_stream = [_dropout.new_key(model), 0]
        # No snapshot of the parameters or moments: an epoch stops before any update that
        # would not be finite, and Ctrl-C stops it between batches at most, so nothing is
        # ever rolled back (a copy of the parameters and both moments per epoch was the
        # largest term of a wide network's peak memory).
        run.progress = Progress(verbose, run.epochs)
        run.reshuffle = shuffle and run.batch < n
        return run

    def _kept(self):
        """What this trainer's calls keep for the next (``fastnn._core.kept``)."""
        kept = getattr(self, "_kept_calls", None)  # None too in a Trainer unpickled from an older fastnn
        if kept is None:
            kept = self._kept_calls = Kept()
        return kept

    def _run_epoch(self, run, epoch):
        """One epoch through the kernels, then the evaluations after it; returns its logs.
        An epoch that stops early (``_unfinished``) raises instead."""
        model = self.model
        rate = float(run.schedule.rate(len(self.history), run.lr, self.history))
        start = time.perf_counter()
        # Full batch: the order only changes summation rounding, so keep the
        # tutorial's (and do not consume random numbers).
        idx = run.rows[model._rng.permutation(run.n)] if run.reshuffle else run.rows
        t = run.state.t
        loss, correct, run.counter, status = run.engine.fit_epoch(
            model, run.X, run.Y, idx, run.batch, run.optimizer, run.state, rate, run.metric, run.work, l2=run.l2,
            weight_decay=run.weight_decay, acc_kind=run.acc_kind, thresholds=run.thresholds,
            stream=(run.stream[0], run.stream[1]) if run.use_dropout else (0, 0), sample_weight=run.sw, stop=run.stop,
        )
        if status != COMPLETE:
            self._unfinished(run, epoch, status, run.state.t - t, rate)
        logs = {"loss": float(loss)}
        if run.acc_kind:
            logs["accuracy"] = correct / (run.n * run.acc_div)
        if run.X_val is not None:
            val_loss, val_correct = run.engine.evaluate(model, run.X_val, run.Y_val, run.val_rows, run.metric,
                                                        run.acc_kind, run.work, run.sw_val)
            logs["val_loss"] = float(val_loss)
            if run.acc_kind:
                logs["val_accuracy"] = val_correct / (run.val_rows.size * run.acc_div)
        if run.X_te is not None:
            run.A_te = run.engine.predict(model, run.X_te, run.work)
            logs["test_loss"] = float(run.engine.mean_loss(run.A_te, run.Y_te, run.metric, model.clip_eps))
        logs["lr"] = rate
        logs["time"] = time.perf_counter() - start
        return logs

    def _unfinished(self, run, epoch, status, steps, rate):
        """An epoch that stopped after ``steps`` of its updates: on a non-finite loss or
        update (``DivergenceError``) or a second Ctrl-C (``KeyboardInterrupt``). The model,
        the optimizer state and the mask stream keep those steps, consistently; the
        shuffle was drawn; ``train_loss`` and ``history`` do not record the epoch."""
        if run.use_dropout:
            run.stream[1] = run.counter
        total = -(-run.n // run.batch)
        if status == DIVERGED:
            raise DivergenceError(
                f"training diverged at epoch {epoch}, step {steps + 1} of {total}: its loss or its update "
                f"was not finite, and was not applied. The model keeps the weights after step {steps} of that "
                f"epoch, the last finite one (the epoch is not in the history); "
                f"try a smaller learning_rate (got {rate}).",
                epoch, steps + 1,
            )
        self.history.interrupted_steps = steps
        run.interruption = (f"interrupted: epoch {epoch} stopped after {steps} of its {total} steps (kept in the "
                            f"weights, not in the history of {len(self.history)} completed epochs)")
        raise KeyboardInterrupt(run.interruption)

    def _commit(self, run, epoch, logs):
        """The epoch is complete from here on: its streams, outputs and records are kept."""
        if run.use_dropout:
            run.stream[1] = run.counter
        if run.X_te is not None:
            self.model.a2 = run.A_te
        self.train_loss.append(logs["loss"])
        if run.X_te is not None:
            self.test_loss.append(logs["test_loss"])
        self.history.append(logs)

    def _report(self, run, epoch, logs):
        """Progress and callbacks after a committed epoch; returns the callback that stops, or None."""
        run.progress.update(epoch, logs)
        stopper = None
        for cb in run.callbacks:
            if cb.on_epoch_end(len(self.history), dict(logs)) and stopper is None:
                stopper = cb
        return stopper

    def _finish(self, run, stopper):
        for cb in run.callbacks:
            if hasattr(cb, "on_train_end"):
                cb.on_train_end(self)
        history = self.history
        if stopper is not None:
            history.stop_reason = getattr(stopper, "message", None) or (
                f"{type(stopper).__name__} stopped training after epoch {history.stopped_epoch}"
            )
        run.progress.close(history.stop_reason if stopper is not None else None)

    def _validation(self, X, Y, validation_data, validation_split):
        """(training rows, X_val, Y_val, validation rows) from the two ways of asking for it."""
        model = self.model
        n = X.shape[0]
        split = check_float("validation_split", validation_split, 0.0, 1.0, low_open=False, high_open=True)
        if validation_data is not None and split > 0:
            raise ValueError("pass validation_data or validation_split, not both.")
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be a pair (X_val, y_val).")
            X_val = check_X_or_sparse(validation_data[0], model.input_size, model.dtype, "validation_data X")
            Y_val = check_y(validation_data[1], X_val.shape[0], model.loss_func, model.output_size, model.dtype,
                            "validation_data y")
            return np.arange(n, dtype=np.int64), X_val, Y_val, np.arange(X_val.shape[0], dtype=np.int64)
        if split == 0:
            return np.arange(n, dtype=np.int64), None, None, None
        held = np.zeros(n, dtype=bool)
        if model.loss_func == "categorical_crossentropy" or (model.loss_func == "log_loss" and model.output_size == 1):
            labels = np.argmax(Y, axis=1) if Y.shape[1] > 1 else (Y[:, 0] > 0.5)
            for c in np.unique(labels):
                members = np.flatnonzero(labels == c)
                held[members[members.size - int(np.floor(split * members.size + 0.5)):]] = True
        else:
            held[n - int(np.floor(split * n + 0.5)):] = True
        if not held.any() or held.all():
            raise ValueError(f"validation_split={split} holds out {int(held.sum())} of {n} rows; "
                             "it must leave at least one row for validation and one for training.")
        val_rows = np.flatnonzero(held).astype(np.int64)
        return np.flatnonzero(~held).astype(np.int64), X, Y, val_rows


class _Run:
    """What one ``Trainer.train`` call works with: its validated arguments and data and the
    engine's workspace."""

    X_te = Y_te = A_te = None
    sw = None  # sample weights of the training rows
    stream = None
    counter = 0
    stop = None  # the epoch kernels' stop flags (fastnn._core.interrupt)
    interruption = None  # the message of a second Ctrl-C
