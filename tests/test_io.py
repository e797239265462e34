"""Save/load and checkpoints: round trips, every corruption raises a clear error, atomic
writes, and resume in a new process equal to an uninterrupted run, bitwise."""
import copy
import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import io as fio
from fastnn import reference
from fastnn._core import archive


def make_model(hidden=(5,), dtype="float64", loss="categorical_crossentropy", engine=fastnn, **kw):
    kw.setdefault("seed", 3)
    return engine.NeuralNetwork(4, list(hidden), 3, loss, dtype=dtype, **kw)


def data(n=37, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 4)
    return X, rng.randint(0, 3, n)


# -- helpers that take a valid file apart and put (damaged) pieces back --------------------------
def read_members(path):
    with zipfile.ZipFile(path) as zf:
        members = {}
        for name in zf.namelist():
            with zf.open(name) as f:
                members[name[:-4]] = np.lib.format.read_array(f, allow_pickle=False)
    header = json.loads(members.pop("header").tobytes())
    return header, members


def write_members(path, header, arrays, resign=True, raw=None):
    """Write ``header`` + ``arrays`` as a zip of .npy members; ``resign`` recomputes the
    SHA-256 (so that the loader's later checks are reached); ``raw`` adds raw members."""
    header = dict(header)
    if resign:
        header["sha256"] = archive.checksum(header, arrays)
    text = json.dumps(header).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, a in {"header": np.frombuffer(text, np.uint8), **arrays}.items():
            with zf.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, a, allow_pickle=True)
        for name, blob in (raw or {}).items():
            zf.writestr(name, blob)


@pytest.fixture
def saved(tmp_path):
    model = make_model(hidden=(5, 4))
    path = tmp_path / "model.npz"
    model.save(path)
    return model, path


# -- round trips ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hidden", [(6,), (5, 4), (3, 4, 5), (2, 3, 4, 5)])
def test_round_trip_predictions_bitwise(tmp_path, dtype, hidden):
    model = make_model(hidden, dtype, activation="tanh", init="glorot")
    X, y = data()
    fastnn.Trainer(model, "categorical_crossentropy").train(X, y, None, None, 2, 0.05, batch_size=8)
    model.save(tmp_path / "m.npz")
    loaded = fastnn.load(tmp_path / "m.npz")
    assert type(loaded) is fastnn.NeuralNetwork
    assert loaded.params.dtype == np.dtype(dtype) and np.array_equal(loaded.params, model.params)
    assert np.array_equal(loaded.forward(X), model.forward(X))  # bitwise: array_equal, no tolerance
    assert np.array_equal(loaded.predict(X), model.predict(X))
    for attr in ("layer_sizes", "activation", "output_activation", "alpha", "loss_func", "init", "dtype", "seed"):
        assert getattr(loaded, attr) == getattr(model, attr), attr
    assert loaded.metadata == {}
    assert all(np.shares_memory(W, loaded.params) for W in loaded.weights)  # views into the flat buffer


@pytest.mark.parametrize("loss, kw", [("mse", {"output_activation": "identity", "activation": "leaky_relu", "alpha": 0.2}),
                                      ("log_loss", {"activation": "elu", "init": "he", "seed": None})])
def test_round_trip_hyperparameters_and_reference_engine(tmp_path, loss, kw):
    model = make_model((4,), loss=loss, engine=reference, **kw)
    fastnn.save_model(model, tmp_path / "r.npz")
    loaded = fastnn.load_model(tmp_path / "r.npz")
    assert type(loaded) is reference.NeuralNetwork  # the engine is stored, not guessed
    assert (loaded.loss_func, loaded.output_activation, loaded.activation, loaded.alpha, loaded.init, loaded.seed) == (
        model.loss_func, model.output_activation, model.activation, model.alpha, model.init, model.seed)
    X, _ = data()
    assert np.array_equal(loaded.forward(X), model.forward(X))


