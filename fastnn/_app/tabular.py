"""Reading a table of numbers for the command line: CSV with a header row, Parquet (when
pyarrow is installed: the same column rules as CSV), or .npz.

Every problem with a file (missing, empty, ragged, a non-numeric feature, an unknown
column) raises ``DataError``, a ``ValueError`` whose message names the file, the
column or line, what was found and what was expected.
"""
import csv
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A data file that cannot be read as a table of numbers."""


class Table:
    """Named numeric feature columns X (n, d) and, when asked for, one raw target column."""

    def __init__(self, X, names, y=None, target=None):
        self.X, self.names, self.y, self.target = X, list(names), y, target


def check_file(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"no such file: {path!r}")
    if p.is_dir():
        raise DataError(f"{path!r} is a directory; expected a .csv, .parquet or .npz file")
    return p


def _csv_line(i):
    return f"line {i + 2}"  # line 1 is the header


def _numeric_column(values, name, path, what="feature", where=_csv_line):
    """``where(i)`` names data row i in messages."""
    try:
        col = np.array(values, dtype=np.float64)
    except (ValueError, TypeError):
        for i, v in enumerate(values):
            try:
                float(v)
            except (ValueError, TypeError):
                shown = "an empty value" if v == "" else repr(v)
                raise DataError(
                    f"{what} column {name!r} in {path} is not numeric: {shown} on {where(i)}; "
                    f"expected numbers (drop or encode that column)"
                ) from None
        raise
    bad = np.flatnonzero(~np.isfinite(col))
    if bad.size:
        raise DataError(f"{what} column {name!r} in {path} holds {str(values[bad[0]])!r} on {where(bad[0])}; expected finite numbers")
    return col


def read_csv(path: str, target: str | None, features: list[str] | None = None) -> Table:
    """Features: every column except ``target`` (or exactly ``features``, in that order)."""
    p = check_file(path)
    delimiter = "\t" if p.suffix.lower() in (".tsv", ".tab") else ","
    with open(p, newline="", encoding="utf-8-sig") as f:
        rows = [[v.strip() for v in row] for row in csv.reader(f, delimiter=delimiter) if row]
    if not rows:
        raise DataError(f"{path} is empty; expected a header row and at least one data row")
    header, body = rows[0], rows[1:]
    if not body:
        raise DataError(f"{path} has a header but no data rows; expected at least one")
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"line {i} of {path} has {len(row)} fields but the header has {len(header)}")
    return _columns_table(path, header, dict(zip(header, zip(*body))), target, features, _csv_line)


def read_parquet(path: str, target: str | None, features: list[str] | None = None) -> Table:
    """A Parquet file, with the rules of ``read_csv``: each column's values as a CSV
    would hold them (a missing value is an empty one), then the same checks."""
    p = check_file(path)
    try:
        import pyarrow
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"reading {path} needs pyarrow, which is not installed (pip install pyarrow); "
                        "or save the table as CSV") from None
    try:
        data = pq.read_table(p)
    except (pyarrow.ArrowException, OSError) as e:
        raise DataError(f"cannot read {path} as Parquet ({e})") from None
    header = data.column_names
    if data.num_rows == 0:
        raise DataError(f"{path} has columns but no data rows; expected at least one")
    columns = {name: ["" if v is None else v for v in data.column(i).to_pylist()] for i, name in enumerate(header)}
    return _columns_table(path, header, columns, target, features, lambda i: f"row {i + 1}")


def _columns_table(path, header, columns, target, features, where) -> Table:
    """The Table of named columns (each a sequence of values, text or numbers) under the
    rules of ``read_csv``; ``where(i)`` names data row i in messages."""
    if len(columns) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise DataError(f"{path} has two columns named {dup!r}; column names must be unique")
    if target is not None and target not in columns:
        raise DataError(f"unknown target column {target!r} in {path}; columns: {', '.join(header)}")
    if features is None:
        features = [h for h in header if h != target]
    else:
        missing = [f for f in features if f not in columns]
        if missing:
            raise DataError(f"{path} lacks the model's feature column(s) {', '.join(map(repr, missing))}")
    if not features:
        raise DataError(f"{path} has no feature columns besides the target {target!r}")
    X = np.column_stack([_numeric_column(list(columns[f]), f, path, where=where) for f in features])
    y = None
    if target is not None:
        y = np.array(columns[target], dtype=str)
        if (y == "").any():
            raise DataError(f"target column {target!r} in {path} has an empty value on {where(int(np.argmax(y == '')))}; "
                           "every row needs a target")
    return Table(X, features, y, target)


def read_npz(path: str, target: str | None, n_features: int | None = None) -> Table:
    """Arrays ``X`` (n, d) and the target (``y`` unless --target names another array)."""
    p = check_file(path)
    try:
        with np.load(p, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except ValueError as e:
        raise DataError(f"cannot read {path} as .npz without pickles ({e})") from None
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read {path}: not a valid .npz file ({e})") from None
    if "X" not in arrays:
        raise DataError(f"{path} has no array 'X'; arrays: {', '.join(arrays) or 'none'}")
    X = arrays["X"]
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2:
        raise DataError(f"array 'X' in {path} must be 2-D (n_samples, n_features); got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"array 'X' in {path} is empty (shape {X.shape}); expected at least one row and one column")
    if X.dtype.kind not in "biuf":
        raise DataError(f"array 'X' in {path} is not numeric (dtype {X.dtype}); expected numbers")
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        r, c = np.argwhere(~np.isfinite(X))[0]
        raise DataError(f"array 'X' in {path} holds {X[r, c]} at row {r}, column {c}; expected finite numbers")
    if n_features is not None and X.shape[1] != n_features:
        raise DataError(f"array 'X' in {path} has {X.shape[1]} columns; the model takes {n_features} features")
    names = [str(s) for s in arrays["feature_names"]] if "feature_names" in arrays else [f"x{j}" for j in range(X.shape[1])]
    y = None
    if target is not None:
        if target not in arrays:
            raise DataError(f"unknown target array {target!r} in {path}; arrays: {', '.join(arrays)}")
        y = arrays[target]
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise DataError(f"target array {target!r} in {path} must be 1-D with {X.shape[0]} entries (one per row of X); got shape {y.shape}")
    return Table(X, names, y, target)


def read_table(path: str, target: str | None, features=None) -> Table:
    if path.lower().endswith(".npz"):
        return read_npz(path, target, None if features is None else len(features))
    if path.lower().endswith((".parquet", ".pq")):
        return read_parquet(path, target, features)
    return read_csv(path, target, features)


def target_kind(y: np.ndarray) -> str:
    """'integer', 'float' or 'string' (CSV values arrive as text and are parsed here)."""
    if y.dtype.kind in "biu":
        return "integer"
    if y.dtype.kind == "f":
        return "float"
    for kind, dtype in (("integer", np.int64), ("float", np.float64)):
        try:
            y.astype(dtype)
            return kind
        except ValueError:
            pass
    return "string"


# -- model files ------------------------------------------------------------------------------
