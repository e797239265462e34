"""The command line end to end: ``python -m fastnn ...`` in a subprocess, on small files
written here. Bad input must give one line on stderr and a non-zero exit status."""
import csv
import importlib.util
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from fastnn._app import cli

TIMEOUT = 180


def fastnn(*args, cwd):
    return subprocess.run([sys.executable, "-m", "fastnn", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=TIMEOUT)


def ok(result):
    assert result.returncode == 0, result.stderr
    return result


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A text-labelled classification CSV, a regression CSV and an integer-labelled .npz."""
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 3))
    label = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    write_csv(d / "cls.csv", ["a", "b", "c", "label"], [[*x, l] for x, l in zip(X, label)])
    target = 10 * (X @ [1.0, 2.0, -1.0]) + 5
    write_csv(d / "reg.csv", ["a", "b", "c", "target"], [[*x, t] for x, t in zip(X, target)])
    y = (X[:, 0] > 0).astype(np.int64) + 2 * (X[:, 2] > 0)  # 4 classes: 0..3
    np.savez(d / "cls.npz", X=X, y=y)
    return d, X, label, target, y


def read_column(path_or_text, from_text=False):
    lines = path_or_text.splitlines() if from_text else open(path_or_text).read().splitlines()
    rows = list(csv.reader(lines))
    return rows[0], [r[0] for r in rows[1:]]


# -- train -> save -> predict ---------------------------------------------------------------------
def test_csv_classification_round_trip(data):
    d, X, label, _, _ = data
    out = ok(fastnn("train", "cls.csv", "--target", "label", "--epochs", 30, "--hidden", "32,16",
                    "--save", "model_cls.npz", cwd=d))
    assert "classification (2 classes)" in out.stdout and "validation accuracy" in out.stdout
    acc = float(out.stdout.split("validation accuracy: ")[1].split()[0])
    assert acc >= 0.85  # a linearly separable task
    assert (d / "model_cls.npz").exists()

    stdout = ok(fastnn("predict", "model_cls.npz", "cls.csv", cwd=d)).stdout
    header, predicted = read_column(stdout, from_text=True)
    assert header == ["label"] and len(predicted) == len(label)
    assert set(predicted) <= {"yes", "no"}  # labels in the original label space
    assert np.mean(np.array(predicted) == label) >= 0.85

    ok(fastnn("predict", "model_cls.npz", "cls.csv", "--out", "pred.csv", cwd=d))
    assert read_column(d / "pred.csv")[1] == predicted  # --out writes what stdout showed

    proba = ok(fastnn("predict", "model_cls.npz", "cls.csv", "--proba", cwd=d)).stdout.splitlines()
    assert proba[0] == "label,p_no,p_yes"
    p = np.array([[float(v) for v in line.split(",")[1:]] for line in proba[1:]])
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-4)


def test_predict_takes_features_by_name_in_any_order(data, tmp_path):
    d, X, _, _, _ = data
    ok(fastnn("train", d / "cls.csv", "--target", "label", "--epochs", 5, "--save", tmp_path / "m.npz", "--quiet",
              cwd=tmp_path))
    base = ok(fastnn("predict", "m.npz", d / "cls.csv", cwd=tmp_path)).stdout
    write_csv(tmp_path / "shuffled.csv", ["c", "extra", "a", "b"], [[x[2], 0, x[0], x[1]] for x in X])
    assert ok(fastnn("predict", "m.npz", "shuffled.csv", cwd=tmp_path)).stdout == base


def test_csv_regression_round_trip(data):
    d, _, _, target, _ = data
    out = ok(fastnn("train", "reg.csv", "--target", "target", "--epochs", 60, "--save", "model_reg.npz", cwd=d))
    assert "regression" in out.stdout and "RMSE" in out.stdout
    r2 = float(out.stdout.split("R^2: ")[1].split()[0])
    assert r2 >= 0.95  # a linear target
    ok(fastnn("predict", "model_reg.npz", "reg.csv", "--out", "pred_reg.csv", cwd=d))
    header, values = read_column(d / "pred_reg.csv")
    pred = np.array(values, dtype=float)
    assert header == ["target"] and pred.shape == target.shape
    # Predictions come back in the target's units (the CLI standardises targets for training).
    assert abs(pred.mean() - target.mean()) < 0.1 * target.std()
    assert np.corrcoef(pred, target)[0, 1] >= 0.97


def test_npz_round_trip_and_task_flag(data):
    d, X, _, _, y = data
    out = ok(fastnn("train", "cls.npz", "--epochs", 20, "--hidden", "16", "--dtype", "float64",
                    "--save", "model_npz.npz", cwd=d))
    assert "classification (4 classes)" in out.stdout  # integer target: classification, array 'y' by default
    header, predicted = read_column(ok(fastnn("predict", "model_npz.npz", "cls.npz", cwd=d)).stdout, from_text=True)
    assert header == ["y"] and set(predicted) <= {"0", "1", "2", "3"} and len(predicted) == len(y)
    # --task regression overrides the inference on the same integer target.
    out = ok(fastnn("train", "cls.npz", "--target", "y", "--task", "regression", "--epochs", 2, "--quiet", cwd=d))
    assert "regression" in out.stdout and "RMSE" in out.stdout


def test_saved_model_keeps_the_cli_metadata(data, tmp_path):
    d = data[0]
    ok(fastnn("train", d / "cls.csv", "--target", "label", "--epochs", 2, "--quiet", "--save", tmp_path / "m.npz",
              cwd=tmp_path))
    model, meta = cli.load_model(str(tmp_path / "m.npz"))
    assert meta["task"] == "classification" and meta["classes"] == ["no", "yes"]
    assert meta["features"] == ["a", "b", "c"] and len(meta["mean"]) == len(meta["scale"]) == 3
    assert model.layer_sizes == (3, 64, 64, 2)


def test_model_file_round_trip(tmp_path):
    """The CLI's model file is a fastnn.io file whose metadata holds the CLI's data."""
    import fastnn

    model = fastnn.NeuralNetwork(3, [5, 4], 2, "categorical_crossentropy", activation="tanh", dtype="float32", seed=1)
    meta = {"format": cli.MODEL_FORMAT, "task": "classification", "classes": [3, 7], "features": ["a", "b", "c"],
            "mean": [0.0] * 3, "scale": [1.0] * 3}
    path = str(tmp_path / "m.npz")
    cli.save_model(model, path, meta)
    loaded, meta2 = cli.load_model(path)
    assert meta2["classes"] == [3, 7] and meta2["features"] == ["a", "b", "c"]
    X = np.random.default_rng(0).normal(size=(4, 3))
    np.testing.assert_array_equal(loaded.forward(X), model.forward(X))


def test_predict_refuses_a_model_without_the_cli_metadata(tmp_path):
    import fastnn as fnn  # the module's own name is the subprocess helper

    path = tmp_path / "plain.npz"
    fnn.NeuralNetwork(3, 4, 2, "categorical_crossentropy", seed=1).save(str(path))
    write_csv(tmp_path / "x.csv", ["a", "b", "c"], [[1, 2, 3]])
    result = fastnn("predict", path, tmp_path / "x.csv", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "without the command line's scaler and labels" in result.stderr


# -- errors: one line on stderr, non-zero status -----------------------------------------------------
@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    write_csv(d / "nonnum.csv", ["a", "b", "y"], [[1, "x", 0], [2, 3, 1]])
    write_csv(d / "header_only.csv", ["a", "b", "y"], [])
    (d / "empty.csv").write_text("")
    write_csv(d / "one_class.csv", ["a", "b", "y"], [[1, 2, 5], [2, 3, 5], [3, 4, 5]])
    write_csv(d / "ok.csv", ["a", "b", "y"], [[1, 2, 0], [2, 3, 1], [3, 4, 0], [4, 5, 1]])
    write_csv(d / "ragged.csv", ["a", "b", "y"], [[1, 2, 0], [2, 3]])
    np.savez(d / "empty.npz", X=np.zeros((0, 3)), y=np.zeros(0))
    return d


@pytest.mark.parametrize("args, message, status", [
    (["train", "missing.csv", "--target", "y"], "no such file: 'missing.csv'", 1),
    (["train", "ok.csv", "--target", "nope"], "unknown target column 'nope' in ok.csv; columns: a, b, y", 1),
    (["train", "nonnum.csv", "--target", "y"], "feature column 'b' in nonnum.csv is not numeric: 'x' on line 2", 1),
    (["train", "empty.csv", "--target", "y"], "empty.csv is empty", 1),
    (["train", "header_only.csv", "--target", "y"], "header_only.csv has a header but no data rows", 1),
    (["train", "empty.npz"], "array 'X' in empty.npz is empty", 1),
    (["train", "ragged.csv", "--target", "y"], "line 3 of ragged.csv has 2 fields but the header has 3", 1),
    (["train", "one_class.csv", "--target", "y"], "target 'y' has a single class (5)", 1),
    (["train", "ok.csv", "--target", "y", "--hidden", "64,x"], "argument --hidden: expected comma-separated positive integers", 2),
    (["train", "ok.csv", "--target", "y", "--hidden", "0"], "argument --hidden", 2),
    (["train", "ok.csv"], "--target COLUMN is required for CSV data", 2),
    (["train", "ok.csv", "--target", "y", "--epochs", "0"], "argument --epochs: expected a positive integer", 2),
    (["predict", "missing.npz", "ok.csv"], "no such file: 'missing.npz'", 1),
    (["predict", "ok.csv", "ok.csv"], "ok.csv is not a model file", 1),
    (["frobnicate"], "invalid choice: 'frobnicate'", 2),
])
def test_bad_input_gives_one_line(bad, args, message, status):
    result = fastnn(*args, cwd=bad)
    assert result.returncode == status
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fastnn: error: ") and message in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(bad):
    result = fastnn("--debug", "train", "nonnum.csv", "--target", "y", cwd=bad)
    assert result.returncode != 0 and "Traceback" in result.stderr and "DataError" in result.stderr


def test_diverging_run_is_one_line(bad):
    result = fastnn("train", "ok.csv", "--target", "y", "--validation-split", "0", "--epochs", 3, "--lr", "1e30",
                    "--quiet", cwd=bad)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("fastnn: error: training diverged")


# -- demo, bench, info --------------------------------------------------------------------------
def test_demo_prints_the_table(tmp_path):
    result = ok(fastnn("demo", "--epochs", 3, "--no-plot", cwd=tmp_path))
    out = result.stdout
    assert "| implementation" in out and "| fastnn " in out and "| fastnn.reference (NumPy)" in out
    assert "speed-up" in out and "warm-up" in out
    assert not list(tmp_path.glob("*.png"))  # --no-plot


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed")
def test_demo_saves_the_loss_curves(tmp_path):
    out = ok(fastnn("demo", "--epochs", 2, "--hidden", "16", "--dtype", "float64", "--plot", "curves.png",
                    cwd=tmp_path)).stdout
    assert "Loss curves saved to curves.png" in out
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_smallest_scale(tmp_path):
    out = ok(fastnn("bench", "--scale", "0.001", "--repeats", 1, cwd=tmp_path)).stdout
    assert "| workload" in out and "GEMM floor" in out
    for workload in "SML":
        for impl in ("fastnn", "reference", "sklearn", "GEMM floor (np.dot)"):
            assert any(line.startswith(f"| {workload} ") and f"| {impl} " in line for line in out.splitlines()), (workload, impl)


def test_bench_flop_count():
    from fastnn._app import bench

    w = bench.workloads(1.0, ["M"])[0]
    # Per step: forward and weight-gradient GEMMs for every layer, input gradients from the second on.
    per_step = 2 * 256 * (784 * 1024 * 2 + 1024 * 1024 * 3 + 1024 * 10 * 3)
    assert bench.epoch_flops(w) == per_step * (20000 // 256) + per_step * (20000 % 256) // 256


def test_bench_floor_epoch_is_the_epochs_gemms(monkeypatch):
    from fastnn._app import bench

    w = bench.Workload("T", 21, (5, 7, 6, 3), 8)  # two full batches and a partial one of 5 rows
    run_floor = bench.floor_runner(w, np.float32)
    shapes = []
    monkeypatch.setattr(np, "dot", lambda a, b, out: shapes.append((a.shape, b.shape, out.shape, out.dtype)))
    run_floor()
    assert [(m, k, p) for (m, k), (_, p), _, _ in shapes] == [
        (m, k, p) for n in (8, 8, 5) for _, m, k, p in bench.gemm_shapes(w.sizes, n)]
    assert sum(2 * m * k * p for (m, k), (_, p), _, _ in shapes) == bench.epoch_flops(w)
    assert all(out == (a[0], b[1]) and dtype == np.float32 for a, b, out, dtype in shapes)


def test_bench_times_the_floor_beside_each_epoch():
    from fastnn._app import bench

    calls = []
    warmup, times, floors = bench.time_epochs(lambda: calls.append("epoch"), 4, floor=lambda: calls.append("floor"))
    assert len(times) == len(floors) == 4
    # one warm-up each, then floor/epoch pairs in alternating order
    assert calls == ["epoch", "floor"] + ["floor", "epoch", "epoch", "floor"] * 2


def test_bench_reports_peak_rss(tmp_path):
    out = ok(fastnn("bench", "--scale", "0.001", "--workloads", "S,M", "--repeats", 1, "--impls", "fastnn,reference",
                    cwd=tmp_path)).stdout
    table = [[c.strip() for c in line.strip().strip("|").split("|")]
             for line in out.splitlines() if line.startswith("| ")]
    column = table[0].index("peak RSS +MiB")
    cell = {(r[0], r[1]): r[column] for r in table[1:]}
    has_proc = os.path.exists("/proc/self/statm")
    for workload in "SM":
        for impl in ("fastnn", "reference"):
            if has_proc:
                assert float(cell[workload, impl]) >= 0, (workload, impl, cell[workload, impl])
            else:
                assert cell[workload, impl] == "n/a"
        assert cell[workload, "GEMM floor (np.dot)"] == "-"
        number = r"\d+\.\d MiB" if has_proc else "n/a"
        assert re.search(rf"^fastnn peak RSS {workload}: {number} \(bound \d+\.\d MiB: dataset \+ 4x parameters "
                         rf"\+ 3x batch activations \+ 64 MiB\)$", out, re.M), out
    assert ("peak RSS +MiB unavailable" in out) is not has_proc


def test_bench_rss_bound():
    from fastnn._app import bench

    w = bench.Workload("T", 100, (3, 4, 2), 8)
    # dataset 100 x (3 + 2), parameters 3*4+4 + 4*2+2 = 26, one batch's activations 8 x (4 + 2) = 48
    assert bench.rss_bound(w, "float64") == (500 + 4 * 26 + 3 * 48) * 8 + 64 * 2**20 == 67_114_848
    assert bench.rss_bound(w, np.float32) == (500 + 4 * 26 + 3 * 48) * 4 + 64 * 2**20
    # a batch larger than the data set is one batch of all n rows
    assert bench.rss_bound(bench.Workload("T", 5, (3, 4, 2), 8), "float64") == (25 + 4 * 26 + 3 * 30) * 8 + 64 * 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="no /proc/self/statm")
def test_bench_peak_rss_sees_a_freed_peak():
    from fastnn._app import bench

    with bench.PeakRSS() as rss:
        a = np.ones(8 * 2**20)  # 64 MiB, above glibc's largest mmap threshold: fresh pages, unmapped on del
        time.sleep(0.05)  # only the sampling thread can see it: it is gone before the block ends
        del a
    assert rss.increase >= 60 * 2**20, rss.increase


def test_bench_peak_rss_unavailable_without_proc(monkeypatch, tmp_path):
    from fastnn._app import bench, memory

    monkeypatch.setattr(memory, "STATM", str(tmp_path / "no-statm"))
    with bench.PeakRSS() as rss:
        np.ones(2**20)
    assert rss.increase is None
    assert bench.fmt_mib(rss.increase) == "n/a"


def test_info(tmp_path):
    out = ok(fastnn("info", cwd=tmp_path)).stdout
    for key in ("fastnn", "numpy", "numba", "scipy", "sklearn", "threadpool: blas", "NUMBA_NUM_THREADS",
                "numba threading layer in use", "kernel cache"):
        assert key in out, key