def test_metadata_round_trip_and_defaults(tmp_path):
    model = make_model()
    meta = {"features": ["a", "b", "c", "d"], "scaler": {"mean": np.arange(4.0), "scale": np.float32(2.5)},
            "classes": [0, 1, 2], "nested": {"x": [1, {"y": None, "z": True}]}}
    fastnn.save_model(model, tmp_path / "m.npz", metadata=meta)
    loaded = fastnn.load(tmp_path / "m.npz")
    assert loaded.metadata == {"features": ["a", "b", "c", "d"], "scaler": {"mean": [0.0, 1.0, 2.0, 3.0], "scale": 2.5},
                               "classes": [0, 1, 2], "nested": {"x": [1, {"y": None, "z": True}]}}
    loaded.save(tmp_path / "again.npz")  # a loaded model keeps its metadata when saved again
    assert fastnn.load(tmp_path / "again.npz").metadata == loaded.metadata
    with pytest.raises(TypeError, match="JSON-serialisable"):
        model.save(tmp_path / "bad.npz", metadata={"f": object()})
    with pytest.raises(ValueError, match="NaN"):
        model.save(tmp_path / "bad.npz", metadata={"f": float("nan")})
    with pytest.raises(TypeError, match="dict"):
        model.save(tmp_path / "bad.npz", metadata=["not", "a", "dict"])
    assert not (tmp_path / "bad.npz").exists()


def test_same_model_same_bytes_and_global_rng_untouched(tmp_path):
    model = make_model(seed=None)
    before = np.random.get_state()[1].copy(), np.random.get_state()[2]
    model.save(tmp_path / "a.npz")
    model.save(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()  # no timestamps inside
    fastnn.load(tmp_path / "a.npz")
    after = np.random.get_state()
    assert np.array_equal(before[0], after[1]) and before[1] == after[2]  # load never touches the global RNG


def test_saves_exactly_at_path_with_normal_permissions(tmp_path):
    model = make_model()
    path = tmp_path / "model.bin"
    fastnn.save(model, str(path))
    assert path.exists() and not (tmp_path / "model.bin.npz").exists()
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "missing.npz")
    with pytest.raises(FileNotFoundError):
        model.save(tmp_path / "no_such_dir" / "m.npz")


# -- every corruption raises ModelFileError with a message saying what is wrong -------------------
def test_model_file_error_is_a_value_error():
    assert issubclass(fastnn.ModelFileError, ValueError)


@pytest.mark.parametrize("keep", [0, 1, 10, 100, 0.5, -22, -1])
def test_truncated(saved, keep):
    _, path = saved
    blob = path.read_bytes()
    n = int(len(blob) * keep) if isinstance(keep, float) else keep if keep >= 0 else len(blob) + keep
    path.write_bytes(blob[:n])
    with pytest.raises(fastnn.ModelFileError, match="truncated|not a zip"):
        fastnn.load(path)


def test_not_a_zip(tmp_path):
    for blob in (b"", b"hello world", pickle.dumps({"params": [1.0]}), b"\x93NUMPY" + b"\0" * 100):
        (tmp_path / "x.npz").write_bytes(blob)
        with pytest.raises(fastnn.ModelFileError, match="not a zip"):
            fastnn.load(tmp_path / "x.npz")


def _payload_ranges(path):
    """Byte ranges of each member's data inside the zip (stored, so these are the .npy bytes)."""
    with zipfile.ZipFile(path) as zf:
        out = []
        for info in zf.infolist():
            with open(path, "rb") as f:
                f.seek(info.header_offset + 26)
                name_len, extra_len = np.frombuffer(f.read(4), "<u2")
            start = info.header_offset + 30 + int(name_len) + int(extra_len)
            out.append((info.filename, start, start + info.compress_size))
    return out


def test_bit_flips_are_detected(saved):
    model, path = saved
    blob = bytearray(path.read_bytes())
    positions = set(range(0, len(blob), 5))
    for _, start, stop in _payload_ranges(path):  # every byte of the header JSON and of the weights
        positions |= set(range(start, stop)) if stop - start < 2000 else set(range(start, stop, 17))
    undetected = []
    for pos in sorted(positions):
        bit = pos % 8
        damaged = bytearray(blob)
        damaged[pos] ^= 1 << bit
        path.write_bytes(damaged)
        try:
            loaded = fastnn.load(path)
        except fastnn.ModelFileError:
            continue
        # A flip in a byte the zip format does not use for the content (a timestamp, a
        # "version made by" field) may load: then the model must be exactly the original.
        if not (np.array_equal(loaded.params, model.params) and loaded.layer_sizes == model.layer_sizes):
            undetected.append((pos, bit))
    assert not undetected


