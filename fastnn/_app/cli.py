"""The command line: ``fastnn demo | train | predict | export | bench | compile | info``.

Bad files and arguments end with one line on stderr, ``fastnn: error: ...``, and a
non-zero exit status (2 for usage errors, 1 for everything else); ``--debug`` shows
the traceback instead.

A model saved by ``train --save`` is written by ``fastnn.io.save_model`` with the
command line's own data (task, feature names, scaler, class labels, target scaling)
as its metadata. Tables are read by ``fastnn._app.tabular``.
"""
import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

from .args import CLIError, Parser, add_training_arguments, default_init, fraction, positive_int
from .tabular import check_file, read_table, target_kind

MODEL_FORMAT = "fastnn-cli-model"


# -- reading tables --------------------------------------------------------------------------
def save_model(model, path: str, metadata: dict) -> str:
    """Writes the network and the command line's metadata (scaler, labels, feature names)."""
    from ..io import save_model as save

    save(model, path, metadata=metadata)
    return path


def read_model(path: str):
    """A fastnn model from ``path``: any model file, its problems as one-line errors."""
    from ..errors import ModelFileError
    from ..io import load_model as load

    with open(check_file(path), "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            raise CLIError(f"{path} is not a model file (not an .npz archive); "
                           "expected a file written by 'fastnn train --save'")
    try:
        return load(path)
    except ModelFileError as e:
        raise CLIError(f"cannot read model {path}: {e}") from None


def load_model(path: str):
    """(model, metadata) from a file written by ``fastnn train --save``."""
    model = read_model(path)
    metadata = model.metadata
    if metadata.get("format") != MODEL_FORMAT:
        raise CLIError(f"{path} holds a fastnn model without the command line's scaler and labels; "
                       "train it with 'fastnn train --save'")
    return model, metadata


# -- train ----------------------------------------------------------------------------------
def _split(n, validation_split, seed, stratify):
    if validation_split == 0:
        return np.arange(n), np.arange(0)
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    n_val = int(np.ceil(validation_split * n))
    if n_val < 1 or n - n_val < 1:
        raise CLIError(f"--validation-split {validation_split} leaves no rows for training or validation out of {n}")
    try:
        return train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
    except ValueError:  # a class too small to stratify: fall back to a plain random split
        return train_test_split(idx, test_size=n_val, random_state=seed)


