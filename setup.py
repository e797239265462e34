"""Build step: compile fastnn's kernels for this machine while pip installs it.

Everything about the package is in pyproject.toml; this file only adds to setuptools'
``build_py`` a step that runs ``python -m fastnn compile`` on the files being installed,
so numba's cache of compiled kernels ships inside the install and the user's first fit
loads them instead of compiling (``fastnn/_core/precompile.py`` explains the mechanism).

- A regular install (``pip install .``): the kernels are compiled in the build folder,
  and their cache goes into the wheel with them.
- An editable install (``pip install -e .``): a copy of the sources, laid out as
  installed, is compiled, and its cache is copied into ``kernels/__pycache__``, where the
  editable package's kernels look for it.

The compile runs with the target environment's numba when it is already installed
there (a cache is valid for one numba version only), else with the build environment's.
It never fails the install: on any error it says so and fastnn compiles at first use.
``FASTNN_PRECOMPILE=0`` skips it (e.g. for a wheel built for other machines).
``pip install -v`` shows its progress.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# numba's index and data files, fastnn's records, Numba's runtime module (kernels/_runtime.py),
# and the library measured faster for wide float32 steps where oneDNN is installed (_core/products.py)
CACHE_FILES = ("*.nbi", "*.nbc", "fastnn-kernels.sha256", "fastnn-compiled.json", "numba-runtime-*.nbo",
               "fastnn-sgemm-*.json")


def log(message):
    print(f"fastnn build: {message}", file=sys.stderr, flush=True)


def target_environment():
    """The environment for the compile: pip's isolated build environment hides the target
    one (PYTHONPATH, PYTHONNOUSERSITE and a sitecustomize); without them the same
    interpreter sees the target's packages. Used when it has all of fastnn's dependencies."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE", "PYTHONHOME")}
    probe = "import numba, numpy, scipy, sklearn, threadpoolctl, tqdm; print(numba.__version__)"
    found = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if found.returncode == 0:
        return env, f"the target environment's numba {found.stdout.strip()}"
    return dict(os.environ), "the build environment's numba"


def compile_kernels(package_parent):
    """Run ``fastnn compile`` on the fastnn package inside ``package_parent``."""
    env, which = target_environment()
    env["PYTHONPATH"] = os.pathsep.join([str(package_parent)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("NUMBA_CACHE_DIR", None)  # the cache goes next to the kernels being installed
    log(f"compiling the kernels for this machine with {which} (one to two minutes; FASTNN_PRECOMPILE=0 skips this)")
    # cwd: the package's parent, so that no other 'fastnn' folder shadows it.
    subprocess.run([sys.executable, "-m", "fastnn", "compile"], env=env, cwd=package_parent, check=True)


class BuildPyCompilingKernels(build_py):
    def run(self):
        super().run()
        if os.environ.get("FASTNN_PRECOMPILE", "1") == "0":
            log("FASTNN_PRECOMPILE=0: not compiling the kernels; they compile at first use")
            return
        try:
            if getattr(self, "editable_mode", False):
                self._compile_in_tree()
            else:
                compile_kernels(Path(self.build_lib))
        except Exception as err:  # noqa: BLE001 - never fail an install over an optimisation
            log(f"could not compile the kernels ({err}); fastnn will compile them at first use, "
                "or run `fastnn compile` after the install")

    def _compile_in_tree(self):
        with tempfile.TemporaryDirectory(prefix="fastnn-build-") as tmp:
            package = Path(tmp) / "fastnn"
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(ROOT / "fastnn", package, ignore=ignore)
            shutil.copytree(ROOT / "kernels", package / "kernels", ignore=ignore)
            compile_kernels(Path(tmp))
            cache = ROOT / "kernels" / "__pycache__"
            cache.mkdir(exist_ok=True)
            for pattern in CACHE_FILES:
                for old in cache.glob(pattern):
                    old.unlink()
                for new in (package / "kernels" / "__pycache__").glob(pattern):
                    shutil.copyfile(new, cache / new.name)
            log(f"kernel cache written to {cache}")


setup(cmdclass={"build_py": BuildPyCompilingKernels})