def test_flip_in_payload_message(saved):
    _, path = saved
    name, start, stop = [r for r in _payload_ranges(path) if r[0] == "params.npy"][0]
    blob = bytearray(path.read_bytes())
    blob[stop - 3] ^= 0x10
    path.write_bytes(blob)
    with pytest.raises(fastnn.ModelFileError, match="params.*corrupted|CRC|checksum"):
        fastnn.load(path)


def test_checksum_catches_what_zip_crc_cannot(saved):
    # Rewritten with valid CRCs but a weight changed and the old SHA-256: only the checksum sees it.
    _, path = saved
    header, arrays = read_members(path)
    arrays["params"] = arrays["params"].copy()
    arrays["params"][0] += 1e-12
    write_members(path, header, arrays, resign=False)
    with pytest.raises(fastnn.ModelFileError, match="SHA-256 checksum mismatch"):
        fastnn.load(path)
    header["model"]["activation"] = "relu"  # the header is covered by the checksum too
    arrays["params"][0] -= 1e-12
    write_members(path, header, arrays, resign=False)
    with pytest.raises(fastnn.ModelFileError, match="SHA-256 checksum mismatch"):
        fastnn.load(path)


class Exploit:
    """Unpickling this would create the file ``marker``: the test checks that it never exists."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_object_array_is_never_unpickled(saved, tmp_path):
    _, path = saved
    header, arrays = read_members(path)
    marker = tmp_path / "pwned"
    evil = np.array([Exploit(str(marker)), 1.0], dtype=object)
    write_members(path, header, {**arrays, "params": evil})
    with pytest.raises(fastnn.ModelFileError, match="object array"):
        fastnn.load(path)
    assert not marker.exists()
    # A raw pickle stream where an .npy member should be, and an extra pickle member.
    write_members(path, header, {"rng_keys": arrays["rng_keys"]}, raw={"params.npy": pickle.dumps(Exploit(str(marker)))})
    with pytest.raises(fastnn.ModelFileError, match="params.*not a valid .npy"):
        fastnn.load(path)
    write_members(path, header, arrays, raw={"evil.pkl": pickle.dumps(Exploit(str(marker)))})
    with pytest.raises(fastnn.ModelFileError, match="unexpected member"):
        fastnn.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("version, match", [(2, "unsupported format version 2"), (0, "format_version"),
                                            ("1", "format_version"), (None, "format_version")])
def test_unknown_format_version(saved, version, match):
    _, path = saved
    header, arrays = read_members(path)
    header["format_version"] = version
    write_members(path, header, arrays)
    with pytest.raises(fastnn.ModelFileError, match=match):
        fastnn.load(path)


def test_missing_and_extra_arrays(saved):
    _, path = saved
    header, arrays = read_members(path)
    write_members(path, header, {"params": arrays["params"]})
    with pytest.raises(fastnn.ModelFileError, match=r"missing \['rng_keys'\]"):
        fastnn.load(path)
    write_members(path, header, {**arrays, "bonus": np.zeros(3)})
    with pytest.raises(fastnn.ModelFileError, match=r"extra \['bonus'\]"):
        fastnn.load(path)
    header["arrays"]["bonus"] = {"dtype": "<f8", "shape": [3]}  # declared in the header too
    write_members(path, header, {**arrays, "bonus": np.zeros(3)})
    with pytest.raises(fastnn.ModelFileError, match="bonus"):
        fastnn.load(path)


def test_shape_and_dtype_inconsistent_with_header(saved):
    model, path = saved
    header, arrays = read_members(path)
    p = arrays["params"]
    # The header's own array table disagrees with the array.
    write_members(path, header, {**arrays, "params": p[:-1]})
    with pytest.raises(fastnn.ModelFileError, match="params.*header declares"):
        fastnn.load(path)
    # Table and array agree, but not with the architecture.
    archive.write(path, {k: v for k, v in header.items() if k not in ("arrays", "sha256")}, {**arrays, "params": p[:-1]})
    with pytest.raises(fastnn.ModelFileError, match="shape.*architecture needs"):
        fastnn.load(path)
    archive.write(path, {k: v for k, v in header.items() if k not in ("arrays", "sha256")},
                  {**arrays, "params": p.astype(np.float32)})
    with pytest.raises(fastnn.ModelFileError, match="dtype <f4; expected <f8"):
        fastnn.load(path)
    archive.write(path, {k: v for k, v in header.items() if k not in ("arrays", "sha256")},
                  {**arrays, "params": p.reshape(1, -1)})
    with pytest.raises(fastnn.ModelFileError, match="shape"):
        fastnn.load(path)
    header["model"]["layer_sizes"] = [4, 5, 4, 4]  # sizes that do not match the weights
    archive.write(path, {k: v for k, v in header.items() if k not in ("arrays", "sha256")}, arrays)
    with pytest.raises(fastnn.ModelFileError, match="shape"):
        fastnn.load(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights(saved, bad):
    _, path = saved
    header, arrays = read_members(path)
    arrays["params"] = arrays["params"].copy()
    arrays["params"][5] = bad
    write_members(path, header, arrays)
    with pytest.raises(fastnn.ModelFileError, match="NaN or infinity.*index 5"):
        fastnn.load(path)


def _header_variants(header):
    def edit(fn):
        h = json.loads(json.dumps(header))
        fn(h)
        return h

    return {
        "no model": (edit(lambda h: h.pop("model")), "has no 'model'"),
        "no format": (edit(lambda h: h.pop("format")), "format"),
        "other format": (edit(lambda h: h.update(format="pytorch")), "format"),
        "engine": (edit(lambda h: h.update(engine="os.system")), "engine"),
        "activation": (edit(lambda h: h["model"].update(activation="__import__('os')")), "invalid model.*activation"),
        "alpha": (edit(lambda h: h["model"].update(alpha=-1)), "invalid model.*alpha"),
        "alpha type": (edit(lambda h: h["model"].update(alpha="0.1")), "alpha"),
        "dtype": (edit(lambda h: h["model"].update(dtype="object")), "dtype"),
        "sizes": (edit(lambda h: h["model"].update(layer_sizes=[4, 0, 3])), "layer_sizes"),
        "sizes bool": (edit(lambda h: h["model"].update(layer_sizes=[4, True, 4, 3])), "layer_sizes"),
        "hidden": (edit(lambda h: h["model"].update(hidden_size=[7])), "hidden_size"),
        "seed": (edit(lambda h: h["model"].update(seed=-1)), "seed"),
        "no seed": (edit(lambda h: h["model"].pop("seed")), "seed"),
        "rng": (edit(lambda h: h["rng"].update(pos=10**6)), "rng"),
        "metadata": (edit(lambda h: h.update(metadata=[1])), "metadata"),
        "array table": (edit(lambda h: h["arrays"]["params"].update(dtype="O")), "params"),
    }


def test_bad_header_values(saved):
    _, path = saved
    header, arrays = read_members(path)
    for name, (h, match) in _header_variants(header).items():
        write_members(path, h, arrays)
        with pytest.raises(fastnn.ModelFileError, match=match):
            fastnn.load(path)
        # ... and without a valid checksum the result is an error too.
        write_members(path, h, arrays, resign=False)
        with pytest.raises(fastnn.ModelFileError):
            fastnn.load(path)


@pytest.mark.parametrize("text, match", [(b"{not json", "not valid UTF-8 JSON"), (b"\xff\xfe", "not valid UTF-8"),
                                         (b"[1, 2]", "JSON object"), (b'{"format_version": NaN}', "JSON"),
                                         (b"[" * 100000 + b"]" * 100000, "JSON")])
def test_header_not_json(saved, text, match):
    _, path = saved
    _, arrays = read_members(path)
    with zipfile.ZipFile(path, "w") as zf:
        for name, a in {"header": np.frombuffer(text, np.uint8), **arrays}.items():
            with zf.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, a)
    with pytest.raises(fastnn.ModelFileError, match=match):
        fastnn.load(path)


def test_header_wrong_array_type(saved):
    _, path = saved
    header, arrays = read_members(path)
    with zipfile.ZipFile(path, "w") as zf:
        for name, a in {"header": np.frombuffer(json.dumps(header).encode(), np.uint8).astype(np.int64), **arrays}.items():
            with zf.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, a)
    with pytest.raises(fastnn.ModelFileError, match="uint8"):
        fastnn.load(path)
    write_members(path, header, {k: v for k, v in arrays.items()}, raw={})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("params.npy", b"")
    with pytest.raises(fastnn.ModelFileError, match="no 'header'"):
        fastnn.load(path)


def test_declared_size_is_enforced_before_reading(saved):
    # An array member far larger than its header says is refused before it is read.
    _, path = saved
    header, arrays = read_members(path)
    header["arrays"]["params"]["shape"] = [1]
    write_members(path, header, {**arrays, "params": np.zeros(100_000)})
    with pytest.raises(fastnn.ModelFileError, match="params.*800128 bytes but the header declares 8"):
        fastnn.load(path)


# -- atomic writes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_save_keeps_previous_file(saved, monkeypatch, exc):
    model, path = saved
    before = path.read_bytes()
    calls = []
    real = archive._write_member

    def failing(zf, name, a):
        calls.append(name)
        if name == "params":  # after the header has been written: a half-written archive
            real(zf, name, a[: a.size // 2])
            raise exc
        real(zf, name, a)

    monkeypatch.setattr(archive, "_write_member", failing)
    other = make_model(hidden=(5, 4), seed=99)
    with pytest.raises(type(exc)):
        other.save(path)
    assert calls == ["header", "params"]
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == [path.name]  # no temporary file left behind
    assert np.array_equal(fastnn.load(path).params, model.params)


def test_failed_replace_and_fsync_keep_previous_file(saved, monkeypatch):
    model, path = saved
    before = path.read_bytes()
    for target in ("replace", "fsync"):
        with monkeypatch.context() as mp:
            def boom(*args, **kwargs):
                raise OSError(f"{target} failed")
            mp.setattr(archive.os, target, boom)
            with pytest.raises(OSError, match=target):
                make_model(seed=7).save(path)
        assert path.read_bytes() == before
        assert sorted(os.listdir(path.parent)) == [path.name]


def test_atomic_write_is_fastnn_io_s_too(tmp_path):
    # The container lives in fastnn._core.archive; fastnn.io keeps its public names.
    assert fio.atomic_write is archive.atomic_write
    assert (fio.HEADER_LIMIT, fio.NPY_HEADER_SLACK) == (archive.HEADER_LIMIT, archive.NPY_HEADER_SLACK)
    path = tmp_path / "blob"
    fio.atomic_write(path, lambda f: f.write(b"bytes"))
    assert path.read_bytes() == b"bytes"
    assert sorted(os.listdir(tmp_path)) == ["blob"]


def test_save_fsyncs_file_and_directory(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(archive.os, "fsync", lambda fd: (synced.append(os.path.isdir(f"/proc/self/fd/{fd}")), real(fd)))
    make_model().save(tmp_path / "m.npz")
    assert synced == [False, True]  # the file's data, then the directory entry of the rename


# -- checkpoints and exact resume ----------------------------------------------------------------------
def train_run(trainer, epochs, X, y, optimizer):
    trainer.train(X, y, X[:9], y[:9], epochs, 0.01, batch_size=5, optimizer=optimizer)


def test_checkpoint_round_trip_restores_everything(tmp_path):
    X, y = data()
    model = make_model((6, 5), activation="relu")
    trainer = fastnn.Trainer(model, "categorical_crossentropy")
    train_run(trainer, 3, X, y, fastnn.Adam(beta1=0.8, epsilon=1e-7))
    trainer.save_checkpoint(tmp_path / "c.npz")
    back = fastnn.Trainer.load_checkpoint(tmp_path / "c.npz")
    assert type(back) is fastnn.Trainer and type(back.model) is fastnn.NeuralNetwork
    assert back.train_loss == trainer.train_loss and back.test_loss == trainer.test_loss
    assert back.loss_func == trainer.loss_func
    s, b = trainer.optimizer_state, back.optimizer_state
    assert b.optimizer == s.optimizer and b.t == s.t == 24
    assert np.array_equal(b.m, s.m) and np.array_equal(b.v, s.v) and np.array_equal(back.model.params, model.params)
    for x, z in zip(back.model._rng.get_state(), model._rng.get_state()):
        assert np.array_equal(x, z)
    assert np.array_equal(fastnn.load(tmp_path / "c.npz").params, model.params)  # the model of a checkpoint
    with pytest.raises(fastnn.ModelFileError, match="not a checkpoint"):
        model.save(tmp_path / "m.npz")
        fastnn.load_checkpoint(tmp_path / "m.npz")


def test_checkpoint_before_training_and_reference_engine(tmp_path):
    model = make_model(engine=reference)
    trainer = reference.Trainer(model, "mse")
    fastnn.save_checkpoint(trainer, tmp_path / "c.npz")
    back = fastnn.load_checkpoint(tmp_path / "c.npz")
    assert type(back) is reference.Trainer and back.optimizer_state is None and back.train_loss == []
    assert back.loss_func == "mse"
    X, y = data()
    back.train(X, y, None, None, 1, 0.1)
    trainer.train(X, y, None, None, 1, 0.1)
    assert np.array_equal(back.model.params, model.params)


def test_checkpoint_corruptions(tmp_path):
    X, y = data()
    trainer = fastnn.Trainer(make_model(), "categorical_crossentropy")
    train_run(trainer, 1, X, y, "momentum")
    path = tmp_path / "c.npz"
    trainer.save_checkpoint(path)
    header, arrays = read_members(path)
    base = {k: v for k, v in header.items() if k not in ("arrays", "sha256")}

    def expect(match, h=base, **changes):
        archive.write(path, h, {**arrays, **changes})
        with pytest.raises(fastnn.ModelFileError, match=match):
            fastnn.load_checkpoint(path)

    expect("opt_m.*shape", opt_m=arrays["opt_m"][:-1])
    expect("opt_v.*shape", opt_v=arrays["params"])  # momentum has no second moment
    expect("opt_m.*NaN", opt_m=np.full_like(arrays["opt_m"], np.nan))
    expect("train_loss.*1-D", train_loss=np.zeros((2, 2)))
    expect("train_loss.*NaN", train_loss=np.array([1.0, np.inf]))
    expect("test_loss.*dtype", test_loss=arrays["test_loss"].astype(np.float32))
    expect("invalid optimizer", h={**base, "optimizer": {**base["optimizer"], "momentum": 1.5}})
    expect("optimizer", h={**base, "optimizer": {"name": "pickle"}})
    expect("optimizer.*'t'", h={**base, "optimizer": {**base["optimizer"], "t": "3"}})
    expect("invalid trainer", h={**base, "trainer": {"loss_func": "hinge"}})
    adam = {"name": "Adam", "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "t": 1}
    expect("negative", h={**base, "optimizer": adam}, opt_v=-np.ones_like(arrays["opt_m"]))
    # A checkpoint's arrays are part of the model file contract too: dropping one is an error.
    archive.write(path, base, {k: v for k, v in arrays.items() if k != "opt_v"})
    with pytest.raises(fastnn.ModelFileError, match="opt_v"):
        fastnn.load(path)


RESUME_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import fastnn
    from fastnn import reference
    X, y = np.load(sys.argv[1])["X"], np.load(sys.argv[1])["y"]
    for ckpt, out, epochs, optimizer in zip(*[iter(sys.argv[2:])] * 4):
        trainer = fastnn.load_checkpoint(ckpt)
        optimizer = {"adam": "adam", "nesterov": "nesterov", "adam2": fastnn.Adam(beta2=0.99)}[optimizer]
        trainer.train(X, y, X[:9], y[:9], int(epochs), 0.01, batch_size=5, optimizer=optimizer)
        trainer.save_checkpoint(out)
""")

