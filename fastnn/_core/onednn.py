"""oneDNN's library (PyPI's ``onednn``, the optional extra ``fastnn[bf16]``): where it is,
loading it, and holding its threads to fastnn's budget. Used by the bfloat16 products
(``bf16``) and by wide float32 steps where oneDNN measured faster (``products``).

oneDNN's wheel runs its threads on TBB; ``threads_limited`` holds TBB to fastnn's thread
budget (``fastnn.set_num_threads``) around each call, through TBB's ``global_control``.
"""
import contextlib
import ctypes
import os
import re

from . import threads
from ..errors import BFloat16Unavailable

EXTRA = "bf16"  # pip install 'fastnn[bf16]'
_tbb = None


def library_path():
    """Path of libdnnl from the installed ``onednn`` distribution, or None."""
    from importlib import metadata

    try:
        files = metadata.distribution("onednn").files or []
    except metadata.PackageNotFoundError:
        return None
    libs = [f for f in files if f.name.startswith("libdnnl.so")]
    return os.path.normpath(min(libs, key=lambda f: len(f.name)).locate()) if libs else None


def load(path, depth=0):
    """Load the shared library ``path`` for the whole process, first loading those of its
    dependencies that sit next to it (the wheels set no RPATH): each failure names one.
    Raises BFloat16Unavailable when a dependency is not there (oneDNN installed without
    its dependencies, e.g. ``pip install --no-deps onednn``)."""
    import llvmlite.binding as llb

    for _ in range(32):
        try:
            llb.load_library_permanently(path)
            return
        except RuntimeError as err:
            missing = re.match(r"\s*([^:\s]+): cannot open shared object", str(err))
            if missing is None or depth > 8:
                raise
            beside = os.path.join(os.path.dirname(os.path.realpath(path)), os.path.basename(missing.group(1)))
            if not os.path.exists(beside):
                raise BFloat16Unavailable(
                    f"oneDNN's {os.path.basename(path)} needs "
                    f"{os.path.basename(beside)}, which is not installed (looked in {os.path.dirname(beside)}). "
                    f"Install oneDNN with its dependencies: pip install 'fastnn[{EXTRA}]'.") from None
            load(beside, depth + 1)


class _GlobalControl(ctypes.Structure):
    # oneTBB's tbb::detail::d1::global_control, whose layout is its binary interface.
    _fields_ = [("value", ctypes.c_size_t), ("reserved", ctypes.c_size_t), ("param", ctypes.c_int)]


def _tbb_functions():
    """(create, destroy) of TBB's global_control, from the libtbb oneDNN loaded."""
    global _tbb
    if _tbb is None:
        lib = ctypes.CDLL("libtbb.so.12", mode=ctypes.RTLD_GLOBAL)
        create = lib["_ZN3tbb6detail2r16createERNS0_2d114global_controlE"]
        destroy = lib["_ZN3tbb6detail2r17destroyERNS0_2d114global_controlE"]
        for f in (create, destroy):
            f.argtypes, f.restype = [ctypes.POINTER(_GlobalControl)], None
        _tbb = (create, destroy)
    return _tbb


@contextlib.contextmanager
def threads_limited():
    """At most ``threads.budget()`` TBB threads (oneDNN's) inside the block."""
    create, destroy = _tbb_functions()
    control = _GlobalControl(threads.budget(), 0, 0)  # 0: max_allowed_parallelism
    create(ctypes.byref(control))
    try:
        yield
    finally:
        destroy(ctypes.byref(control))
