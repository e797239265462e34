"""The fallback's first fit: everything compiles (an empty Numba cache), per face and dtype.

    python benchmarks/cold_compile.py [--repeats 3] [--dtype float64 float32]

Each sample is a fresh interpreter with ``NUMBA_CACHE_DIR`` set to a new empty folder,
timing one first fit on digits (scaled) from just after ``import fastnn``:
"minibatch", the tutorial face 64-64-10 Adam batch 32 for 3 epochs; "full batch", the
tutorial script's shape (sigmoid, full-batch GD with a test set: the two-core split);
"sklearn", ``MLPClassifier(random_state=0, max_iter=3)``; "both", minibatch then sklearn
in one process (the second face compiles only what the first did not). Prints one
Markdown table of medians, with the split of each fit's largest compile (Numba's timers:
``llvm_lock`` is every call into LLVM; the rest of ``compiler_lock`` is Numba's own
Python: typing, building the IR, caching). The install precompiles all of this
(``fastnn compile``); only another numba, Python or CPU than the install's pays it.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = """
import gc, sys, time, warnings
warnings.simplefilter("ignore")
from sklearn.datasets import load_digits
dtype, faces = sys.argv[1], sys.argv[2:]
X, y = load_digits(return_X_y=True)
X = (X / 16).astype(dtype)
import fastnn
from numba.core.dispatcher import Dispatcher

def compiles():
    return {(id(d), sig): (cres.metadata or {}).get("timers", {}) for d in gc.get_objects()
            if isinstance(d, Dispatcher) for sig, cres in d.overloads.items()}

for face in faces:
    before = compiles()
    start = time.perf_counter()
    if face == "sklearn":
        fastnn.MLPClassifier(random_state=0, max_iter=3).fit(X, y)
    else:
        nn = fastnn.NeuralNetwork(64, 64, 10, "categorical_crossentropy", seed=0, dtype=dtype)
        trainer = fastnn.Trainer(nn, "categorical_crossentropy")
        if face == "minibatch":
            trainer.train(X, y, None, None, 3, 0.1, batch_size=32, optimizer="adam")
        else:
            trainer.train(X, y, X[:300], y[:300], 3, 0.1)
    seconds = time.perf_counter() - start
    new = [t for key, t in compiles().items() if key not in before]
    largest = max(new, key=lambda t: t.get("compiler_lock", 0.0), default={})
    llvm = largest.get("llvm_lock", 0.0)
    print(seconds, llvm, largest.get("compiler_lock", 0.0) - llvm)
"""
CASES = {"minibatch": ["minibatch"], "full batch": ["full"], "sklearn": ["sklearn"], "both": ["minibatch", "sklearn"]}


def sample(dtype, faces):
    with tempfile.TemporaryDirectory(prefix="fastnn-cold-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", CHILD, dtype, *faces], env=env, capture_output=True, text=True,
                             check=True).stdout
    return [[float(x) for x in line.split()] for line in out.splitlines()]  # per face: fit, LLVM, Python


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    args = parser.parse_args(argv)
    print("| first fit, cold | dtype | seconds (median) | its largest compile: LLVM / Numba's Python (median) |\n"
          "|---|---|---|---|")
    for dtype in args.dtype:
        for name, faces in CASES.items():
            runs = [sample(dtype, faces) for _ in range(args.repeats)]
            medians = [[statistics.median(run[i][k] for run in runs) for k in range(3)] for i in range(len(faces))]
            fits = " + ".join(f"{m[0]:.2f}" for m in medians)
            split = " + ".join(f"{m[1]:.2f} / {m[2]:.2f}" for m in medians)
            print(f"| {name} | {dtype} | {fits} | {split} |", flush=True)


if __name__ == "__main__":
    main()
