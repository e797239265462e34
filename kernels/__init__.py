"""Numba kernels of fastnn, installed as ``fastnn.kernels``.

Kernels import only numpy and numba and know nothing of the public API: they trust
their inputs (the callers in ``fastnn`` validate), allocate nothing in the hot path
and write into buffers the caller owns. Layers are described by an integer array of
sizes, so one compilation per dtype serves every architecture.
"""
import hashlib
from pathlib import Path


def _package_digest() -> str:
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _cache_dir():
    """The folder numba caches this package's kernels in (every kernel file shares it),
    or None when caching is off (e.g. NUMBA_DISABLE_JIT)."""
    from .epoch import fit_epoch

    try:
        return Path(fit_epoch._cache.cache_path)
    except AttributeError:
        return None


def _drop_stale_cache() -> None:
    """Key the whole package's Numba cache on one digest of its sources.

    Numba checks a cached function against its own file only, but our kernels inline
    functions from other files: after an edit to activations.py, a cached
    network.forward_layers would go on running the old activation. So when any
    kernel source changes, every cache file of this package is dropped once.
    """
    cache_dir = _cache_dir()
    if cache_dir is None:
        return
    stamp = cache_dir / "fastnn-kernels.sha256"
    digest = _package_digest()
    try:
        if stamp.is_file() and stamp.read_text() == digest:
            return
        for path in cache_dir.glob("*.nb[ic]"):  # this directory holds only our kernels' files
            path.unlink(missing_ok=True)
        stamp.write_text(digest)
    except OSError:
        pass  # a read-only cache: Numba's own per-file checks still apply


_drop_stale_cache()
