"""``fastnn export``: a model saved by ``fastnn train --save`` becomes an ONNX model that
takes the raw feature columns and gives what ``fastnn predict`` prints (labels identical,
probabilities and values within what the printed digits hold); a plain model file gives the
network alone; bad input is one line on stderr."""
import csv
import sys

import numpy as np
import pytest

pytest.importorskip("onnx")  # the test extra installs fastnn[onnx] and onnxruntime
ort = pytest.importorskip("onnxruntime")

import fastnn
from fastnn._app import cli


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return str(path)


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def run(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"X": X}))), session.get_modelmeta().custom_metadata_map


def fastnn_cli(*args):
    assert cli.main([str(a) for a in args]) == 0


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """Raw (unscaled) features a, b, c and, in one file each, a text label, an integer
    label and a numeric target: {target column: CSV path}, the directory, X."""
    d = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(0)
    X = rng.normal(loc=[10.0, -3.0, 0.0], scale=[5.0, 0.1, 1.0], size=(120, 3))
    z = (X[:, 0] - 10) / 5 + (X[:, 1] + 3) / 0.1
    targets = {"label": np.where(z > 0, "yes", "no"), "digit": np.digitize(z, [-1, 1]) * 10 + 3, "target": 100 * z + 7}
    paths = {name: write_csv(d / f"{name}.csv", ["a", "b", "c", name], [[*x, t] for x, t in zip(X, y)])
             for name, y in targets.items()}
    return paths, d, X


@pytest.mark.parametrize("target, dtype", [("label", "float32"), ("digit", "float64")])
def test_classifier_gives_what_predict_prints(table, capsys, target, dtype):
    paths, d, X = table
    model, onnx_path, out = d / f"{target}.npz", d / f"{target}.onnx", d / f"{target}-predicted.csv"
    fastnn_cli("train", paths[target], "--target", target, "--task", "classification", "--epochs", 3,
               "--hidden", "8,4", "--dtype", dtype, "--quiet", "--save", model)
    fastnn_cli("export", model, onnx_path)
    assert f"wrote {onnx_path} (raw features in, labels out)" in capsys.readouterr().out
    fastnn_cli("predict", model, paths[target], "--proba", "--out", out)
    header, rows = read_csv(out)

    # The ONNX input takes the raw features in the order kept in the model's metadata.
    got, meta = run(onnx_path, X)
    assert meta["features"] == '["a", "b", "c"]' and meta["task"] == '"classification"'
    assert [str(v) for v in got["label"]] == [r[0] for r in rows]
    assert got["label"].dtype == (object if target == "label" else np.int64)
    printed = np.array([[float(v) for v in r[1:]] for r in rows])
    np.testing.assert_allclose(got["probabilities"], printed, rtol=1e-5, atol=1e-6)  # printed with 6 digits
    one, _ = run(onnx_path, X[:1])
    assert [str(v) for v in one["label"]] == [rows[0][0]]


def test_regressor_gives_values_in_the_target_units(table, capsys):
    paths, d, X = table
    model, onnx_path, out = d / "reg.npz", d / "reg.onnx", d / "reg-predicted.csv"
    fastnn_cli("train", paths["target"], "--target", "target", "--epochs", 3, "--dtype", "float64", "--quiet", "--save", model)
    fastnn_cli("export", model, onnx_path, "--opset", 13)
    assert "(raw features in, target units out): ONNX opset 13" in capsys.readouterr().out
    fastnn_cli("predict", model, paths["target"], "--out", out)
    _, rows = read_csv(out)
    got, _ = run(onnx_path, X)
    assert got["prediction"].shape == (len(X),) and got["prediction"].dtype == np.float64
    np.testing.assert_allclose(got["prediction"], [float(r[0]) for r in rows], rtol=1e-10)  # printed with 17 digits


def test_plain_model_file_exports_the_network(tmp_path, capsys):
    nn = fastnn.NeuralNetwork(3, [4], 2, "categorical_crossentropy", seed=0)
    nn.save(tmp_path / "plain.npz")
    fastnn_cli("export", tmp_path / "plain.npz", tmp_path / "plain.onnx")
    assert "(the network alone: no scaler or labels in the file)" in capsys.readouterr().out
    X = np.random.RandomState(0).randn(5, 3)
    got, _ = run(tmp_path / "plain.onnx", X)
    np.testing.assert_allclose(got["output"], nn.forward(X), rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(got["label"], nn.predict(X))


def test_bad_input_is_one_line(tmp_path, capsys, monkeypatch):
    not_a_model = write_csv(tmp_path / "x.csv", ["a"], [[1]])
    nn = fastnn.NeuralNetwork(3, [4], 2, seed=0)
    nn.save(tmp_path / "plain.npz")
    for args, message in [
        (["export", not_a_model, tmp_path / "m.onnx"], "is not a model file (not an .npz archive)"),
        (["export", tmp_path / "missing.npz", tmp_path / "m.onnx"], "no such file"),
        (["export", tmp_path / "plain.npz", tmp_path / "m.onnx", "--opset", 12], "opset must be an int from 13 to"),
    ]:
        assert cli.main([str(a) for a in args]) == 1
        err = capsys.readouterr().err
        assert err.startswith("fastnn: error: ") and message in err and err.count("\n") == 1
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    assert cli.main(["export", str(tmp_path / "plain.npz"), str(tmp_path / "m.onnx")]) == 1
    assert "needs the 'onnx' package, which is not installed; install fastnn's ONNX extra: " \
           "pip install 'fastnn[onnx]'" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
