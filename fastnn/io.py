"""Saving and loading models and trainer checkpoints: plain arrays plus JSON, checked on load.

A file is a zip archive of ``.npy`` members (an ``.npz``), written and read with
``allow_pickle=False``:

    header.npy      uint8 (n,)  the UTF-8 bytes of a JSON object (see ``_model_header``)
    params.npy      dtype (p,)  the flat parameter buffer: W_0 (d_0, d_1) row-major, b_0, W_1, b_1, ...
    rng_keys.npy    uint32 (624,) the MT19937 key of the model's shuffling RandomState
    opt_m.npy, opt_v.npy, train_loss.npy, test_loss.npy   (checkpoints only)

The header holds the format name and version, the fastnn version, the engine, the
architecture and hyperparameters, the shape and dtype of every array, the rest of the
RNG state, the dropout masks' stream, the optimizer (checkpoints), the user's
``metadata`` and a SHA-256 of the header and of every array. ``load_model`` checks all of it before building a
model, and raises ``ModelFileError`` saying what is wrong. Nothing is unpickled.

Writes are atomic: a temporary file in the destination's directory, flushed and
fsynced, then ``os.replace``; the directory is fsynced too. If anything fails, the
temporary file is removed and a previous file at ``path`` is left as it was.

This module holds the format: the header's contents and their checks, the engines a file
may name, and saving and loading models and checkpoints. The container under it (the zip
of ``.npy`` members and its checks, the checksum, the atomic write) is
``fastnn._core.archive``; ``atomic_write`` is re-exported here.
"""
import json
import math
import numbers

import numpy as np

from ._core import archive
from ._core.archive import HEADER_LIMIT, NPY_HEADER_SLACK, atomic_write  # noqa: F401  (fastnn.io's public names)
from ._core.archive import fail as _fail
from ._version import __version__
from .errors import ModelFileError  # noqa: F401  (what the loaders raise, through _fail)
from .optimizers import SGD, Adam, OptimizerState

FORMAT_VERSION = 1
MODEL_FORMAT = "fastnn-model"
CHECKPOINT_FORMAT = "fastnn-checkpoint"
MODEL_ARRAYS = ("params", "rng_keys")
CHECKPOINT_ARRAYS = MODEL_ARRAYS + ("opt_m", "opt_v", "train_loss", "test_loss")
STATE_LAYOUT = {
    "params": "W_0 (d_0, d_1) row-major, b_0 (d_1,), W_1 (d_1, d_2), b_1 (d_2,), ...",
    "rng_keys": "MT19937 key of the shuffling RandomState; pos, has_gauss, cached_gaussian in header 'rng'",
    "opt_m": "momentum velocity or Adam first moment, layout of params ((0,) when no optimizer state)",
    "opt_v": "Adam second moment, layout of params ((0,) unless Adam)",
    "train_loss": "Trainer.train_loss, float64 per epoch",
    "test_loss": "Trainer.test_loss, float64 per epoch",
}


# -- writing --------------------------------------------------------------------------------
# The classes each engine's files are loaded into, registered by the packages that define
# them (fastnn/__init__.py, fastnn/reference.py): this module imports neither.
_ENGINES = {}


def register_engine(name, network_class, trainer_class):
    """Load files whose header names engine ``name`` into these classes."""
    _ENGINES[name] = (network_class, trainer_class)


def _json_default(obj):
    # NumPy arrays and scalars in metadata are stored as lists and numbers.
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.tolist()
    raise TypeError(f"metadata must be JSON-serialisable; got an object of type {type(obj).__name__}: {obj!r}.")