RESUME_CASES = [  # engine, dtype, optimizer, hidden, k, n
    (fastnn, "float64", "adam", (6, 5), 3, 7),
    (fastnn, "float32", "nesterov", (6,), 2, 5),
    (reference, "float64", "adam2", (4, 4, 4), 1, 4),
]


def test_resume_in_new_process_is_bitwise_equal(tmp_path):
    X, y = data(41)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    argv, expected = [], []
    for i, (engine, dtype, opt, hidden, k, n) in enumerate(RESUME_CASES):
        optimizer = {"adam": "adam", "nesterov": "nesterov", "adam2": fastnn.Adam(beta2=0.99)}[opt]
        full = engine.Trainer(make_model(hidden, dtype, engine=engine, activation="tanh", seed=11 + i),
                              "categorical_crossentropy")
        train_run(full, n, X, y, optimizer)
        expected.append(full)
        part = engine.Trainer(make_model(hidden, dtype, engine=engine, activation="tanh", seed=11 + i),
                              "categorical_crossentropy")
        train_run(part, k, X, y, optimizer)
        part.save_checkpoint(tmp_path / f"k{i}.npz")
        argv += [str(tmp_path / f"k{i}.npz"), str(tmp_path / f"n{i}.npz"), str(n - k), opt]
    subprocess.run([sys.executable, "-c", RESUME_SCRIPT, str(tmp_path / "data.npz"), *argv], check=True, timeout=300)
    for i, full in enumerate(expected):
        resumed = fastnn.load_checkpoint(tmp_path / f"n{i}.npz")
        assert np.array_equal(resumed.model.params, full.model.params), RESUME_CASES[i]  # bitwise
        assert resumed.train_loss == full.train_loss and resumed.test_loss == full.test_loss
        assert np.array_equal(resumed.optimizer_state.m, full.optimizer_state.m)
        assert resumed.optimizer_state.t == full.optimizer_state.t


