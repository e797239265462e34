"""The tutorial's digits task trained by fastnn and by the NumPy reference, side by side.

scikit-learn's ``load_digits`` (8x8 images, 10 classes), scaled to [0, 1] with
``MinMaxScaler``, split 80/20 with ``random_state=42``; both implementations start
from the same seed (same initial weights, same minibatch order), so they follow the
same trajectory and reach the same accuracy: the difference is the time it takes.
"""
import sys
import time

import numpy as np

from .args import add_training_arguments, default_init

WARMUP_ROWS = 64


def add_arguments(p):
    add_training_arguments(p, hidden="64", epochs=40, batch_size=32, lr=1e-3, dtype="float32")
    p.add_argument("--plot", metavar="PATH.png", default="fastnn-demo.png",
                   help="where to save the loss curves when matplotlib is installed (default ./fastnn-demo.png)")
    p.add_argument("--no-plot", action="store_true", help="do not save the loss curves")


def load_data():
    """The tutorial's digits split: (X_train, X_test, y_train, y_test), labels as integers."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler

    X, y = load_digits(return_X_y=True)
    X = MinMaxScaler().fit_transform(X)
    return train_test_split(X, y, test_size=0.2, random_state=42)


def _build(module, args):
    model = module.NeuralNetwork(
        64, args.hidden, 10, "categorical_crossentropy", activation=args.activation,
        init=default_init(args.activation) if args.init == "auto" else args.init, dtype=args.dtype, seed=args.seed,
    )
    return model, module.Trainer(model, "categorical_crossentropy")


def _fit(module, label, args, data):
    """Warm-up fit (compilation), then the timed fit epoch by epoch. Returns a result dict."""
    from tqdm import tqdm

    X_train, X_test, y_train, y_test = data
    fit = dict(batch_size=args.batch_size, optimizer=args.optimizer)
    # One epoch on a tiny copy (with a test set, and a predict) compiles every kernel the
    # fit uses for this dtype, or loads it from Numba's cache: the timed fit is training only.
    model, trainer = _build(module, args)
    start = time.perf_counter()
    trainer.train(X_train[:WARMUP_ROWS], y_train[:WARMUP_ROWS], X_test[:WARMUP_ROWS], y_test[:WARMUP_ROWS],
                  1, args.lr, **fit)
    model.predict(X_test[:WARMUP_ROWS])
    warmup = time.perf_counter() - start

    model, trainer = _build(module, args)
    elapsed = 0.0
    bar = tqdm(range(args.epochs), desc=f"{label:<16}", unit="epoch", file=sys.stderr, leave=True)
    for _ in bar:
        start = time.perf_counter()
        trainer.train(X_train, y_train, X_test, y_test, 1, args.lr, **fit)
        elapsed += time.perf_counter() - start
        bar.set_postfix(loss=f"{trainer.train_loss[-1]:.4f}", test_loss=f"{trainer.test_loss[-1]:.4f}")
    bar.close()
    accuracy = float(np.mean(model.predict(X_test) == y_test))
    return dict(label=label, accuracy=accuracy, fit=elapsed, warmup=warmup,
                train_loss=list(trainer.train_loss), test_loss=list(trainer.test_loss))


def _plot(results, path):
    """Saves the loss curves; returns the path, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    # The curves coincide: fastnn wide and pale underneath, the reference thin on top.
    styles = (dict(lw=4, alpha=0.45, ls="-"), dict(lw=1.2, ls="--"))
    for r, style in zip(results, styles):
        epochs = np.arange(1, len(r["train_loss"]) + 1)
        ax.plot(epochs, r["train_loss"], color="C0", label=f"{r['label']}: train", **style)
        ax.plot(epochs, r["test_loss"], color="C1", label=f"{r['label']}: test", **style)
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.set_yscale("log")
    ax.set_title("digits: fastnn and the NumPy reference follow the same curve")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(args) -> int:
    import fastnn
    from .. import reference

    # Cast once, outside the timed fits (Trainer.train would convert float64 data every epoch).
    data = [a.astype(args.dtype) if a.dtype.kind == "f" else a for a in load_data()]
    arch = "-".join(map(str, (64, *args.hidden, 10)))
    print(f"digits: {data[0].shape[0]} train / {data[1].shape[0]} test images; network {arch} {args.activation}, "
          f"{args.optimizer} lr={args.lr:g}, batch {args.batch_size}, {args.epochs} epochs, {args.dtype}, seed {args.seed}",
          flush=True)
    fast = _fit(fastnn, "fastnn", args, data)
    ref = _fit(reference, "fastnn.reference", args, data)

    rows = [("implementation", "test accuracy", "fit time", "speed-up")]
    for r in (fast, ref):
        rows.append((r["label"] + (" (NumPy)" if r is ref else ""), f"{100 * r['accuracy']:.2f}%",
                     f"{r['fit']:.3f} s", f"{ref['fit'] / r['fit']:.1f}x"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    print()
    for i, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print()
    gap = max(abs(a - b) / abs(b) for a, b in zip(fast["train_loss"], ref["train_loss"]))
    print(f"Fit times exclude compilation: before timing, each implementation ran 1 warm-up epoch on "
          f"{WARMUP_ROWS} rows; fastnn's warm-up, which compiles its Numba kernels or loads them from "
          f"the cache, took {fast['warmup']:.2f} s.")
    print(f"Same seed, same batches: the training-loss curves agree to {gap:.1e} relative ({args.dtype}).")
    if not args.no_plot:
        path = _plot((fast, ref), args.plot)
        print(f"Loss curves saved to {path}" if path else "Loss curves not saved: matplotlib is not installed.")
    return 0
