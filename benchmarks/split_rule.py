"""The engine's rule for splitting batches between two cores, against never splitting.

    python benchmarks/split_rule.py [--rounds 3] [--epochs 20] [--busy] [--face sklearn]
    python benchmarks/split_rule.py --seconds 120 --epochs 400 [--busy]

The tutorial face (``--face sklearn``: MLPClassifier fits of ``--epochs`` epochs) on
digits (1797 rows), ReLU, Adam, for networks and batch sizes on both sides of the rule
(``engine.should_split``): one process, three ways alternated (``ways``): never split,
the rule with the helper thread in every split epoch (``fastnn._core.split.Pace`` never
consulted: as before it), and the rule as it is; medians of ``--rounds`` rounds of
``--epochs`` epochs each; the speed-up is the rule's over never splitting. ``--busy``
runs it while another process spins on one core (started before, stopped after, bounded
by a timeout). Prints one Markdown table. With ``--seconds`` it runs one case, the three
ways in turn, for that long instead, and prints the distribution of each way's epoch
times: the speed of a split step changes over seconds on a virtual machine.
"""
import argparse
import contextlib
import statistics
import time

import numpy as np

CASES = [((64, 100, 10), 200), ((64, 128, 10), 256), ((64, 64, 10), 128), ((64, 100, 100, 10), 200),
         ((64, 64, 10), None)]


def ways(engine):
    """(split rule, ``Pace.helper_joins``) of each way, by name: never split, the rule with
    the helper always, the rule paced (as it is)."""
    from fastnn._core import split

    rule, paced = engine.should_split, split.Pace.helper_joins
    return {"never": (lambda *a: False, paced), "always": (rule, lambda self: True), "rule": (rule, paced)}


@contextlib.contextmanager
def restored(engine):
    """The engine's split rule and the pace as they were, after the block."""
    from fastnn._core import split

    rule, paced = engine.should_split, split.Pace.helper_joins
    try:
        yield
    finally:
        engine.should_split, split.Pace.helper_joins = rule, paced


def epoch_ms(engine, way, X, y, sizes, batch, dtype, epochs, face="tutorial"):
    """Milliseconds per epoch of ``epochs`` epochs trained ``way`` (one of ``ways``)."""
    import fastnn
    from fastnn._core import split

    engine.should_split, split.Pace.helper_joins = way
    if face == "sklearn":
        return sklearn_epoch_ms(X, y, sizes, batch, dtype, epochs)
    nn = fastnn.NeuralNetwork(sizes[0], list(sizes[1:-1]), sizes[-1], "categorical_crossentropy", activation="relu",
                              init="he", dtype=dtype, seed=0)
    trainer = fastnn.Trainer(nn, "categorical_crossentropy")
    X = X.astype(dtype)
    trainer.train(X, y, None, None, 1, 1e-3, batch_size=batch, optimizer="adam")  # warm-up
    start = time.perf_counter()
    trainer.train(X, y, None, None, epochs, 1e-3, batch_size=batch, optimizer="adam")
    return (time.perf_counter() - start) / epochs * 1e3


def sklearn_epoch_ms(X, y, sizes, batch, dtype, epochs):
    """Milliseconds per epoch of a whole ``MLPClassifier.fit`` of ``epochs`` epochs, after
    a one-epoch fit as warm-up."""
    import warnings

    from fastnn.sklearn import MLPClassifier

    X = X.astype(dtype)
    clf = MLPClassifier(sizes[1:-1], batch_size=batch or X.shape[0], max_iter=1, tol=0.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged: on purpose
        clf.fit(X, y)
        start = time.perf_counter()
        clf.set_params(max_iter=epochs).fit(X, y)
    return (time.perf_counter() - start) / clf.n_iter_ * 1e3


def rows(engine, threads, X, y, rounds, epochs, face="tutorial"):
    """The table's rows: each case and dtype, the three ways."""
    by_name = ways(engine)
    rule = by_name["rule"][0]
    for sizes, batch in CASES:
        step_rows = X.shape[0] if batch is None else batch
        macs = threads.forward_macs(np.array(sizes), step_rows)
        splits = rule(np.array(sizes), step_rows, X.shape[0], False)
        for dtype in ("float64", "float32"):
            times = {name: [] for name in by_name}
            for r in range(rounds):
                for name in list(by_name)[:: 1 if r % 2 == 0 else -1]:
                    times[name].append(epoch_ms(engine, by_name[name], X, y, sizes, batch, dtype, epochs, face))
            a, h, b = (statistics.median(times[name]) for name in by_name)
            yield (f"| {'-'.join(map(str, sizes))}, {batch or 'full batch'} | {macs / 1e6:.2f}M | "
                   f"{'yes' if splits else 'no'} | {dtype} | {a:.3f} ms | {h:.3f} ms | {b:.3f} ms | {a / b:.2f}x |")


def over_time(engine, X, y, seconds, epochs):
    """For ``seconds``: calls of ``epochs`` epochs of 64-100-10, batch 200, float64, the
    three ways in turn. Returns each way's epoch times (ms), one per call."""
    by_name = ways(engine)
    times = {name: [] for name in by_name}
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for name, way in by_name.items():
            times[name].append(epoch_ms(engine, way, X, y, (64, 100, 10), 200, "float64", epochs))
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--busy", action="store_true", help="with another process spinning on one core")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per timed training call")
    parser.add_argument("--face", choices=("tutorial", "sklearn"), default="tutorial")
    parser.add_argument("--seconds", type=float, default=0.0,
                        help="instead of the table: the three ways in turn for this long, one case")
    args = parser.parse_args(argv)
    from contention import busy_core  # benchmarks/contention.py (imported here: asv imports this module too)
    from sklearn.datasets import load_digits

    from fastnn._core import engine, threads

    X, y = load_digits(return_X_y=True)
    X = X / 16
    if args.seconds:
        with restored(engine), busy_core(args.busy):
            times = over_time(engine, X, y, args.seconds, args.epochs)
        print(f"| 64-100-10, batch 200, float64, calls of {args.epochs} epochs{' (busy)' if args.busy else ''} | "
              f"calls | median | mean | 90th percentile | slowest |")
        print("|---|---|---|---|---|---|")
        for name, label in (("never", "never split"), ("always", "rule, helper always"), ("rule", "rule, paced")):
            t = np.array(times[name])
            print(f"| {label} | {t.size} | {np.median(t):.3f} ms | {t.mean():.3f} ms | {np.percentile(t, 90):.3f} ms | "
                  f"{t.max():.3f} ms |")
        return
    print(f"| network, batch | multiply-adds a step | split by the rule | dtype | never split | "
          f"rule, helper always | rule, paced | speed-up{' (busy)' if args.busy else ''} |")
    print("|---|---|---|---|---|---|---|---|")
    with restored(engine), busy_core(args.busy):
        for row in rows(engine, threads, X, y, args.rounds, args.epochs, args.face):
            print(row, flush=True)


if __name__ == "__main__":
    main()