def test_resume_with_seed_none_uses_saved_global_state(tmp_path):
    # seed=None models shuffle from NumPy's global state; the checkpoint stores it, and the
    # loaded model continues from it privately, whatever the global state does meanwhile.
    X, y = data()
    np.random.seed(123)
    full = fastnn.Trainer(make_model(seed=None), "categorical_crossentropy")
    train_run(full, 5, X, y, "adam")
    np.random.seed(123)
    part = fastnn.Trainer(make_model(seed=None), "categorical_crossentropy")
    train_run(part, 2, X, y, "adam")
    part.save_checkpoint(tmp_path / "c.npz")
    np.random.rand(17)  # other code draws from the global state in between
    state = np.random.get_state()
    resumed = fastnn.load_checkpoint(tmp_path / "c.npz")
    assert resumed.model.seed is None
    train_run(resumed, 3, X, y, "adam")
    assert np.array_equal(resumed.model.params, full.model.params)
    assert np.array_equal(np.random.get_state()[1], state[1])  # the global state was left alone


@pytest.mark.parametrize("seed", [5, None])
def test_dropout_resumes_exactly_from_a_checkpoint(tmp_path, seed):
    # The masks come from a counter-based stream (key, counter) on the model: a checkpoint
    # stores both, so the resumed run draws the masks the uninterrupted one drew. (Before,
    # the counter started again at 0: other masks, other weights.) seed=None draws the key
    # from the shuffling RNG at the first training with dropout.
    X, y = data()

    def trainer():
        np.random.seed(7)
        return fastnn.Trainer(make_model((6, 5), activation="relu", seed=seed, dropout=(0.3, 0.1)),
                              "categorical_crossentropy")

    full = trainer()
    train_run(full, 4, X, y, "adam")
    part = trainer()
    train_run(part, 2, X, y, "adam")
    part.save_checkpoint(tmp_path / "c.npz")
    resumed = fastnn.load_checkpoint(tmp_path / "c.npz")
    assert resumed.model.dropout == (0.3, 0.1) and resumed.model._dropout_stream == part.model._dropout_stream
    train_run(resumed, 2, X, y, "adam")
    assert np.array_equal(resumed.model.params, full.model.params)
    assert resumed.train_loss == full.train_loss and resumed.model._dropout_stream == full.model._dropout_stream


