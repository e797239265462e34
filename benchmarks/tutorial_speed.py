"""Issue-2 speed check: fastnn vs fastnn.reference on digits, same process, median of 5.

    python benchmarks/tutorial_speed.py [--repeats 5] [--wide]

1. The tutorial's own script: 64-64-10 sigmoid, categorical cross-entropy, float64,
   full-batch gradient descent, lr 0.1, 1000 epochs (test loss every epoch).
2. 64-64-10 ReLU, Adam, batch 32, float32, 50 epochs.
3. With ``--wide``: 784-1024-1024-10 ReLU, Adam, batch 256, float32, 2 epochs of 6144
   random rows: wide steps, whose products take BLAS's threads.
Each implementation is warmed up first (compilation excluded); runs alternate so
that machine noise hits both alike. Not an asv benchmark (no time_* names).
"""
import argparse
import time

import numpy as np

import fastnn
import fastnn.reference


def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler

    d = load_digits()
    X = MinMaxScaler().fit_transform(d.data)
    Y = np.eye(10)[d.target]
    return train_test_split(X, Y, test_size=0.2, random_state=42)


def tutorial(mod, data, epochs=1000):
    X_train, X_test, y_train, y_test = data
    np.random.seed(0)
    nn = mod.NeuralNetwork(64, 64, 10, "categorical_crossentropy")
    trainer = mod.Trainer(nn, "categorical_crossentropy")
    start = time.perf_counter()
    trainer.train(X_train, y_train, X_test, y_test, epochs, 0.1)
    return time.perf_counter() - start, np.mean(np.argmax(nn.forward(X_test), 1) == np.argmax(y_test, 1))


def relu_adam(mod, data, epochs=50):
    X_train, X_test, y_train, y_test = data
    nn = mod.NeuralNetwork(64, 64, 10, "categorical_crossentropy", activation="relu", init="he", dtype="float32", seed=0)
    trainer = mod.Trainer(nn, "categorical_crossentropy")
    start = time.perf_counter()
    trainer.train(X_train, y_train, None, None, epochs, 1e-3, batch_size=32, optimizer="adam")
    return time.perf_counter() - start, np.mean(nn.predict(X_test) == np.argmax(y_test, 1))


def wide(mod, data, epochs=2):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6144, 784)).astype(np.float32)
    labels = rng.integers(0, 10, X.shape[0])
    nn = mod.NeuralNetwork(784, [1024, 1024], 10, "categorical_crossentropy", activation="relu", init="he",
                           dtype="float32", seed=0)
    trainer = mod.Trainer(nn, "categorical_crossentropy")
    start = time.perf_counter()
    trainer.train(X, np.eye(10, dtype=np.float32)[labels], None, None, epochs, 1e-3, batch_size=256, optimizer="adam")
    return time.perf_counter() - start, np.mean(nn.predict(X) == labels)  # of the training rows: random labels


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--wide", action="store_true", help="add the wide workload (3.)")
    args = parser.parse_args(argv)
    data = digits()
    print("| workload | fastnn s (median) | reference s (median) | speed-up | accuracy fastnn / reference |")
    print("|---|---|---|---|---|")
    workloads = [("tutorial script, float64 full-batch GD, 1000 epochs", tutorial),
                 ("ReLU + Adam, batch 32, float32, 50 epochs", relu_adam)]
    if args.wide:
        workloads.append(("wide 784-1024-1024-10 ReLU + Adam, batch 256, float32, 2 epochs", wide))
    for name, run in workloads:
        run(fastnn, data, epochs=2)  # compile (or load the cache) outside the timing
        times = {fastnn: [], fastnn.reference: []}
        acc = {}
        for _ in range(args.repeats):
            for mod in times:
                seconds, acc[mod] = run(mod, data)
                times[mod].append(seconds)
        f, r = np.median(times[fastnn]), np.median(times[fastnn.reference])
        print(f"| {name} | {f:.3f} | {r:.3f} | {r / f:.1f}x | {acc[fastnn]:.3f} / {acc[fastnn.reference]:.3f} |")


if __name__ == "__main__":
    main()