def _random_streams(model, header):
    """Store the model's random streams in ``header`` and return the shuffling RNG's key
    (the array ``rng_keys``):

    - ``rng``: the rest of the shuffling RandomState's state (for seed=None, NumPy's
      global state);
    - ``dropout_stream``: the dropout masks' ``{"key", "counter"}``, null before the
      model's first training with dropout. A resumed run draws the masks an uninterrupted
      one would.
    """
    name, keys, pos, has_gauss, cached = model._rng.get_state()
    header["rng"] = {"pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    stream = getattr(model, "_dropout_stream", None)
    header["dropout_stream"] = None if stream is None else {"key": int(stream[0]), "counter": int(stream[1])}
    return np.asarray(keys, dtype=np.uint32)


def _model_header(model, metadata):
    if metadata is None:
        metadata = getattr(model, "metadata", None) or {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict (JSON-serialisable); got {type(metadata).__name__}.")
    try:  # one round trip: numpy values become plain JSON, NaN/inf are refused
        metadata = json.loads(json.dumps(metadata, default=_json_default, allow_nan=False))
    except ValueError as err:
        raise ValueError(f"metadata must be JSON-serialisable without NaN or infinity: {err}.") from None
    hidden = model.hidden_size
    return {
        "format_version": FORMAT_VERSION,
        "fastnn_version": __version__,
        "engine": model._engine.name,
        "model": {
            "layer_sizes": [int(s) for s in model.layer_sizes],
            "hidden_size": int(hidden) if isinstance(hidden, numbers.Integral) else [int(h) for h in model.hidden_sizes],
            "activation": model.activation,
            "output_activation": model.output_activation,
            "alpha": float(model.alpha),
            "loss_func": model.loss_func,
            "init": model.init,
            "dtype": model.dtype.name,
            "seed": model.seed,
            "dropout": [float(p) for p in model.dropout],
            "compute_dtype": getattr(model, "compute_dtype", None),
        },
        "metadata": metadata,
        "state_layout": STATE_LAYOUT,
    }


def save_model(model, path, metadata=None):
    """Save a network's architecture, weights and shuffling RNG state to ``path`` (.npz).

    Parameters
    ----------
    model : fastnn.NeuralNetwork or fastnn.reference.NeuralNetwork
    path : str or os.PathLike
        Written exactly as given (no suffix is added), atomically: a previous file at
        ``path`` survives any failure.
    metadata : dict, optional
        JSON-serialisable data stored in the header and given back as ``model.metadata``
        by ``load_model`` (NumPy arrays and scalars become lists and numbers). Defaults to
        the model's own ``metadata`` attribute, if it has one.
    """
    if not hasattr(model, "_engine") or not hasattr(model, "params"):
        raise TypeError(f"model must be a fastnn NeuralNetwork; got {type(model).__name__}.")
    header = _model_header(model, metadata)
    header["format"] = MODEL_FORMAT
    keys = _random_streams(model, header)
    archive.write(path, header, {"params": model.params.copy(), "rng_keys": keys})


def save_checkpoint(trainer, path):
    """Save a trainer (its model, optimizer settings and state, loss history) to ``path``.

    ``load_checkpoint`` gives back a trainer whose next ``train`` call continues exactly
    where this one stopped: the same weights, optimizer moments and update count, and
    the same shuffle order. For a model built with ``seed=None`` (which shuffles from
    NumPy's global random state) the global state at save time is stored; the loaded
    model gets a private ``RandomState`` started from it, and loading never changes
    NumPy's global state.
    """
    if not hasattr(trainer, "model") or not hasattr(trainer, "optimizer_state"):
        raise TypeError(f"trainer must be a fastnn Trainer; got {type(trainer).__name__}.")
    model = trainer.model
    header = _model_header(model, None)
    header["format"] = CHECKPOINT_FORMAT
    keys = _random_streams(model, header)
    state = trainer.optimizer_state
    empty = np.zeros(0, dtype=model.dtype)
    if state is None:
        header["optimizer"] = None
        m = v = empty
    else:
        opt = state.optimizer
        if isinstance(opt, Adam):
            header["optimizer"] = {"name": "Adam", "beta1": opt.beta1, "beta2": opt.beta2, "epsilon": opt.epsilon}
        else:
            header["optimizer"] = {"name": "SGD", "momentum": opt.momentum, "nesterov": bool(opt.nesterov)}
        header["optimizer"]["t"] = int(state.t)
        m, v = state.m.copy(), state.v.copy()
    header["trainer"] = {"loss_func": trainer.loss_func}
    arrays = {
        "params": model.params.copy(), "rng_keys": keys, "opt_m": m, "opt_v": v,
        "train_loss": np.asarray(trainer.train_loss, dtype=np.float64).reshape(-1),
        "test_loss": np.asarray(trainer.test_loss, dtype=np.float64).reshape(-1),
    }
    archive.write(path, header, arrays)


# -- reading --------------------------------------------------------------------------------
def _parse_header(path, raw):
    if raw.dtype != np.uint8 or raw.ndim != 1:
        _fail(path, f"the header must be a 1-D uint8 array of UTF-8 JSON; got {raw.dtype} with shape {raw.shape}.")

    def no_constants(name):  # NaN and Infinity are not JSON
        raise ValueError(f"{name} is not allowed")

    try:
        header = json.loads(raw.tobytes().decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        _fail(path, f"the header is not valid UTF-8 JSON ({err}).")
    if not isinstance(header, dict):
        _fail(path, f"the header must be a JSON object; got {type(header).__name__}.")
    fmt = header.get("format")
    if fmt not in (MODEL_FORMAT, CHECKPOINT_FORMAT):
        _fail(path, f"header 'format' is {fmt!r}; expected {MODEL_FORMAT!r} or {CHECKPOINT_FORMAT!r}.")
    version = header.get("format_version")
    if not _is_int(version) or version < 1:
        _fail(path, f"header 'format_version' must be an int >= 1; got {version!r}.")
    if version > FORMAT_VERSION:
        _fail(path, f"unsupported format version {version} (written by fastnn {header.get('fastnn_version')!r}); "
              f"this fastnn reads format version {FORMAT_VERSION}. Upgrade fastnn to load it.")
    _require(path, header, "", {"fastnn_version": str, "engine": str, "model": dict, "metadata": dict,
                                "rng": dict, "arrays": dict, "sha256": str})
    if header["engine"] not in _ENGINES:
        expected = " or ".join(repr(name) for name in sorted(_ENGINES))
        _fail(path, f"header 'engine' is {header['engine']!r}; expected {expected}.")
    expected = CHECKPOINT_ARRAYS if fmt == CHECKPOINT_FORMAT else MODEL_ARRAYS
    declared = set(header["arrays"])
    if declared != set(expected):
        _fail(path, f"header lists arrays {sorted(declared)}; a {fmt} file has {sorted(expected)}.")
    for name, spec in header["arrays"].items():
        ok = isinstance(spec, dict) and isinstance(spec.get("dtype"), str) and isinstance(spec.get("shape"), list)
        ok = ok and all(_is_int(s) and s >= 0 for s in spec["shape"])
        try:
            ok = ok and np.dtype(spec["dtype"]).kind in "fu"
        except TypeError:
            ok = False
        if not ok:
            _fail(path, f"header entry for array {name!r} must be {{'dtype': numeric dtype, 'shape': [ints]}}; "
                  f"got {spec!r}.")
    return header


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _require(path, d, where, spec):
    """Each key of ``spec`` is in ``d`` with its type (int excludes bool; float accepts int)."""
    for key, typ in spec.items():
        if key not in d:
            _fail(path, f"header{where} has no {key!r}.")
        x = d[key]
        if typ is int:
            ok = _is_int(x)
        elif typ is float:
            ok = (_is_int(x) or isinstance(x, float)) and math.isfinite(x)
        else:
            ok = isinstance(x, typ)
        if not ok:
            _fail(path, f"header{where} {key!r} must be {typ.__name__}; got {x!r}.")


def _check_array(path, arrays, name, dtype, shape):
    a = arrays[name]
    if a.dtype != np.dtype(dtype):
        _fail(path, f"array {name!r} has dtype {a.dtype.str}; expected {np.dtype(dtype).str}.")
    if a.shape != tuple(shape):
        _fail(path, f"array {name!r} has shape {a.shape}; the header's architecture needs {tuple(shape)}.")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        _fail(path, f"array {name!r} contains NaN or infinity (first at index {int(np.argmin(np.isfinite(a)))}).")
    return a


def _build_model(path, header, arrays):
    """Check arrays against the header and build the model; the file decides nothing else."""
    spec = header["model"]
    _require(path, spec, "['model']", {"layer_sizes": list, "activation": str, "output_activation": str,
                                       "alpha": float, "loss_func": str, "init": str, "dtype": str})
    for key in ("hidden_size", "seed"):
        if key not in spec:
            _fail(path, f"header['model'] has no {key!r}.")
    sizes = spec["layer_sizes"]
    if len(sizes) < 2 or not all(_is_int(s) and s >= 1 for s in sizes):
        _fail(path, f"header layer_sizes must be >= 2 ints >= 1 (input, hidden..., output); got {sizes!r}.")
    if spec["dtype"] not in ("float32", "float64"):
        _fail(path, f"header dtype must be 'float32' or 'float64'; got {spec['dtype']!r}.")
    hidden = spec["hidden_size"]
    if hidden != sizes[1:-1] and not (_is_int(hidden) and [hidden] == sizes[1:-1]):
        _fail(path, f"header hidden_size {hidden!r} disagrees with layer_sizes {sizes!r}.")
    compute_dtype = spec.get("compute_dtype")  # absent from files written before it existed
    if compute_dtype not in (None, "bfloat16"):
        _fail(path, f"header compute_dtype must be null or 'bfloat16'; got {compute_dtype!r}.")
    seed = spec["seed"]
    if seed is not None and not (_is_int(seed) and 0 <= seed < 2**32):
        _fail(path, f"header seed must be null or an int in [0, 2**32); got {seed!r}.")
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    # Shapes and dtypes against the header's own table, then against the architecture.
    for name, a in arrays.items():
        want = header["arrays"][name]
        if a.dtype != np.dtype(want["dtype"]) or list(a.shape) != want["shape"]:
            _fail(path, f"array {name!r} is {a.dtype.str} {a.shape}; the header declares "
                  f"{want['dtype']} {tuple(want['shape'])}.")
    if archive.checksum(header, arrays) != header["sha256"]:
        _fail(path, "SHA-256 checksum mismatch: the file was modified or corrupted after it was written.")
    params = _check_array(path, arrays, "params", spec["dtype"], (n_params,))
    keys = _check_array(path, arrays, "rng_keys", np.uint32, (624,))

    rng = header["rng"]
    _require(path, rng, "['rng']", {"pos": int, "has_gauss": int, "cached_gaussian": float})
    if not (0 <= rng["pos"] <= 624 and rng["has_gauss"] in (0, 1)):
        _fail(path, f"header rng state out of range: {rng!r}.")
    stream = _dropout_stream(path, header)
    NeuralNetwork, _ = _ENGINES[header["engine"]]
    try:  # the constructor validates every hyperparameter again
        model = NeuralNetwork(
            sizes[0], hidden, sizes[-1], spec["loss_func"], activation=spec["activation"],
            output_activation=spec["output_activation"], alpha=spec["alpha"], init=spec["init"],
            dtype=spec["dtype"], seed=0 if seed is None else seed, compute_dtype=compute_dtype,
            dropout=spec.get("dropout", 0.0),  # absent from files written before it was stored
        )
        model._rng = np.random.RandomState()
        model._rng.set_state(("MT19937", keys, rng["pos"], rng["has_gauss"], float(rng["cached_gaussian"])))
    except (TypeError, ValueError) as err:
        _fail(path, f"the header describes an invalid model: {err}")
    model.seed = seed  # seed=None: shuffles continue from the saved global state, privately
    model._dropout_stream = stream
    model.params[...] = params
    model.metadata = header["metadata"]
    return model


def _dropout_stream(path, header):
    """The dropout masks' [key, counter] from the header, or None (none drawn yet, or a file
    written before the stream was stored: its masks then start the stream again)."""
    stream = header.get("dropout_stream")
    if stream is None:
        return None
    if not isinstance(stream, dict):
        _fail(path, f"header dropout_stream must be null or {{'key': int, 'counter': int}}; got {stream!r}.")
    _require(path, stream, "['dropout_stream']", {"key": int, "counter": int})
    if not (0 <= stream["key"] < 2**64 and 0 <= stream["counter"] < 2**63):
        _fail(path, f"header dropout_stream out of range (key in [0, 2**64), counter in [0, 2**63)): {stream!r}.")
    return [stream["key"], stream["counter"]]


def load_model(path):
    """Load a network saved by ``save_model`` / ``NeuralNetwork.save`` (or the model of a checkpoint).

    Returns a ``fastnn.NeuralNetwork`` (``fastnn.reference.NeuralNetwork`` if that was saved)
    with the saved weights, hyperparameters and shuffling RNG state, and ``metadata``
    (a dict, ``{}`` if none was stored).

    Raises
    ------
    ModelFileError
        The file is not a valid fastnn file; the message says what is wrong.
    OSError
        The file cannot be opened.
    """
    header, arrays = archive.read(path, _parse_header)
    return _build_model(path, header, arrays)


def load_checkpoint(path):
    """Load a trainer saved by ``save_checkpoint``; its next ``train`` continues exactly.

    Returns a ``fastnn.Trainer`` (or ``fastnn.reference.Trainer``) with its model,
    ``train_loss``/``test_loss`` history and ``optimizer_state`` (settings, moments m, v
    and update count t). Pass the same optimizer to ``train`` to continue with that state.
    """
    header, arrays = archive.read(path, _parse_header)
    if header["format"] != CHECKPOINT_FORMAT:
        _fail(path, f"this is a {header['format']} file, not a checkpoint; load it with fastnn.load.")
    model = _build_model(path, header, arrays)
    _require(path, header, "", {"trainer": dict})
    _require(path, header["trainer"], "['trainer']", {"loss_func": str})
    n = model.params.size
    opt = header.get("optimizer", "missing")
    if opt == "missing":
        _fail(path, "header has no 'optimizer'.")
    if opt is None:
        optimizer, sizes = None, (0, 0)
    elif isinstance(opt, dict) and opt.get("name") in ("SGD", "Adam"):
        fields = {"Adam": {"beta1": float, "beta2": float, "epsilon": float, "t": int},
                  "SGD": {"momentum": float, "nesterov": bool, "t": int}}[opt["name"]]
        _require(path, opt, "['optimizer']", fields)
        if opt["t"] < 0:
            _fail(path, f"header optimizer update count t must be >= 0; got {opt['t']}.")
        kwargs = {k: opt[k] for k in fields if k != "t"}
        try:
            optimizer = (Adam if opt["name"] == "Adam" else SGD)(**kwargs)
        except (TypeError, ValueError) as err:
            _fail(path, f"the header describes an invalid optimizer: {err}")
        sizes = (n, n if opt["name"] == "Adam" else 0)
    else:
        _fail(path, f"header optimizer must be null or {{'name': 'SGD' or 'Adam', ...}}; got {opt!r}.")
    m = _check_array(path, arrays, "opt_m", model.dtype, (sizes[0],))
    v = _check_array(path, arrays, "opt_v", model.dtype, (sizes[1],))
    if v.size and v.min() < 0:
        _fail(path, "array 'opt_v' (Adam's second moment) has negative entries.")
    history = {}
    for name in ("train_loss", "test_loss"):
        if arrays[name].ndim != 1:
            _fail(path, f"array {name!r} must be 1-D (one loss per epoch); got shape {arrays[name].shape}.")
        history[name] = _check_array(path, arrays, name, np.float64, arrays[name].shape)

    _, Trainer = _ENGINES[header["engine"]]
    try:
        trainer = Trainer(model, header["trainer"]["loss_func"])
    except (TypeError, ValueError) as err:
        _fail(path, f"the header describes an invalid trainer: {err}")
    trainer.train_loss = [float(x) for x in history["train_loss"]]
    trainer.test_loss = [float(x) for x in history["test_loss"]]
    if optimizer is not None:
        state = OptimizerState(optimizer, n, model.dtype)
        state.m[...] = m
        state.v[...] = v
        state.t = opt["t"]
        trainer.optimizer_state = state
    return trainer
