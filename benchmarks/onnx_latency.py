"""Prediction latency: a model exported by fastnn.to_onnx, run by onnxruntime, against the
same model's own predict in fastnn (and scikit-learn's, for the same network), one
process, printed as a markdown table.

    python benchmarks/onnx_latency.py [--repeats 7] [--batches 1,1000]

Models, fitted on digits (scaled to [0, 1]): ``MLPClassifier(random_state=0)`` (64-100-10
relu, adam, default parameters) in float32 and float64, and the tutorial's
``NeuralNetwork(64, 64, 10, 'categorical_crossentropy')`` (sigmoid, float64, 20
full-batch epochs). For each batch size (rows taken from digits' test part): the time of
one call, median of --repeats timings, each timing the mean over enough calls to take
~0.2 s; after a warm-up call. Calls: fastnn ``predict_proba`` / ``forward``;
onnxruntime ``InferenceSession.run`` on the same rows (CPU provider, default threads and
options, the input already in the model's dtype); scikit-learn ``predict_proba`` of an
``sklearn.neural_network.MLPClassifier`` given fastnn's weights. Not an asv benchmark.
"""
import argparse
import statistics
import time
import warnings


def seconds_per_call(call, budget=0.2):
    """Mean seconds of one call, over enough calls to take about ``budget`` seconds."""
    call()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        call()
        n += 1
    return (time.perf_counter() - start) / n


def models():
    """(label, fastnn call, onnx model, input dtype, scikit-learn call or None) per model."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SkMLP

    import fastnn

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    out = []
    for dtype in ("float32", "float64"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = fastnn.MLPClassifier(random_state=0, dtype=dtype).fit(X, y)
            peer = SkMLP(random_state=0, max_iter=1).fit(X.astype(dtype), y)  # then given fastnn's weights
        peer.coefs_, peer.intercepts_ = [W.copy() for W in clf.coefs_], [b.copy() for b in clf.intercepts_]
        out.append((f"MLPClassifier 64-100-10 relu, {dtype}", clf.predict_proba, fastnn.to_onnx(clf), dtype,
                    peer.predict_proba))
    nn = fastnn.NeuralNetwork(64, 64, 10, "categorical_crossentropy", seed=0)
    fastnn.Trainer(nn, "categorical_crossentropy").train(X, np.eye(10)[y], None, None, 20, 0.1)
    out.append(("NeuralNetwork 64-64-10 sigmoid, float64", nn.forward, fastnn.to_onnx(nn), "float64", None))
    return out, X


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batches", default="1,1000", help="comma-separated batch sizes (default 1,1000)")
    args = parser.parse_args(argv)

    import onnxruntime as ort

    print("| model | batch | fastnn | onnxruntime | scikit-learn | fastnn / onnxruntime |")
    print("|---|---|---|---|---|---|")
    found, X = models()
    for label, fastnn_call, proto, dtype, peer_call in found:
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for batch in map(int, args.batches.split(",")):
            rows = X[-batch:].astype(dtype)
            calls = {"fastnn": lambda: fastnn_call(rows), "onnxruntime": lambda: session.run(None, {name: rows})}
            if peer_call is not None:
                calls["scikit-learn"] = lambda: peer_call(rows)
            times = {k: statistics.median(seconds_per_call(c) for _ in range(args.repeats)) for k, c in calls.items()}
            cells = [f"{times[k] * 1e6:.1f} us" if k in times else "-" for k in ("fastnn", "onnxruntime", "scikit-learn")]
            print(f"| {label} | {batch} | {' | '.join(cells)} | {times['fastnn'] / times['onnxruntime']:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
