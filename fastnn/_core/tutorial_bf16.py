"""The tutorial face's engine for ``compute_dtype='bfloat16'``: the interface of
``tutorial_engine.KernelEngine``, with the calls that multiply matrices (training epochs,
evaluation, prediction) on kernels/bf16.py. A network asking for bfloat16 takes this
engine in place of ``KernelEngine`` (``KernelEngine.with_compute_dtype``), which imports
it only then.

Batches are never split between cores here: oneDNN's threads split each product.
"""
import contextlib

from . import bf16, engine


class BFloat16Engine:
    name = "fastnn"  # the same engine for model files: ``compute_dtype`` is saved beside it

    @staticmethod
    def workspace(net, batch_size, dropout=False, epoch_rows=None, splittable=True):
        return bf16.workspace(net._spec, batch_size, dropout)

    reusable = staticmethod(engine.reusable)  # never its workspaces (their bfloat16 twins)

    @staticmethod
    def training(work, net, X_test=None):
        return contextlib.nullcontext()

    @staticmethod
    def train_epoch(net, X, Y, idx, batch_size, optimizer, state, lr, metric_code, work, l2=0.0, l2_batch=0.0):
        objective = net._spec.objective(net.loss_code, metric_code, l2=l2, l2_summed=l2_batch)
        loss, _, state.t, _, _ = bf16.fit_epoch(net._spec, net.params, engine.dense_data(X, Y), idx, batch_size,
                                                objective, engine.optimizer(optimizer, state, lr), None, None, work,
                                                engine.NEVER_STOP)
        return loss

    @staticmethod
    def fit_epoch(net, X, Y, idx, batch_size, optimizer, state, lr, metric_code, work, *, l2=0.0,
                  weight_decay=0.0, acc_kind=0, thresholds=None, stream=(0, 0), sample_weight=None, stop=None):
        """``KernelEngine.fit_epoch`` with bfloat16 products. Returns (mean loss, correct
        count, counter, status)."""
        dropout = engine.dropout(thresholds, stream)
        objective = net._spec.objective(net.loss_code, metric_code, acc_kind, l2=l2)
        loss, correct, state.t, counter, status = bf16.fit_epoch(
            net._spec, net.params, engine.data(X, Y, sample_weight, net.dtype), idx, batch_size, objective,
            engine.optimizer(optimizer, state, lr), engine.decay(weight_decay), dropout, work,
            engine.NEVER_STOP if stop is None else stop,
        )
        return loss, correct, counter if dropout is not None else int(stream[1]), status

    @staticmethod
    def evaluate(net, X, Y, idx, metric_code, acc_kind, work, sample_weight=None):
        objective = net._spec.objective(net.loss_code, metric_code, acc_kind)
        return bf16.evaluate(net._spec, net.params, engine.data(X, Y, sample_weight, net.dtype), idx, objective, work)

    @staticmethod
    def predict(net, X, work=None):
        return bf16.predict(net._spec, net.params, X)

    mean_loss = staticmethod(engine.mean_loss)
    all_finite = staticmethod(engine.all_finite)

    @staticmethod
    def with_compute_dtype(compute_dtype):
        return BFloat16Engine