def cmd_train(args) -> int:
    import fastnn
    from tqdm import tqdm

    table = read_table(args.data, args.target)
    y_raw, n = table.y, table.X.shape[0]
    kind = target_kind(y_raw)
    task = args.task or ("regression" if kind == "float" else "classification")
    if task == "regression":
        if kind == "string":
            raise CLIError(f"target {args.target!r} holds text; regression needs numbers (use --task classification)")
        y_num = y_raw.astype(np.float64)
        if not np.isfinite(y_num).all():
            raise CLIError(f"target {args.target!r} holds NaN or infinity; expected finite numbers")
        labels = None
    else:
        if kind in ("integer", "float"):
            y_raw = y_raw.astype(np.int64 if kind == "integer" else np.float64)
        labels, y_num = np.unique(y_raw, return_inverse=True)
        if labels.size < 2:
            raise CLIError(f"target {args.target!r} has a single class ({labels[0].item()!r}); classification needs at least two")
    train_idx, val_idx = _split(n, args.validation_split, args.seed, y_num if labels is not None else None)

    # Standardise with the training part's statistics; a constant column keeps scale 1.
    mean = table.X[train_idx].mean(axis=0)
    scale = table.X[train_idx].std(axis=0)
    scale[scale == 0] = 1.0
    X = (table.X - mean) / scale
    if labels is None:  # standardised targets train well at Adam's default step size
        y_mean, y_scale = float(y_num[train_idx].mean()), float(y_num[train_idx].std() or 1.0)
        Y = ((y_num - y_mean) / y_scale).reshape(-1, 1)
    else:
        Y = y_num

    loss = "categorical_crossentropy" if labels is not None else "mse"
    model = fastnn.NeuralNetwork(
        X.shape[1], args.hidden, int(labels.size) if labels is not None else 1, loss,
        activation=args.activation, output_activation="softmax" if labels is not None else "identity",
        init=default_init(args.activation) if args.init == "auto" else args.init, dtype=args.dtype, seed=args.seed,
    )
    trainer = fastnn.Trainer(model, loss)
    has_val = val_idx.size > 0
    # Cast and gather once: Trainer.train would otherwise convert the arrays every epoch.
    X = X.astype(model.dtype)
    Y = (np.eye(labels.size, dtype=model.dtype)[Y] if labels is not None else Y.astype(model.dtype))  # one-hot
    X_train, Y_train = X[train_idx], Y[train_idx]
    X_val, Y_val = (X[val_idx], Y[val_idx]) if has_val else (None, None)
    what = f"{labels.size} classes" if labels is not None else f"target {table.target!r}"
    print(f"{task} ({what}): {n} rows = {train_idx.size} train + {val_idx.size} validation, {X.shape[1]} features; "
          f"network {'-'.join(map(str, model.layer_sizes))} {args.activation}, {args.optimizer}, {args.dtype}", flush=True)
    if args.early_stopping and not has_val:
        raise CLIError("--early-stopping needs a validation part: set --validation-split above 0")
    start = time.perf_counter()
    bar = tqdm(total=args.epochs, desc="train", unit="epoch", file=sys.stderr, disable=args.quiet, leave=True)

    def progress(epoch, logs):
        bar.set_postfix({k: f"{logs[k]:.4g}" for k in ("loss", "val_loss") if k in logs}, refresh=False)
        bar.update(1)

    callbacks = [fastnn.LambdaCallback(on_epoch_end=progress)]
    if args.early_stopping:
        callbacks.append(fastnn.EarlyStopping("val_loss", patience=args.patience))
    try:
        trainer.train(X_train, Y_train, None, None, args.epochs, args.lr, batch_size=args.batch_size,
                      optimizer=args.optimizer, dropout=args.dropout,
                      validation_data=(X_val, Y_val) if has_val else None, callbacks=callbacks)
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    if trainer.history.stop_reason:
        print(trainer.history.stop_reason)

    part, rows = ("validation", val_idx) if has_val else ("training (no validation split)", train_idx)
    out = model.forward(X[rows])
    if labels is not None:
        acc = float(np.mean(np.argmax(out, axis=1) == y_num[rows]))
        print(f"{part} accuracy: {acc:.4f} ({rows.size} rows); trained {len(trainer.history)} epochs in {elapsed:.2f} s")
    else:
        pred = out[:, 0].astype(np.float64) * y_scale + y_mean
        truth = y_num[rows]
        rmse = float(np.sqrt(np.mean((pred - truth) ** 2)))
        ss_tot = float(np.sum((truth - truth.mean()) ** 2))
        r2 = 1 - float(np.sum((pred - truth) ** 2)) / ss_tot if ss_tot > 0 else float("nan")
        print(f"{part} RMSE: {rmse:.6g}  R^2: {r2:.4f} ({rows.size} rows); trained {len(trainer.history)} epochs in {elapsed:.2f} s")

    if args.save:
        metadata = {
            "format": MODEL_FORMAT, "version": 1, "task": task, "target": table.target, "features": table.names,
            "mean": mean.tolist(), "scale": scale.tolist(),
            "classes": labels.tolist() if labels is not None else None,
            "y_mean": None if labels is not None else y_mean, "y_scale": None if labels is not None else y_scale,
        }
        print(f"saved model to {save_model(model, args.save, metadata)}")
    return 0