def test_model_file_keeps_dropout_and_reads_files_written_before_it(tmp_path):
    model = make_model((6, 5), activation="relu", dropout=(0.25, 0.0))
    X, y = data()
    fastnn.Trainer(model, "categorical_crossentropy").train(X, y, None, None, 1, 0.01, batch_size=8)
    model.save(tmp_path / "m.npz")
    loaded = fastnn.load(tmp_path / "m.npz")
    assert loaded.dropout == (0.25, 0.0) and loaded._dropout_stream == model._dropout_stream
    assert model._dropout_stream[1] > 0  # masks were drawn
    # A file from before these two entries: no dropout, and a new stream at the first training.
    header, arrays = read_members(tmp_path / "m.npz")
    del header["dropout_stream"], header["model"]["dropout"]
    write_members(tmp_path / "old.npz", {k: v for k, v in header.items() if k != "sha256"}, arrays)
    old = fastnn.load(tmp_path / "old.npz")
    assert old.dropout == (0.0, 0.0) and old._dropout_stream is None
    assert np.array_equal(old.params, model.params)


@pytest.mark.parametrize("stream, match", [
    ([1, 2], "dropout_stream must be null or"),
    ({"key": 1}, "dropout_stream.*no 'counter'"),
    ({"key": "1", "counter": 0}, "'key' must be int"),
    ({"key": -1, "counter": 0}, "dropout_stream out of range"),
    ({"key": 2**64, "counter": 0}, "dropout_stream out of range"),
    ({"key": 1, "counter": -3}, "dropout_stream out of range"),
])
def test_corrupt_dropout_stream_is_refused(tmp_path, stream, match):
    make_model().save(tmp_path / "m.npz")
    header, arrays = read_members(tmp_path / "m.npz")
    write_members(tmp_path / "bad.npz", {**header, "dropout_stream": stream}, arrays)
    with pytest.raises(fastnn.ModelFileError, match=match):
        fastnn.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("rates", [[1.5], [0.1, 0.2, 0.3], "0.1"])
