"""The engine's rule for splitting batches between two cores, against never splitting.

    python benchmarks/split_rule.py [--rounds 3] [--busy]

The tutorial face on digits (1797 rows), ReLU, Adam, for networks and batch sizes on both
sides of the rule (``engine.should_split``): one process, the rule and "never split"
alternated, medians of ``--rounds`` rounds of 20 epochs each. ``--busy`` runs it while
another process spins on one core (started before, stopped after, bounded by a timeout).
Prints one Markdown table.
"""
import argparse
import statistics
import time

import numpy as np

CASES = [((64, 100, 10), 200), ((64, 128, 10), 256), ((64, 64, 10), 128), ((64, 100, 100, 10), 200),
         ((64, 64, 10), None)]


def epoch_ms(engine, rule, X, y, sizes, batch, dtype, epochs=20):
    import fastnn

    engine.should_split = rule
    nn = fastnn.NeuralNetwork(sizes[0], list(sizes[1:-1]), sizes[-1], "categorical_crossentropy", activation="relu",
                              init="he", dtype=dtype, seed=0)
    trainer = fastnn.Trainer(nn, "categorical_crossentropy")
    X = X.astype(dtype)
    trainer.train(X, y, None, None, 1, 1e-3, batch_size=batch, optimizer="adam")  # warm-up
    start = time.perf_counter()
    trainer.train(X, y, None, None, epochs, 1e-3, batch_size=batch, optimizer="adam")
    return (time.perf_counter() - start) / epochs * 1e3


def rows(engine, threads, X, y, rounds):
    """The table's rows: each case and dtype, the rule against never splitting."""
    rule, never = engine.should_split, (lambda *a: False)
    for sizes, batch in CASES:
        step_rows = X.shape[0] if batch is None else batch
        macs = threads.forward_macs(np.array(sizes), step_rows)
        splits = rule(np.array(sizes), step_rows, X.shape[0], False)
        for dtype in ("float64", "float32"):
            times = {"never": [], "rule": []}
            for r in range(rounds):
                for name in (("never", "rule") if r % 2 == 0 else ("rule", "never")):
                    times[name].append(epoch_ms(engine, rule if name == "rule" else never, X, y, sizes, batch, dtype))
            a, b = statistics.median(times["never"]), statistics.median(times["rule"])
            yield (f"| {'-'.join(map(str, sizes))}, {batch or 'full batch'} | {macs / 1e6:.2f}M | "
                   f"{'yes' if splits else 'no'} | {dtype} | {a:.3f} ms | {b:.3f} ms | {a / b:.2f}x |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--busy", action="store_true", help="with another process spinning on one core")
    args = parser.parse_args(argv)
    from contention import busy_core  # benchmarks/contention.py (imported here: asv imports this module too)
    from sklearn.datasets import load_digits

    from fastnn._core import engine, threads

    X, y = load_digits(return_X_y=True)
    X = X / 16
    rule = engine.should_split
    print(f"| network, batch | multiply-adds a step | split by the rule | dtype | never split | rule | "
          f"speed-up{' (busy)' if args.busy else ''} |")
    print("|---|---|---|---|---|---|---|")
    try:
        with busy_core(args.busy):
            for row in rows(engine, threads, X, y, args.rounds):
                print(row, flush=True)
    finally:
        engine.should_split = rule


if __name__ == "__main__":
    main()