# -- predict --------------------------------------------------------------------------------
def cmd_predict(args) -> int:
    model, meta = load_model(args.model)
    table = read_table(args.data, None, meta["features"])
    X = (table.X - np.asarray(meta["mean"])) / np.asarray(meta["scale"])
    out = model.forward(X)
    target = meta.get("target") or "prediction"
    if meta["task"] == "classification":
        classes = meta["classes"]
        header = [target]
        cells = [[classes[i]] for i in np.argmax(out, axis=1)]
        if args.proba:
            header += [f"p_{c}" for c in classes]
            cells = [c + [f"{p:.6g}" for p in row] for c, row in zip(cells, out)]
    else:
        header = [target]
        digits = 8 if model.dtype == np.float32 else 17  # what the model's dtype can hold
        cells = [[f"{v:.{digits}g}"] for v in out[:, 0].astype(np.float64) * meta["y_scale"] + meta["y_mean"]]
    f = open(args.out, "w", newline="") if args.out else sys.stdout
    try:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(cells)
    finally:
        if args.out:
            f.close()
    if args.out:
        print(f"wrote {len(cells)} predictions to {args.out}", file=sys.stderr)
    return 0


# -- export ---------------------------------------------------------------------------------
def cmd_export(args) -> int:
    from .._core.archive import atomic_write
    from . import export

    model = read_model(args.model)
    meta = model.metadata if model.metadata.get("format") == MODEL_FORMAT else None
    proto = export.to_onnx(model, meta, args.opset)
    atomic_write(args.out, lambda f: f.write(proto.SerializeToString()))
    what = "raw features in, labels out" if meta and meta["task"] == "classification" else (
        "raw features in, target units out" if meta else "the network alone: no scaler or labels in the file")
    print(f"wrote {args.out} ({what}): {export.describe(proto)}")
    return 0


# -- info -----------------------------------------------------------------------------------
def _version(module_name):
    try:
        module = __import__(module_name)
    except ImportError:
        return "not installed"
    return getattr(module, "__version__", "unknown")


def cmd_info(args) -> int:
    import numba
    import threadpoolctl

    import fastnn
    from .. import kernels
    from .._core import bf16, busy, precompile as _precompile, products  # bf16's checks load no library
    from ..kernels import blas

    rows = [("fastnn", f"{fastnn.__version__} ({Path(fastnn.__file__).parent})"), ("python", sys.version.split()[0])]
    rows += [(name, _version(name)) for name in ("numpy", "numba", "scipy", "sklearn", "threadpoolctl", "tqdm", "matplotlib")]
    rows += [(f"optional: {name}", _version(name)) for name in ("torch", "jax")]
    for pool in threadpoolctl.threadpool_info():
        path = str(pool.get("filepath", ""))
        owner = next((o for o in ("numpy", "scipy", "scikit_learn", "torch") if f"{o}.libs" in path or f"/{o}/" in path), "")
        if pool.get("user_api") == "blas" and owner == ("numpy" if blas.NUMPY_OPENBLAS else "scipy"):
            owner += ": the BLAS fastnn's kernels call"
        parts = [pool.get("internal_api"), pool.get("version"), f"{pool.get('num_threads')} threads",
                 pool.get("threading_layer"), pool.get("architecture"), f"({owner})" if owner else None, path]
        rows.append((f"threadpool: {pool.get('user_api')}", " ".join(str(x) for x in parts if x)))
    rows.append(("kernels' matrix products", blas.library()))
    rows += ([("wide float32 steps' products", products.describe())] if blas.ROUTED else []) + [("wide steps' BLAS threads", busy.describe())]
    rows.append(("numba config THREADING_LAYER", numba.config.THREADING_LAYER))
    bf16_unavailable = bf16.availability()
    rows.append(("compute_dtype='bfloat16'", bf16_unavailable or f"available (oneDNN: {bf16.library_path()})"))
    if not args.no_threading_probe:
        try:
            rows.append(("numba threading layer in use", _probe_threading_layer()))
        except Exception as e:  # noqa: BLE001 - a missing layer is information, not a failure
            rows.append(("numba threading layer in use", f"unavailable ({e})"))
    rows.append(("NUMBA_NUM_THREADS", f"{numba.config.NUMBA_NUM_THREADS} (env: {os.environ.get('NUMBA_NUM_THREADS', 'unset')})"))
    rows.append(("os.cpu_count()", str(os.cpu_count())))
    rows.append(("NUMBA_CACHE_DIR", numba.config.CACHE_DIR or "unset"))
    kernel_cache = Path(kernels.__file__).parent / "__pycache__"
    if numba.config.CACHE_DIR:
        where = numba.config.CACHE_DIR
    else:
        writable = os.access(kernel_cache if kernel_cache.exists() else kernel_cache.parent, os.W_OK)
        where = f"{kernel_cache}" + ("" if writable else " (not writable: numba falls back to a per-user cache directory; set NUMBA_CACHE_DIR)")
    cached = len(list(kernel_cache.glob("*.nbi"))) if kernel_cache.exists() else 0
    rows.append(("kernel cache", f"{where} ({cached} cached functions next to the kernels)"))
    pairs = [(face, dtype) for face in _precompile.FACES for dtype in _precompile.DTYPES]
    if bf16_unavailable is None:  # the bfloat16 kernels' cache is read; oneDNN is not loaded
        pairs.append((_precompile.BFLOAT16, "float32"))
    for face, dtype in pairs:
        state, reason = _precompile.status(face, dtype)
        hint = f" (run `{_precompile.COMPILE_COMMAND}`)" if state == "compile" else ""
        rows.append((f"kernels: {face} {dtype}", f"{state}: {reason}{hint}"))
    for env in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY"):
        rows.append((env, os.environ.get(env, "unset")))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


