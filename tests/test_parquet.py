"""``fastnn train`` and ``fastnn predict`` read Parquet files (when pyarrow is installed)
under the rules of CSV: the same table as CSV or as Parquet gives the same features, target,
model and predictions, and the same errors (a missing value is an empty one; rows are
counted from 1, there being no header line)."""
import csv
import sys

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")  # the test extra installs pyarrow
pq = pytest.importorskip("pyarrow.parquet")

from fastnn._app import cli, tabular


def write_both(directory, name, columns):
    """``columns`` ({name: list}) as name.csv and name.parquet; their paths."""
    pq.write_table(pa.table(columns), directory / f"{name}.parquet")
    with open(directory / f"{name}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(columns))
        writer.writerows(["" if v is None else v for v in row] for row in zip(*columns.values()))
    return str(directory / f"{name}.csv"), str(directory / f"{name}.parquet")


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    n = 60
    x = rng.normal(size=n)
    return {
        "x64": x.tolist(),
        "x32": pa.array(rng.normal(size=n).astype(np.float32)),
        "count": rng.integers(0, 5, n).tolist(),
        "label": np.where(x > 0, "up", "down").tolist(),
    }


def test_same_table_as_csv(tmp_path, table):
    csv_path, parquet_path = write_both(tmp_path, "t", {**table, "x32": table["x32"].to_pylist()})
    pq.write_table(pa.table(table), parquet_path)  # the float32 column as float32 in Parquet
    for features in (None, ["count", "x64"]):
        from_csv = tabular.read_table(csv_path, "label", features)
        from_parquet = tabular.read_table(parquet_path, "label", features)
        assert from_parquet.names == from_csv.names
        np.testing.assert_array_equal(from_parquet.X, from_csv.X)  # exactly: float32 values widen exactly
        np.testing.assert_array_equal(from_parquet.y, from_csv.y)


@pytest.mark.parametrize("columns, target, message", [
    ({"a": [1.0, None, 3.0], "y": ["p", "q", "p"]}, "y", "feature column 'a' in {} is not numeric: an empty value on {}"),
    ({"a": ["1", "2", "oops"], "y": ["p", "q", "p"]}, "y", "feature column 'a' in {} is not numeric: 'oops' on {}"),
    ({"a": [1.0, 2.0, float("nan")], "y": ["p", "q", "p"]}, "y", "feature column 'a' in {} holds 'nan' on {}"),
    ({"a": [1.0, 2.0, 3.0], "y": ["p", None, "p"]}, "y", "target column 'y' in {} has an empty value on {}"),
    ({"a": [1.0, 2.0, 3.0], "y": ["p", "q", "p"]}, "z", "unknown target column 'z' in {}; columns: a, y"),
    ({"y": ["p", "q", "p"]}, "y", "{} has no feature columns besides the target 'y'"),
])
def test_same_errors_as_csv(tmp_path, columns, target, message):
    csv_path, parquet_path = write_both(tmp_path, "bad", columns)
    bad_row = next((i for col in columns.values() for i, v in enumerate(col) if v in (None, "oops") or v != v), 0)
    for path, where in ((csv_path, f"line {bad_row + 2}"), (parquet_path, f"row {bad_row + 1}")):
        with pytest.raises(tabular.DataError) as err:
            tabular.read_table(path, target)
        assert message.format(path, where) in str(err.value)


def test_not_parquet_or_empty(tmp_path):
    (tmp_path / "fake.parquet").write_text("a,b\n1,2\n")
    with pytest.raises(tabular.DataError, match=r"cannot read .*fake.parquet as Parquet \("):
        tabular.read_table(str(tmp_path / "fake.parquet"), "b")
    pq.write_table(pa.table({"a": pa.array([], pa.float64()), "y": pa.array([], pa.string())}), tmp_path / "empty.pq")
    with pytest.raises(tabular.DataError, match="has columns but no data rows; expected at least one"):
        tabular.read_table(str(tmp_path / "empty.pq"), "y")


def test_without_pyarrow_says_so(tmp_path, table, monkeypatch):
    _, parquet_path = write_both(tmp_path, "t", {"a": [1.0, 2.0], "y": ["p", "q"]})
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(tabular.DataError, match=r"reading .*t.parquet needs pyarrow, which is not installed"):
        tabular.read_table(parquet_path, "y")


def test_train_and_predict_as_from_csv(tmp_path, table):
    # Same table, same seed: the same model, and the same predictions from either file.
    csv_path, parquet_path = write_both(tmp_path, "t", {**table, "x32": table["x32"].to_pylist()})
    for name, path in (("csv", csv_path), ("parquet", parquet_path)):
        assert cli.main(["train", path, "--target", "label", "--epochs", "3", "--hidden", "8", "--quiet",
                         "--save", str(tmp_path / f"{name}.npz")]) == 0
        assert cli.main(["predict", str(tmp_path / f"{name}.npz"), path, "--proba",
                         "--out", str(tmp_path / f"{name}-predicted.csv")]) == 0
    (model_csv, meta_csv), (model_parquet, meta_parquet) = (cli.load_model(str(tmp_path / f"{name}.npz"))
                                                            for name in ("csv", "parquet"))
    assert meta_parquet == meta_csv
    np.testing.assert_array_equal(model_parquet.params, model_csv.params)
    predicted = (tmp_path / "parquet-predicted.csv").read_text()
    assert predicted == (tmp_path / "csv-predicted.csv").read_text()
    assert predicted.startswith("label,p_down,p_up\n") and len(predicted.splitlines()) == 61
