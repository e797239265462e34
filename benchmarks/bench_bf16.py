"""bfloat16 products (``compute_dtype='bfloat16'``) against float32, the tutorial face:
an Adam epoch of 784 -> width -> width -> 10, ReLU, batches of 256, on the wide data
(common.wide, float32), and the float32 / bfloat16 epoch-time ratio in one process.
Skipped where bfloat16 cannot run (no ``fastnn[bf16]``, or a CPU without AVX512-BF16).
"""
import timeit

import fastnn
from fastnn._core import bf16 as _bf16

from .common import CLASSES, SEED, WIDE_FEATURES, WIDTHS, fix_threads, speedup, train_epochs, wide

BATCH = 256


def _build(compute_dtype, width):
    net = fastnn.NeuralNetwork(WIDE_FEATURES, [width, width], CLASSES, "categorical_crossentropy", activation="relu",
                               init="he", dtype="float32", seed=SEED, compute_dtype=compute_dtype)
    return fastnn.Trainer(net, "categorical_crossentropy")


def _skip_unless_available():
    reason = _bf16.availability()
    if reason is not None:
        raise NotImplementedError(reason)


class BFloat16Epoch:
    """One epoch in ``compute_dtype`` ('float32': None, the parameters' dtype)."""

    params = (("float32", "bfloat16"), WIDTHS)
    param_names = ["compute_dtype", "width"]
    timer = timeit.default_timer
    warmup_time = 0  # setup already ran (and compiled) one epoch
    timeout = 600

    def setup(self, compute_dtype, width):
        if compute_dtype == "bfloat16":
            _skip_unless_available()
        fix_threads()
        self.X, self.Y = wide("float32")
        self.trainer = _build(None if compute_dtype == "float32" else compute_dtype, width)
        train_epochs(self.trainer, self.X, self.Y, BATCH)

    def time_epoch(self, compute_dtype, width):
        train_epochs(self.trainer, self.X, self.Y, BATCH)


class BFloat16Speedup:
    """float32 epoch time / bfloat16 epoch time, interleaved in this process (> 1: bfloat16 is faster)."""

    params = (WIDTHS,)
    param_names = ["width"]
    unit = "x"
    timeout = 900

    def setup(self, width):
        _skip_unless_available()
        fix_threads()
        self.X, self.Y = wide("float32")
        self.f32, self.bf16 = _build(None, width), _build("bfloat16", width)
        for trainer in (self.f32, self.bf16):
            train_epochs(trainer, self.X, self.Y, BATCH)

    def track_bf16_speedup(self, width):
        return speedup(lambda: train_epochs(self.f32, self.X, self.Y, BATCH),
                       lambda: train_epochs(self.bf16, self.X, self.Y, BATCH))
