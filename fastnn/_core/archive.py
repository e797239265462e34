"""The container of fastnn's files: a checked .npz archive of numeric .npy members plus a
JSON header, written atomically, never unpickled.

This module knows the container, not what a file means: ``write`` stores a header dict
(adding the table of arrays and their SHA-256) and the arrays; ``read`` checks the zip,
its members and their sizes and hands the header's bytes to the caller's parser (the
format's rules live in ``fastnn.io``, which documents the file format); ``atomic_write``
also writes the ONNX exports. Errors in a file raise ``ModelFileError`` through ``fail``.
"""
import hashlib
import json
import math
import os
import secrets
import zipfile

import numpy as np
from numpy.lib import format as npy_format

from ..errors import ModelFileError

HEADER_LIMIT = 64 * 2**20  # bytes of JSON we agree to parse
NPY_HEADER_SLACK = 2**16  # an .npy member may exceed its data by this much (its own header)


def fail(path, what):
    raise ModelFileError(f"{os.fspath(path)}: {what}")


def _canonical(header):
    """The bytes the checksum covers for a header: sorted-key JSON without 'sha256'."""
    body = {k: v for k, v in header.items() if k != "sha256"}
    return json.dumps(body, sort_keys=True, allow_nan=False, separators=(",", ":")).encode()


def checksum(header, arrays):
    """SHA-256 (hex) of a header (without its 'sha256') and of every array's name, dtype,
    shape and bytes."""
    h = hashlib.sha256(_canonical(header))
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# -- writing --------------------------------------------------------------------------------
def write(path, header, arrays):
    """Atomically write ``arrays`` plus ``header`` (checksummed here) as an .npz at ``path``."""
    header = dict(header)
    header["arrays"] = {name: {"dtype": a.dtype.str, "shape": list(a.shape)} for name, a in arrays.items()}
    header["sha256"] = checksum(header, arrays)
    text = json.dumps(header, sort_keys=True, allow_nan=False, indent=1).encode()
    members = {"header": np.frombuffer(text, dtype=np.uint8), **arrays}

    def write_zip(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
            for name, a in members.items():
                _write_member(zf, name, a)

    atomic_write(path, write_zip)


def atomic_write(path, write):
    """Create or replace the file at ``path`` with what ``write(f)`` writes to the binary
    file ``f``, atomically: a temporary file in the same directory, flushed and fsynced,
    then renamed over ``path``. On any failure the temporary file is removed and a
    previous file at ``path`` is left as it was."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    while True:  # O_EXCL: never reuse someone else's file; mode 0o666 & ~umask like open()
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _write_member(zf, name, a):
    info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))  # fixed: same model, same bytes
    info.compress_type = zipfile.ZIP_STORED
    with zf.open(info, "w", force_zip64=a.nbytes > 2**31) as member:
        npy_format.write_array(member, np.ascontiguousarray(a), allow_pickle=False)


def _fsync_directory(directory):
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# -- reading --------------------------------------------------------------------------------
def read(path, parse_header):
    """(header dict, {name: ndarray}) from the zip at ``path``; raises ModelFileError.

    ``parse_header(path, raw)`` turns the 'header' member (an array) into the header dict,
    checked by the format's rules; its 'arrays' table ({name: {'dtype', 'shape'}}) says
    which members to expect and bounds their sizes before they are read.
    """
    with open(path, "rb") as f:  # a missing file is the caller's OSError, not a bad file
        start = f.read(4)
        f.seek(0)
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError,
                RuntimeError) as err:
            hint = ("it starts like a zip archive but its directory is missing or damaged: truncated or corrupted"
                    if start == b"PK\x03\x04" else "it is not a zip archive (.npz); not a fastnn file")
            fail(path, f"{hint} ({err}).")
        with zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            if len(names) != len(set(names)):
                fail(path, "the archive holds two members with the same name.")
            bad = [n for n in names if not n.endswith(".npy")]
            if bad:
                fail(path, f"unexpected member(s) {bad} in the archive; a fastnn file holds only .npy arrays.")
            sizes = {i.filename[:-4]: i.file_size for i in infos}
            if "header" not in sizes:
                fail(path, "no 'header' array: not a fastnn model file.")
            if sizes["header"] > HEADER_LIMIT + NPY_HEADER_SLACK:
                fail(path, f"the header is {sizes['header']} bytes; at most {HEADER_LIMIT} expected.")
            header = parse_header(path, _read_member(path, zf, "header"))
            declared = header["arrays"]
            missing = sorted(set(declared) - (set(sizes) - {"header"}))
            extra = sorted(set(sizes) - {"header"} - set(declared))
            if missing or extra:
                fail(path, "arrays do not match the header: "
                     + "; ".join(p for p in (missing and f"missing {missing}", extra and f"extra {extra}") if p) + ".")
            arrays = {}
            for name, spec in declared.items():
                nbytes = math.prod(spec["shape"]) * np.dtype(spec["dtype"]).itemsize
                if sizes[name] > nbytes + NPY_HEADER_SLACK:
                    fail(path, f"array {name!r} takes {sizes[name]} bytes but the header declares {nbytes}.")
                arrays[name] = _read_member(path, zf, name)
    return header, arrays


def _read_member(path, zf, name):
    try:
        with zf.open(name + ".npy") as member:
            a = npy_format.read_array(member, allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" in str(err) or "Object arrays" in str(err):
            fail(path, f"array {name!r} is an object array (a pickle); fastnn files hold numbers only and "
                 "never unpickle anything.")
        fail(path, f"array {name!r} is not a valid .npy array (truncated or corrupted?): {err}")
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as err:
        fail(path, f"array {name!r} cannot be read; the file is corrupted ({err}).")
    if a.dtype.hasobject:
        fail(path, f"array {name!r} holds Python objects; fastnn files hold numbers only.")
    return a
