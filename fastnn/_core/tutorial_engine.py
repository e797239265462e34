"""The tutorial face's adapter to the engine: ``KernelEngine``, the engine interface that
``fastnn.NeuralNetwork`` and ``fastnn.Trainer`` call (``fastnn.reference.NumpyEngine``
has the same methods in plain NumPy; a network picks its engine through its class).

Its objective: the tutorial's losses, averaged over a batch's rows, with an optional
``l2`` on that mean; the reported loss may be another one (``metric_code``) and an
accuracy is counted on the same outputs.
"""
import contextlib

from . import engine, precompile as _precompile


class KernelEngine:
    name = "fastnn"

    @staticmethod
    def workspace(net, batch_size, dropout=False, epoch_rows=None, splittable=True):
        """Scratch for ``batch_size``-row batches; ``epoch_rows``, the rows of an epoch,
        lets a full-batch epoch run on 2 cores (see ``engine.should_split``) unless the
        data is not ``splittable`` (sparse or weighted rows)."""
        _precompile.announce("tutorial", net.dtype)
        spec = net._spec
        split = splittable and engine.should_split(spec.sizes, batch_size, epoch_rows, dropout)
        work = engine.Workspace(spec, batch_size, dropout, split)
        if split:  # the tutorial's split epochs always predict a test set (``training``), if empty
            work.set_test(spec, None)
        return work

    # Whether ``work`` may serve the next ``train`` call with the same arguments of ``workspace``.
    reusable = staticmethod(engine.reusable)

    @staticmethod
    @contextlib.contextmanager
    def training(work, net, X_test=None):
        """Context for a training loop of ``net`` using ``work`` (and predicting the
        validated ``X_test`` after each epoch, when given). Small steps keep BLAS on one
        thread, wide float32 ones may run on oneDNN (``engine.training``). When its
        batches are split between cores:
        one BLAS thread throughout (OpenBLAS threads spin for a while after a GEMM,
        taking the second core from the split), the split's helper thread lives until
        the end of the block, and it predicts X_test too."""
        if work.split_grads is not None:
            work.set_test(net._spec, X_test)
        with engine.training(work):
            yield

    @staticmethod
    def train_epoch(net, X, Y, idx, batch_size, optimizer, state, lr, metric_code, work, l2=0.0, l2_batch=0.0):
        """One epoch over rows ``idx``; updates net.params and ``state``; returns the mean loss.
        ``l2_batch`` is an L2 coefficient on each batch's summed loss (see kernels/bundles.py)."""
        objective = net._spec.objective(net.loss_code, metric_code, l2=l2, l2_summed=l2_batch)
        loss, _, state.t, _, _ = engine.fit_epoch(net._spec, net.params, engine.dense_data(X, Y), idx, batch_size,
                                                  objective, engine.optimizer(optimizer, state, lr), None, None, work,
                                                  engine.NEVER_STOP)
        return loss

    @staticmethod
    def fit_epoch(net, X, Y, idx, batch_size, optimizer, state, lr, metric_code, work, *, l2=0.0,
                  weight_decay=0.0, acc_kind=0, thresholds=None, stream=(0, 0), sample_weight=None, stop=None):
        """``train_epoch`` with decoupled weight decay, dropout (``thresholds`` (L - 1,)
        int64, ``stream`` = (key, counter) of the mask stream), an accuracy count, sample
        weights (each batch's loss is their weighted mean) and X dense or CSR, stopping
        before a batch once ``stop`` ((2,) int64, ``fastnn._core.interrupt``) says so, and
        before any update that would write a non-finite value (``kernels/guard.py``).
        Returns (mean loss over the rows trained on, correct count, new counter, status:
        ``kernels.guard``'s COMPLETE, STOPPED or DIVERGED); ``state.t`` counts the updates made."""
        objective = net._spec.objective(net.loss_code, metric_code, acc_kind, l2=l2)
        dropout = engine.dropout(thresholds, stream)
        loss, correct, state.t, counter, status = engine.fit_epoch(
            net._spec, net.params, engine.data(X, Y, sample_weight, net.dtype), idx, batch_size, objective,
            engine.optimizer(optimizer, state, lr), engine.decay(weight_decay), dropout, work,
            engine.NEVER_STOP if stop is None else stop,
        )
        return loss, correct, counter if dropout is not None else int(stream[1]), status

    @staticmethod
    def evaluate(net, X, Y, idx, metric_code, acc_kind, work, sample_weight=None):
        """(mean loss, weighted by ``sample_weight`` when given; correct count) on rows
        ``idx`` of (X, Y), X dense or CSR, in chunks of the workspace's rows."""
        objective = net._spec.objective(net.loss_code, metric_code, acc_kind)
        return engine.evaluate(net._spec, net.params, engine.data(X, Y, sample_weight, net.dtype), idx, objective,
                               work)

    @staticmethod
    def predict(net, X, work=None):
        """Network output (n, output_size) for a validated X; split between cores when X
        is the test set of ``work``'s split training call."""
        _precompile.announce("tutorial", net.dtype)
        if work is not None and work.helper is not None and work.test is not None and X is work.test.X:
            return engine.predict_test(net._spec, net.params, work)
        return engine.predict(net._spec, net.params, X)

    mean_loss = staticmethod(engine.mean_loss)
    all_finite = staticmethod(engine.all_finite)

    @staticmethod
    def with_compute_dtype(compute_dtype):
        """The engine for matrix products in ``compute_dtype`` ('bfloat16'): imported here,
        so that nothing of it loads unless asked; raises ``BFloat16Unavailable`` when it
        cannot run on this machine."""
        from . import bf16
        from .tutorial_bf16 import BFloat16Engine

        bf16.kernels()
        return BFloat16Engine

