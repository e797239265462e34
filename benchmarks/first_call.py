"""The first call a new user makes, timed from a fresh virtualenv and a clean clone.

    python benchmarks/first_call.py                  # regular install (pip install .)
    python benchmarks/first_call.py --editable       # pip install -e .
    python benchmarks/first_call.py --repeats 3      # median of 3 processes per row

Clones this repository's HEAD into a temporary folder, creates a virtualenv, installs
fastnn into it (timed: the install compiles the kernels, see setup.py), then runs each
workload in fresh processes: the first process after the install, then later ones.
Each child times itself from just before ``import fastnn`` (or scikit-learn's, or the
reference's) to the end of the fit; the data is made before that. Prints a Markdown
table (docs/performance.md keeps the dated results).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DATA = """
import time, numpy as np
from sklearn.datasets import load_digits
X, labels = load_digits(return_X_y=True)
X = (X / 16.0).astype({dtype!r})
Y = np.eye(10, dtype={dtype!r})[labels]
start = time.perf_counter()
"""
WORKLOADS = {
    "MLPClassifier(random_state=0).fit": "from {module} import MLPClassifier\nMLPClassifier(random_state=0).fit(X, labels)",
    "MLPRegressor(random_state=0).fit": "from {module} import MLPRegressor\nMLPRegressor(random_state=0).fit(X, Y)",
    "tutorial script (1000 full-batch epochs)": (
        "from {module} import NeuralNetwork, Trainer\n"
        "nn = NeuralNetwork(64, 64, 10, 'categorical_crossentropy', dtype={dtype!r})\n"
        "Trainer(nn, 'categorical_crossentropy').train(X[:1437], Y[:1437], X[1437:], Y[1437:], 1000, 0.1)"),
    "minibatch Adam, 10 epochs": (
        "from {module} import NeuralNetwork, Trainer\n"
        "nn = NeuralNetwork(64, 64, 10, 'categorical_crossentropy', activation='relu', dtype={dtype!r}, seed=0)\n"
        "Trainer(nn, 'categorical_crossentropy').train(X, labels, None, None, 10, 1e-3, batch_size=32, "
        "optimizer='adam')"),
    # import and the kernels' load alone: a 1-iteration fit on 100 rows, minus a second one
    "import + kernel load (1-iteration fit minus a second)": (
        "from {module} import MLPClassifier\n"
        "MLPClassifier(max_iter=1, random_state=0).fit(X[:100], labels[:100])\n"
        "again = time.perf_counter()\n"
        "MLPClassifier(max_iter=1, random_state=0).fit(X[:100], labels[:100])\n"
        "start += time.perf_counter() - again"),
}
# Where each workload's peer lives: scikit-learn for its drop-in, the NumPy reference for the tutorial's.
PEER = {"MLPClassifier(random_state=0).fit": "sklearn.neural_network",
        "MLPRegressor(random_state=0).fit": "sklearn.neural_network",
        "tutorial script (1000 full-batch epochs)": "fastnn.reference",
        "minibatch Adam, 10 epochs": "fastnn.reference",
        "import + kernel load (1-iteration fit minus a second)": "sklearn.neural_network"}
DTYPES = {"MLPClassifier(random_state=0).fit": ("float64", "float32"),
          "MLPRegressor(random_state=0).fit": ("float64",),
          "tutorial script (1000 full-batch epochs)": ("float64",),
          "minibatch Adam, 10 epochs": ("float32",),
          "import + kernel load (1-iteration fit minus a second)": ("float64",)}


def child_time(python, workload, module, dtype, cwd):
    code = (DATA.format(dtype=dtype) + WORKLOADS[workload].format(module=module, dtype=dtype)
            + "\nprint(time.perf_counter() - start)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "PYTHON"))}
    result = subprocess.run([python, "-W", "ignore", "-c", code], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(result.stderr)
    return float(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--editable", action="store_true", help="pip install -e . instead of pip install .")
    parser.add_argument("--repeats", type=int, default=3, help="later processes per row (median reported)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fastnn-first-call-") as tmp:
        clone, venv = Path(tmp) / "clone", Path(tmp) / "venv"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = str(venv / "bin" / "python")
        start = time.perf_counter()
        subprocess.run([python, "-m", "pip", "install", "-q", *(["-e"] if args.editable else []), str(clone)],
                       check=True)
        install = time.perf_counter() - start
        mode = "pip install -e ." if args.editable else "pip install ."
        print(f"{mode} of a clean clone into a fresh venv: {install:.1f} s\n")
        print("| workload | dtype | fastnn, first process | fastnn, later (median) | peer | peer (median) |")
        print("|---|---|---|---|---|---|")
        for workload in WORKLOADS:
            for dtype in DTYPES[workload]:
                first = child_time(python, workload, "fastnn", dtype, tmp)
                later = statistics.median(child_time(python, workload, "fastnn", dtype, tmp)
                                          for _ in range(args.repeats))
                peer = statistics.median(child_time(python, workload, PEER[workload], dtype, tmp)
                                         for _ in range(args.repeats))
                print(f"| {workload} | {dtype} | {first:.2f} s | {later:.2f} s | {PEER[workload]} | {peer:.2f} s |",
                      flush=True)


if __name__ == "__main__":
    main()
