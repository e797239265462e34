"""Kernels compiled ahead of time: `fastnn compile`, the cache status, the fallback.

Each test that needs a cold compile runs it in a child process with a private
NUMBA_CACHE_DIR, so the suite's own kernels (and their cache) are never touched. The
scikit-learn face is the one compiled (the smaller of the two: ~10 s per dtype cold).
"""
import json
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numba
import pytest

import fastnn
from fastnn._app import compile as _compile
from fastnn._app.compile import merge_caches
from fastnn._core import precompile as _precompile

ROOT = Path(fastnn.__file__).resolve().parent.parent

# A child's fit: a few epochs of the scikit-learn face per dtype; prints the final weights
# (exactly, as hex) and what numba did for the entry kernel (cache hits and misses).
FIT = """
import json, sys, warnings
import numpy as np
from fastnn import MLPClassifier
from fastnn._core.precompile import CompileWarning
from fastnn.kernels import epoch
rng = np.random.default_rng(0)
X = rng.random((120, 6)); y = rng.integers(0, 3, 120)
out = {"warnings": [], "weights": {}}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for dtype in sys.argv[1:]:
        clf = MLPClassifier((7,), max_iter=5, random_state=0).fit(X.astype(dtype), y)
        out["weights"][dtype] = [float(w).hex() for c in clf.coefs_ for w in c.ravel()]
out["warnings"] = [str(w.message) for w in caught if issubclass(w.category, CompileWarning)]
out["hits"] = sum(epoch.fit_epoch.stats.cache_hits.values())
out["misses"] = sum(epoch.fit_epoch.stats.cache_misses.values())
print(json.dumps(out))
"""


def run(args, cache_dir, cwd=None, **env):
    env = {**_clean_env(), "NUMBA_CACHE_DIR": str(cache_dir), **env}
    result = subprocess.run([sys.executable, *args], env=env, cwd=cwd or ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    return result


def _clean_env():
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}


