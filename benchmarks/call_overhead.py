"""What a one-epoch ``train`` call spends around its compiled epoch.

    python benchmarks/call_overhead.py [--data bench] [--dtype float32] [--calls 1000]
                                       [--hidden 64] [--activation relu]

The tutorial's scripts, and ``fastnn demo``, train one epoch per ``Trainer.train`` call,
so that they can print or plot between epochs; with digits-sized data the Python around
the compiled epoch is a good part of each call. In one process, call after call
alternately (Adam, batch 32, the tutorial face; 64-64-10 ReLU unless ``--hidden`` (e.g.
64,64) and ``--activation`` say otherwise):
- "kept": calls as they run, each using again what the last one kept
  (``fastnn._core.kept``: its workspace and one-hot labels);
- "fresh": calls that keep nothing (a new ``Kept`` before each), as every call ran
  before it kept anything;
and, within the kept calls, the compiled epoch alone (the engine's call of
``kernels.epoch.fit_epoch``), so that "around" is the rest of the call. Every tenth
round also times the bench's GEMM floor epoch (``fastnn bench``: ``np.dot`` alone at the
epoch's shapes) and a call of ``MANY`` epochs, per epoch (what a script that trains in
one call sees). Medians; the differences are medians of the paired differences.

``--data bench``: the bench's S (the digits training split, already in the model's
dtype); ``--data demo``: the demo's (float64 features converted at every call, and its
test set predicted after each epoch). Prints one Markdown table.
"""
import argparse
import statistics
import time
import types

import numpy as np

import fastnn
from fastnn._app import bench
from fastnn._app.args import default_init
from fastnn._app.demo import load_data
from fastnn._core import engine
from fastnn._core.kept import Kept

MANY = 20  # epochs of the one-call comparison


def timed_kernel(times):
    """A stand-in for the engine's ``kernels.epoch`` module whose ``fit_epoch`` appends its seconds to ``times``."""
    kernels = engine.epoch
    shim = types.SimpleNamespace(**{name: getattr(kernels, name) for name in dir(kernels) if not name.startswith("__")})

    def fit_epoch(*args):
        start = time.perf_counter()
        out = kernels.fit_epoch(*args)
        times.append(time.perf_counter() - start)
        return out

    shim.fit_epoch = fit_epoch
    return shim


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", choices=("bench", "demo"), default="bench")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--calls", type=int, default=1000, help="calls of each kind (default 1000)")
    p.add_argument("--hidden", default="64", help="hidden layer widths, comma-separated (default 64)")
    p.add_argument("--activation", default="relu", help="hidden activation (default relu)")
    args = p.parse_args(argv)

    hidden = [int(h) for h in args.hidden.split(",")]
    w = bench.Workload("S", 1437, (64, *hidden, 10), 32)  # the bench's S data, these layers
    if args.data == "bench":
        X, y = bench.make_data(w, np.dtype(args.dtype))
        test = (None, None)
    else:
        X, X_test, y, y_test = load_data()
        test = (X_test, y_test)
    model = fastnn.NeuralNetwork(64, hidden, 10, "categorical_crossentropy", activation=args.activation,
                                 init=default_init(args.activation), dtype=args.dtype, seed=0)
    trainer = fastnn.Trainer(model, "categorical_crossentropy")
    floor = bench.floor_runner(w, np.dtype(args.dtype))

    def call(epochs=1):
        start = time.perf_counter()
        trainer.train(X, y, *test, epochs, 1e-3, batch_size=w.batch, optimizer="adam")
        return time.perf_counter() - start

    kernel_times, kept, fresh, floors, many = [], [], [], [], []
    real_kernels, engine.epoch = engine.epoch, timed_kernel(kernel_times)
    try:
        for _ in range(20):  # warm-up: kernel loads, first touches
            call()
        kernel_times.clear()
        for i in range(args.calls):
            kept.append(call())
            trainer._kept_calls = Kept()
            fresh.append(call())
            kernel_times.pop()  # only the kept calls' kernel times are paired with them
            if i % 10 == 0:
                start = time.perf_counter()
                floor()
                floors.append(time.perf_counter() - start)
                many.append(call(MANY) / MANY)
                del kernel_times[-MANY:]
    finally:
        engine.epoch = real_kernels

    us = lambda s: f"{s * 1e6:.0f} us"  # noqa: E731
    kept_med, fresh_med = statistics.median(kept), statistics.median(fresh)
    kernel_med, floor_med = statistics.median(kernel_times), statistics.median(floors)
    around = statistics.median(k - e for k, e in zip(kept, kernel_times))
    saved = statistics.median(f - k for f, k in zip(fresh, kept))
    print(f"{args.data} data, 64-{'-'.join(map(str, hidden))}-10 {args.activation}, {args.dtype}, {args.calls} calls of "
          f"each kind; fastnn {fastnn.__version__}\n")
    print("| call | time | x GEMM floor epoch |")
    print("|---|---|---|")
    print(f"| fresh: keeps nothing | {us(fresh_med)} | {fresh_med / floor_med:.2f} |")
    print(f"| kept: as it runs | {us(kept_med)} | {kept_med / floor_med:.2f} |")
    print(f"| kept, its compiled epoch alone | {us(kernel_med)} | {kernel_med / floor_med:.2f} |")
    print(f"| kept, around the epoch (paired) | {us(around)} | {around / floor_med:.2f} |")
    print(f"| fresh - kept (paired) | {us(saved)} | {saved / floor_med:.2f} |")
    many_med = statistics.median(many)
    print(f"| a call of {MANY} epochs, per epoch | {us(many_med)} | {many_med / floor_med:.2f} |")
    print(f"| GEMM floor epoch | {us(floor_med)} | 1.00 |")


if __name__ == "__main__":
    main()