def test_invalid_dropout_in_header_is_refused(tmp_path, rates):
    make_model().save(tmp_path / "m.npz")
    header, arrays = read_members(tmp_path / "m.npz")
    write_members(tmp_path / "bad.npz", {**header, "model": {**header["model"], "dropout": rates}}, arrays)
    with pytest.raises(fastnn.ModelFileError, match="invalid model.*dropout"):
        fastnn.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("seed", [3, None])
@pytest.mark.parametrize("copy_model", [lambda m: pickle.loads(pickle.dumps(m)), copy.deepcopy],
                         ids=["pickle", "deepcopy"])
def test_a_copied_network_trains_as_the_original(copy_model, seed):
    # weights and biases must come back as views of params (they were separate arrays,
    # left stale by training), and an unseeded network must copy at all (its generator is
    # NumPy's global one).
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    original = fastnn.NeuralNetwork(4, [5], 3, "categorical_crossentropy", activation="relu", seed=seed)
    twin = copy_model(original)
    assert twin.params.tobytes() == original.params.tobytes() and twin.params is not original.params
    for model in (original, twin):
        fastnn.Trainer(model, "categorical_crossentropy").train(X, y, None, None, 3, 0.1, batch_size=8,
                                                                shuffle=False, optimizer="adam")
    assert twin.params.tobytes() == original.params.tobytes()
    for W, b, W_copy, b_copy in zip(original.weights, original.biases, twin.weights, twin.biases):
        assert np.shares_memory(W_copy, twin.params) and np.shares_memory(b_copy, twin.params)
        assert np.array_equal(W_copy, W) and np.array_equal(b_copy, b)
    assert (twin._rng is np.random) == (seed is None)
