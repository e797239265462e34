"""Numba's runtime, initialised from machine code kept beside the kernels' cache.

Before the first compiled function of a process runs, Numba initialises its runtime
(``rtsys.initialize``): it registers the runtime's C functions with LLVM and compiles a
small LLVM module of its own (the reference counts' ``NRT_incref``/``NRT_decref`` and
their atomic operations), which every kernel's machine code links against. That compile
ran in every process: 22-34 ms of a first fit whose kernels all came from the cache
(docs/performance.md, "The first process, 2026-12-07"). ``initialize`` compiles the module
once per machine and keeps its object code in the kernels' cache folder, as Numba's cache
keeps a kernel's; later processes load it.

The file is named after everything the machine code depends on: the module's LLVM IR
(so another Numba, or other runtime options, make other IR and another file), LLVM's
version, and the target (triple, CPU name and features, as Numba's cache keys its
kernels). A file that cannot be read or loaded is compiled again and replaced; where the
folder is read-only the compile simply happens each time, as in Numba.
"""
import hashlib
import os
import pickle
import uuid

from llvmlite import binding as ll
from numba.core import config
from numba.core.compiler_lock import global_compiler_lock
from numba.core.runtime import _nrt_python, nrtdynmod, rtsys

PREFIX, SUFFIX = "numba-runtime-", ".nbo"  # the file's name in the cache folder: PREFIX, a digest, SUFFIX


def available():
    """Whether this Numba has the internals ``initialize`` uses; else ``rtsys.initialize``."""
    return (hasattr(nrtdynmod, "create_nrt_module") and hasattr(_nrt_python, "c_helpers")
            and hasattr(rtsys, "_init") and hasattr(type(rtsys), "library"))


@global_compiler_lock
def initialize(target_context, folder):
    """``rtsys.initialize(target_context)``, with the runtime's module loaded from
    ``folder`` when an earlier process compiled it there (else compiled, then saved)."""
    if rtsys._init:
        return
    if config.NRT_STATS:  # as rtsys.initialize does
        _nrt_python.memsys_enable_stats()
    for name, address in _nrt_python.c_helpers.items():  # what the module's code calls
        ll.add_symbol(name if name.startswith("_") else "NRT_" + name, address)
    ir_module, library = nrtdynmod.create_nrt_module(target_context)
    codegen = target_context.codegen()
    key = (str(ir_module), ll.llvm_version_info, codegen.magic_tuple())
    path = os.path.join(folder, PREFIX + hashlib.sha256(repr(key).encode()).hexdigest()[:20] + SUFFIX)
    loaded = _load(codegen, path, key)
    if loaded is None:
        library.enable_object_caching()  # so that its object code can be written out
        library.add_ir_module(ir_module)
        library.finalize()
        _save(library, path, key)
        loaded = library
    rtsys._library = loaded
    rtsys._init = True


def _load(codegen, path, key):
    """The runtime library saved at ``path`` for ``key``, or None."""
    try:
        with open(path, "rb") as f:
            saved_key, serialized = pickle.load(f)
    except (OSError, EOFError, ValueError, TypeError, pickle.UnpicklingError):
        return None
    if saved_key != key:  # a hash collision, or a file from elsewhere: compile instead
        return None
    try:
        return codegen.unserialize_library(serialized)
    except Exception:  # a damaged file: compiling again replaces it
        return None


def _save(library, path, key):
    """Write the compiled runtime library to ``path`` (atomically), if the folder allows."""
    temporary = f"{path}.tmp.{uuid.uuid4().hex[:16]}"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(temporary, "wb") as f:
            pickle.dump((key, library.serialize_using_object_code()), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)
    except OSError:
        try:
            os.unlink(temporary)
        except OSError:
            pass
