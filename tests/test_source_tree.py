"""Importing fastnn from its source tree: it works (editable install) or says what to do."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastnn

ROOT = Path(fastnn.__file__).resolve().parent.parent

# Python code that imports fastnn as a regular (non-editable) install would: no finder that
# maps fastnn.kernels to the repository's kernels/ folder.
REGULAR_INSTALL_IMPORT = (
    "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in str(getattr(f, '__module__', '')).lower()]; "
    "import fastnn"
)


def run_python(code, cwd):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def source_tree(tmp_path):
    """A copy of the repository's layout: fastnn/ and kernels/ side by side, no install."""
    shutil.copytree(ROOT / "fastnn", tmp_path / "fastnn", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "kernels", tmp_path / "kernels", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_source_tree_import_says_what_happened_and_what_to_do(source_tree):
    result = run_python(REGULAR_INSTALL_IMPORT, source_tree)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: fastnn was imported from its source tree"), result.stderr
    assert str(source_tree / "kernels") in last and "pip install -e ." in last and "another directory" in last
    assert "Traceback" in result.stderr and "_tables" not in result.stderr  # raised at the top, not deep inside


def test_package_without_kernels_asks_for_a_reinstall(source_tree):
    shutil.rmtree(source_tree / "kernels")
    result = run_python(REGULAR_INSTALL_IMPORT, source_tree)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: fastnn's kernels (fastnn.kernels) are missing"), result.stderr
    assert "Reinstall fastnn" in last


def test_installed_layout_imports_and_other_missing_modules_are_not_disguised(source_tree):
    # An install puts kernels/ inside the package: that layout imports from anywhere.
    shutil.move(source_tree / "kernels", source_tree / "fastnn" / "kernels")
    code = REGULAR_INSTALL_IMPORT + "; print(fastnn.kernels.__file__)"
    result = run_python(code, source_tree)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == source_tree / "fastnn" / "kernels" / "__init__.py"
    # A module missing inside the kernels keeps its own error: only fastnn.kernels is explained.
    init = source_tree / "fastnn" / "kernels" / "__init__.py"
    init.write_text("import a_module_that_does_not_exist\n" + init.read_text())
    result = run_python(REGULAR_INSTALL_IMPORT, source_tree)
    assert "ModuleNotFoundError: No module named 'a_module_that_does_not_exist'" in result.stderr


def test_editable_install_imports_from_the_repository_root():
    result = run_python("import fastnn, fastnn.kernels as k; print(k.__file__)", ROOT)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).parent == ROOT / "kernels"