def fit(cache_dir, *dtypes):
    return json.loads(run(["-c", FIT, *dtypes], cache_dir).stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """A cache filled by `fastnn compile` (two processes, merged), and its folder."""
    cache_dir = tmp_path_factory.mktemp("compiled")
    result = run(["-m", "fastnn", "compile", "--face", "sklearn", "--dtype", "float32", "float64", "--jobs", "2"],
                 cache_dir)
    assert "compiled the sklearn kernels for float32" in result.stderr
    assert "compiled the sklearn kernels for float64" in result.stderr
    folder, = cache_dir.iterdir()  # numba's per-source-folder subfolder
    return cache_dir, folder


def test_compiled_kernels_load_without_compiling_and_equal_the_jit_bitwise(compiled, tmp_path):
    cache_dir, _ = compiled
    loaded = fit(cache_dir, "float32", "float64")
    assert loaded["warnings"] == [] and loaded["misses"] == 0 and loaded["hits"] == 2
    # A process with an empty cache compiles at its first fit, and says so once per dtype.
    jit = fit(tmp_path, "float32", "float64")
    assert jit["misses"] == 2 and len(jit["warnings"]) == 2
    for message in jit["warnings"]:
        assert "compiling its sklearn kernels" in message and "no compiled" in message
        assert "fastnn compile" in message
    assert jit["weights"] == loaded["weights"]  # exactly: same bits from the JIT and from the cache


# A child's fit loading from the cache, with the kernels' lean loads ("lean") or Numba's own
# ("numba": a full refresh of the target context before each load); then a compile of a new
# function, which needs that refresh, and a second fit.
LOADS = """
import json, sys
import numba
import numpy as np
from numba.core.caching import FunctionCache
from numba.core.registry import cpu_target
from fastnn.kernels import _jit
if sys.argv[1] == "numba":
    _jit.KernelCache.load_overload = FunctionCache.load_overload
from fastnn import MLPClassifier
rng = np.random.default_rng(0)
X = rng.random((120, 6)); y = rng.integers(0, 3, 120)
weights = lambda clf: [float(w).hex() for c in clf.coefs_ for w in c.ravel()]
first = weights(MLPClassifier((7,), max_iter=5, random_state=0).fit(X, y))
refreshed = len(cpu_target.target_context._registries) > 0
from numba.core import entrypoints
extensions = entrypoints._already_initialized  # Numba's extensions, loaded by the kernels' first calls?
after = numba.njit(lambda a: np.linalg.norm(a) + sum((1.0, 2.0)))(np.full(4, 0.5))
second = weights(MLPClassifier((7,), max_iter=5, random_state=0).fit(X, y))
print(json.dumps({"first": first, "second": second, "refreshed": refreshed, "after": after,
                  "extensions": [extensions, entrypoints._already_initialized]}))
"""


def test_kernels_load_without_refreshing_numba_and_as_numba_would(compiled):
    cache_dir, _ = compiled
    lean, numba_own = (json.loads(run(["-c", LOADS, how], cache_dir).stdout.strip().splitlines()[-1])
                       for how in ("lean", "numba"))
    assert not lean["refreshed"] and numba_own["refreshed"]  # the 0.2 s a first fit no longer waits for
    assert lean["first"] == lean["second"] == numba_own["first"]  # the same code: the same bits
    assert lean["after"] == numba_own["after"] == 4.0  # a compile after lean loads refreshes what it needs
    # Lean loads skip Numba's scan of the installed extensions (Numba's refresh runs it); the
    # user's own compile still runs it.
    assert lean["extensions"] == [False, True] and numba_own["extensions"] == [True, True]


# A child's fit from the cache, telling whether Numba's runtime module was compiled (and
# saved) in this process or loaded; then a new function that allocates (the runtime's
# reference counts at work).
RUNTIME = """
import json
import numba
import numpy as np
from numba.core.runtime import rtsys
from fastnn.kernels import _runtime
saved = []
save = _runtime._save
_runtime._save = lambda *args: (saved.append(args[1]), save(*args))
from fastnn import MLPClassifier
rng = np.random.default_rng(0)
X = rng.random((120, 6)); y = rng.integers(0, 3, 120)
clf = MLPClassifier((7,), max_iter=5, random_state=0).fit(X, y)
after = numba.njit(lambda n: sum([np.arange(k).sum() for k in range(n)]))(50)
print(json.dumps({"compiled": len(saved), "weights": [float(w).hex() for c in clf.coefs_ for w in c.ravel()],
                  "after": int(after), "init": rtsys._init}))
"""


def test_numbas_runtime_loads_from_the_cache_and_a_damaged_file_is_compiled_again(compiled, tmp_path):
    shutil.copytree(compiled[0], tmp_path / "cache")
    runtime, = (tmp_path / "cache").glob("*/numba-runtime-*.nbo")  # `fastnn compile` keeps one, merged
    child = lambda: json.loads(run(["-c", RUNTIME], tmp_path / "cache").stdout.strip().splitlines()[-1])
    loaded = child()
    assert loaded["compiled"] == 0 and loaded["init"]  # 22-34 ms of a first fit, no longer compiled
    assert loaded["after"] == sum(k * (k - 1) // 2 for k in range(50))  # its reference counts work
    runtime.write_bytes(runtime.read_bytes()[:100])  # a damaged (truncated) file
    recompiled = child()
    assert recompiled["compiled"] == 1 and recompiled == {**loaded, "compiled": 1}  # the same bits either way
    assert child()["compiled"] == 0  # the compile replaced the damaged file


# A small kernel through a private cache: "write" compiles and saves it (in fastnn's
# entry format, or with "numba" in Numba's own); "read" loads it, then compiles a new
# function that calls it, which links the loaded library (its bitcode parsed only then).
LIBRARY = """
import json, sys
import numba
import numpy as np
from numba.core.caching import CompileResultCacheImpl
from fastnn.kernels import optimizers
kernel = optimizers.sgd_update
if sys.argv[1:] == ["write", "numba"]:
    kernel._cache._impl = CompileResultCacheImpl(kernel.py_func)
theta = np.arange(4.0)
kernel(theta, np.ones(4), 0.25)
cres = kernel.overloads[kernel.signatures[0]]
library = cres.library
out = {"hits": sum(kernel.stats.cache_hits.values()), "theta": theta.tolist(), "library": type(library).__name__,
       "parsed": library._shared_module is not None}
if sys.argv[1] == "write":  # the entry's symbols: those its bitcode defines
    from llvmlite import binding as ll
    from fastnn.kernels import _library
    (_, kind, (_, bitcode, symbols)), *_ = _library.KernelCacheImpl(kernel.py_func).reduce(cres)
    module = ll.parse_bitcode(bitcode)
    defined = sorted(g.name for g in [*module.functions, *module.global_variables] if not g.is_declaration)
    out["symbols"] = kind == _library.KIND and symbols == defined and len(symbols) > 0
caller = numba.njit(lambda th, g: optimizers.sgd_update(th, g, 0.5))
caller(theta, np.full(4, 2.0))
out.update(after=theta.tolist(), parsed_after=library._shared_module is not None)
print(json.dumps(out))
"""


@pytest.mark.parametrize("written_by", ["fastnn", "numba"])
def test_a_loaded_kernel_is_the_saved_one_and_links_into_a_later_compile(written_by, tmp_path):
    child = lambda *args: json.loads(run(["-c", LIBRARY, *args], tmp_path).stdout.strip().splitlines()[-1])
    written = child("write", *(["numba"] if written_by == "numba" else []))
    read = child("read")
    assert written["hits"] == 0 and read["hits"] == 1 and written["symbols"]
    assert read["theta"] == written["theta"] == [-0.25, 0.75, 1.75, 2.75]
    assert read["after"] == written["after"] == [-1.25, -0.25, 0.75, 1.75]  # the later compile called it
    if written_by == "fastnn":  # the symbols listed in the entry: the bitcode parsed only for the link
        assert read["library"] == "LoadedLibrary" and not read["parsed"] and read["parsed_after"]
    else:  # an entry in Numba's own format loads as Numba loads it
        assert read["library"] == "JITCodeLibrary" and read["parsed"]


def test_merging_keeps_every_entry_once(compiled, tmp_path):
    _, folder = compiled
    indexes = sorted(folder.glob("*.nbi"))
    first = merge_caches(indexes, tmp_path)
    again = merge_caches(indexes, tmp_path)
    assert first == again == len(indexes)
    for index in indexes:
        with open(index, "rb") as f:
            pickle.load(f)
            _, source = pickle.loads(f.read())
        with open(tmp_path / index.name, "rb") as f:
            assert pickle.load(f) == numba.__version__
            _, merged = pickle.loads(f.read())
        assert set(merged) == set(source) and len(set(merged.values())) == len(merged)
        for name in merged.values():
            assert (tmp_path / name).is_file()


@pytest.fixture
def installed_copy(compiled, tmp_path):
    """fastnn laid out as installed (kernels inside the package) with the compiled cache
    next to its kernels, as a wheel built by setup.py ships it."""
    _, folder = compiled
    package = tmp_path / "fastnn"
    shutil.copytree(ROOT / "fastnn", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "kernels", package / "kernels", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(folder, package / "kernels" / "__pycache__")
    return tmp_path


STATUS = ("import json, sys; sys.path.insert(0, '.'); from fastnn._core import precompile as p; "
          "print(json.dumps(p.status('sklearn', 'float64')))")


def status_of(copy):
    env = {k: v for k, v in _clean_env().items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", STATUS], cwd=copy, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_copied_install_finds_its_cache_and_an_edit_invalidates_it(installed_copy):
    state, reason = status_of(installed_copy)
    assert state == "ready" and str(installed_copy / "fastnn" / "kernels" / "__pycache__") in reason
    network = installed_copy / "fastnn" / "kernels" / "network.py"
    network.write_text(network.read_text() + "\n# an edit\n")
    state, reason = status_of(installed_copy)
    assert state == "compile" and "no compiled fit_epoch" in reason  # the stale cache was dropped


def test_a_cache_from_another_numba_is_not_used_and_named(installed_copy):
    index = next((installed_copy / "fastnn" / "kernels" / "__pycache__").glob("epoch.fit_epoch-*.nbi"))
    with open(index, "rb") as f:
        pickle.load(f)
        rest = f.read()
    with open(index, "wb") as f:
        pickle.dump("0.1.0", f)
        f.write(rest)
    state, reason = status_of(installed_copy)
    assert state == "compile" and "written by numba 0.1.0" in reason and numba.__version__ in reason


def test_disabled_jit_is_reported_and_warned_once(monkeypatch):
    monkeypatch.setattr(numba.core.config, "DISABLE_JIT", True)
    state, reason = _precompile.status("tutorial", "float32")
    assert state == "interpreted" and "NUMBA_DISABLE_JIT" in reason
    monkeypatch.setattr(_precompile, "_announced", set())
    with pytest.warns(_precompile.CompileWarning, match="NUMBA_DISABLE_JIT"):
        _precompile.announce("tutorial", "float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _precompile.announce("tutorial", "float32")  # once per face and dtype


def test_a_compile_no_status_foresaw_is_warned_once_at_the_users_call(monkeypatch):
    import numpy as np
    from fastnn.kernels import sync

    from numba.core.caching import NullCache

    monkeypatch.setattr(_precompile, "_compile_said", False)
    monkeypatch.setattr(sync.wait_for, "_cache", NullCache())  # compiles in this process, every run
    flags = np.zeros(1, dtype=np.int64)
    with pytest.warns(_precompile.CompileWarning) as caught:
        sync.wait_for(flags, 0, np.int16(0), np.int16(1))  # a variant nothing compiled: int16 values
    message = str(caught[0].message)
    assert len(caught) == 1 and "compiling fastnn.kernels.sync.wait_for now" in message and "fastnn compile" in message
    assert caught[0].filename == __file__  # it points at the call that compiled, not inside numba
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sync.wait_for(flags, 0, np.int8(0), np.int8(1))  # once per process


FIT_WITH_DECAY = """
import warnings
import numpy as np
from fastnn import MLPClassifier
rng = np.random.default_rng(0)
X = rng.random((60, 4)).astype("float32"); y = rng.integers(0, 3, 60)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    MLPClassifier((5,), max_iter=2, random_state=0, weight_decay=0.1).fit(X, y)
print([str(w.message) for w in caught if "compil" in str(w.message)])
"""


def test_a_fit_on_a_variant_the_install_did_not_compile_says_so(compiled, tmp_path):
    # Decoupled weight decay is a float where the compiled epochs have None: another variant.
    cache_dir, _ = compiled
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    assert run(["-c", "from fastnn._core import precompile as p; print(p.status('sklearn', 'float32')[0])"],
               copy).stdout.strip() == "ready"
    messages = eval(run(["-c", FIT_WITH_DECAY], copy).stdout.strip().splitlines()[-1])  # noqa: S307 - our own print
    assert len(messages) == 1 and "compiling fastnn.kernels.epoch.fit_epoch now" in messages[0]


# A child's split fits (both variants of split_run: Adam's epochs, L-BFGS's loss and
# gradient), two cores forced; prints split_run's cache hits and misses and, per variant,
# which kernels its machine code holds.
SPLIT_FITS = """
import inspect, json, warnings
import numpy as np
from numba import types
from fastnn import MLPClassifier
from fastnn._core import threads
from fastnn.kernels import split
threads._budget = 2
rng = np.random.default_rng(0)
X = rng.random((1000, 32)); y = rng.integers(0, 3, 1000)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for solver, batch_size in (("adam", 500), ("lbfgs", "auto")):
        MLPClassifier((64,), solver=solver, batch_size=batch_size, max_iter=2, random_state=0).fit(X, y)
out = {"hits": sum(split.split_run.stats.cache_hits.values()),
       "misses": sum(split.split_run.stats.cache_misses.values()), "variants": {}}
at = list(inspect.signature(split.split_run.py_func).parameters).index("optimizer")
for sig in split.split_run.signatures:
    module = split.split_run.overloads[sig].library._get_module_for_linking()
    defined = " ".join(f.name for f in module.functions if not f.is_declaration)
    variant = "lbfgs" if isinstance(sig[at], types.NoneType) else "epochs"
    out["variants"][variant] = {name: name in defined
                                for name in ("summed_gradient", "adam_update", "forward_layers", "network7predict")}
print(json.dumps(out))
"""


def test_split_fits_load_the_install_and_each_variant_holds_only_its_own_code(compiled):
    cache_dir, _ = compiled
    out = json.loads(run(["-c", SPLIT_FITS], cache_dir).stdout.strip().splitlines()[-1])
    assert out["misses"] == 0 and out["hits"] == 2  # `fastnn compile` compiled both
    # Neither holds network.predict: the scikit-learn face predicts no test set between epochs.
    assert out["variants"] == {
        "epochs": {"summed_gradient": False, "adam_update": True, "forward_layers": True, "network7predict": False},
        "lbfgs": {"summed_gradient": True, "adam_update": False, "forward_layers": True, "network7predict": False},
    }


def test_no_kernel_is_compiled_for_a_literal_argument(compiled):
    # A literal int passed to a kernel that is not inlined (0, a module constant) compiles a
    # specialization of its own beside the int64 one (kernels/_jit.py): L-BFGS's
    # summed_gradient was compiled twice, the guard's _chunk_is_finite four times. None in a
    # complete compile: the fixture's (the scikit-learn face) and the install's (every face),
    # where this checkout has one.
    folders = [compiled[1]]
    own = fastnn.kernels._cache_dir()
    if own is not None and _compile.recorded_pairs(Path(own)):
        folders.append(Path(own))
    literal = [(index.name, str(key[0])) for folder in folders for index in sorted(folder.glob("*.nbi"))
               for key in _precompile.read_index(index)[2] if "Literal" in str(key[0])]
    assert literal == []


def test_compile_command_rejects_bad_arguments():
    result = subprocess.run([sys.executable, "-m", "fastnn", "compile", "--dtype", "float16"], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2 and "invalid choice: 'float16'" in result.stderr


def test_a_corrupt_index_means_compile_and_never_fails_a_fit(installed_copy):
    index = next((installed_copy / "fastnn" / "kernels" / "__pycache__").glob("epoch.fit_epoch-*.nbi"))
    with open(index, "rb") as f:
        version = pickle.load(f)
    with open(index, "wb") as f:
        pickle.dump(version, f)
        f.write(b"not a pickle")
    state, reason = status_of(installed_copy)
    assert state == "compile" and "unreadable" in reason


# -- a second `fastnn compile` ---------------------------------------------------------------
def test_a_second_compile_skips_what_a_complete_one_did_unless_forced(compiled, tmp_path):
    cache_dir, _ = compiled
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    again = run(["-m", "fastnn", "compile", "--face", "sklearn", "--dtype", "float32", "float64"], copy).stderr
    assert again.count("already compiled for this machine") == 2 and "compiled the sklearn" not in again
    forced = run(["-m", "fastnn", "compile", "--face", "sklearn", "--dtype", "float64", "--force"], copy).stderr
    assert "compiled the sklearn kernels for float64" in forced and "already compiled" not in forced


def test_kernels_a_fit_compiled_are_not_taken_for_a_complete_compile(tmp_path):
    # A first fit compiles only the paths it takes; `fastnn compile` compiles the rest.
    fit(tmp_path, "float32")
    result = run(["-m", "fastnn", "compile", "--face", "sklearn", "--dtype", "float32"], tmp_path).stderr
    assert "compiled the sklearn kernels for float32" in result and "already compiled" not in result


def test_a_ready_cache_without_the_record_is_compiled_again(tmp_path):
    # The cache's index can look compiled for a dtype when a fit compiled only some paths:
    # only the record of a complete compile lets `fastnn compile` skip.
    if _precompile.status("sklearn", "float64")[0] != "ready":
        pytest.skip("this process's kernels are not compiled (an install without the build step)")
    assert not _compile.is_compiled("sklearn", "float64", tmp_path)
    _compile._write_record(tmp_path, {("sklearn", "float64"): 1.0})
    assert _compile.is_compiled("sklearn", "float64", tmp_path)
    assert not _compile.is_compiled("sklearn", "float32", tmp_path)


def test_the_record_holds_only_for_the_same_sources_and_machine(tmp_path, monkeypatch):
    assert _compile.recorded_pairs(tmp_path) == set()  # no record
    _compile._write_record(tmp_path, {("sklearn", "float32"): 1.0})
    _compile._write_record(tmp_path, {("tutorial", "float64"): 1.0})  # adds to the record
    assert _compile.recorded_pairs(tmp_path) == {("sklearn", "float32"), ("tutorial", "float64")}
    record = json.loads((tmp_path / _compile.RECORD).read_text())
    for key, other in (("digest", "0" * 64), ("machine", {**record["machine"], "numba": "0.1.0"}),
                       ("machine", {**record["machine"], "cpu": ["x86_64-unknown-linux-gnu", "other", ""]})):
        (tmp_path / _compile.RECORD).write_text(json.dumps({**record, key: other}))
        assert _compile.recorded_pairs(tmp_path) == set(), key
    (tmp_path / _compile.RECORD).write_text("not json")
    assert _compile.recorded_pairs(tmp_path) == set()