# -- compile --------------------------------------------------------------------------------
def default_jobs() -> int:
    """Compiling processes: one per core this process may use, at most one per (API, dtype) pair."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def cmd_compile(args) -> int:
    from .._core import precompile as _precompile, products
    from ..kernels import blas
    from .compile import compile_kernels

    start = time.perf_counter()
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))

    def not_ready():
        """(face, dtype, reason) of everything asked for that is not compiled for this machine."""
        states = [(face, dtype, *_precompile.status(face, dtype)) for face in args.face for dtype in args.dtype]
        if args.check:
            for face, dtype, state, reason in states:
                log(f"fastnn: {face} {dtype}: {state}: {reason}")
        return [(face, dtype, reason) for face, dtype, state, reason in states if state != "ready"]

    if args.check:
        if not_ready():
            raise CLIError(f"some kernels are not compiled for this machine; run `{_precompile.COMPILE_COMMAND}`")
        return 0
    try:
        compile_kernels(args.face, args.dtype, jobs=args.jobs, log=log, force=args.force)
    except RuntimeError as err:
        raise CLIError(str(err)) from None
    missing = not_ready()
    if missing:
        face, dtype, reason = missing[0]
        raise CLIError(f"the {face} kernels for {dtype} are still not ready: {reason}")
    if "float32" in args.dtype and blas.ROUTED:  # measured now, not at the first wide fit
        log(f"fastnn: wide float32 steps' products: {products.describe(measure_now=True)}")
    log(f"fastnn: done in {time.perf_counter() - start:.1f} s; `fastnn info` shows the kernels' state")
    return 0


def _probe_threading_layer():
    """numba.threading_layer() is only known after a parallel function ran: run a tiny one."""
    import numba

    @numba.njit(parallel=True, cache=False)
    def _tiny(n):
        s = 0
        for i in numba.prange(n):
            s += i
        return s

    _tiny(4)
    return numba.threading_layer()


# -- entry point ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from . import bench, demo

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
    parser = Parser(prog="fastnn", parents=[common],
                     description="Fast dense neural networks on the CPU: demo, train, predict, export, bench, compile, "
                                 "info.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", parents=[common], help="digits: fastnn vs the NumPy reference, side by side",
                       description=demo.__doc__.splitlines()[0])
    demo.add_arguments(p)
    p.set_defaults(func=demo.run)

    p = sub.add_parser("train", parents=[common], help="train a network on a CSV, Parquet or .npz table",
                       description="Train on DATA (CSV with a header row, Parquet, or .npz with arrays X and y).")
    p.add_argument("data", metavar="DATA",
                   help="a .csv (header row), .parquet (needs pyarrow) or .npz (arrays X and the target) file")
    p.add_argument("--target", default=None, metavar="COLUMN",
                   help="target column (CSV, Parquet: required) or array name (.npz, default y)")
    p.add_argument("--task", choices=("classification", "regression"), default=None,
                   help="default: classification for integer or text targets, regression for other numbers")
    add_training_arguments(p)
    p.add_argument("--validation-split", type=fraction, default=0.2, metavar="F",
                   help="fraction of rows held out for validation after every epoch and the final evaluation "
                        "(default 0.2; 0 for none)")
    p.add_argument("--dropout", type=fraction, default=0.0, metavar="P",
                   help="dropout rate after every hidden layer while training (default 0)")
    p.add_argument("--early-stopping", action="store_true",
                   help="stop when the validation loss has not improved for --patience epochs, keeping the best weights")
    p.add_argument("--patience", type=positive_int, default=10, help="epochs without improvement (default 10)")
    p.add_argument("--save", metavar="MODEL.npz", help="write the trained model (with its scaler and labels) here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train, parser=p)

    p = sub.add_parser("predict", parents=[common], help="predict with a saved model; CSV to stdout or --out",
                       description="Predict DATA with MODEL (written by 'fastnn train --save').")
    p.add_argument("model", metavar="MODEL", help="a model file written by 'fastnn train --save'")
    p.add_argument("data", metavar="DATA", help="a .csv or .parquet with the model's feature columns, or an .npz with X")
    p.add_argument("--out", metavar="FILE.csv", help="write the predictions here instead of stdout")
    p.add_argument("--proba", action="store_true", help="classifiers: add one probability column per class")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", parents=[common], help="write a saved model as ONNX (needs fastnn[onnx])",
                       description="Write MODEL as an ONNX model: for a 'fastnn train --save' file, the graph "
                                   "takes the raw features and gives labels (or target values), as 'fastnn predict'.")
    p.add_argument("model", metavar="MODEL", help="a model file written by 'fastnn train --save' (or fastnn.save)")
    p.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--opset", type=positive_int, default=None, help="ONNX opset (default 17; at least 13)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bench", parents=[common], help="time fastnn vs the reference, scikit-learn (and torch/jax)",
                       description=bench.__doc__.splitlines()[0])
    bench.add_arguments(p)
    p.set_defaults(func=bench.run)

    p = sub.add_parser("compile", parents=[common], help="compile the kernels for this machine ahead of time",
                       description="Compile fastnn's kernels into numba's cache, so that no fit compiles "
                                   "(install does this already; run it after upgrading numba or Python, or "
                                   "in a container image built elsewhere).")
    p.add_argument("--dtype", nargs="+", choices=("float32", "float64"), default=["float32", "float64"],
                   help="dtypes to compile (default both)")
    p.add_argument("--face", nargs="+", choices=("tutorial", "sklearn"), default=["tutorial", "sklearn"],
                   help="APIs to compile for (default both)")
    p.add_argument("--jobs", type=positive_int, default=default_jobs(),
                   help="compiling processes (default: the cores available, at most 4)")
    p.add_argument("--check", action="store_true",
                   help="compile nothing: exit with status 1 unless every kernel asked for is compiled for this machine")
    p.add_argument("--force", action="store_true",
                   help="compile again what a complete earlier compile (the install's, say) already did")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("info", parents=[common], help="versions, BLAS, threads and cache: for bug reports")
    p.add_argument("--no-threading-probe", action="store_true",
                   help="skip the tiny parallel call that reveals numba's threading layer")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train" and args.target is None:
        if args.data.lower().endswith(".npz"):
            args.target = "y"
        else:
            args.parser.error("--target COLUMN is required for CSV data (and Parquet)")
    debug = getattr(args, "debug", False)
    from ..errors import DivergenceError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("fastnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. 'fastnn predict ... | head'
        sys.stderr.close()
        return 1
    except (CLIError, DivergenceError, ValueError, TypeError, OSError) as e:
        if debug:
            raise
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"fastnn: error: {message}", file=sys.stderr)
        return 1
