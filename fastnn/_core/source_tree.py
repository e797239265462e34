"""The error for a ``fastnn`` imported from its source tree without its kernels.

The kernels live in the repository's top-level ``kernels/`` folder and become
``fastnn.kernels`` only through an install (pyproject.toml maps the folder). Python run
from the repository root finds the local ``fastnn/`` folder before the installed package,
and that folder has no ``kernels`` inside: NumPy and SciPy meet the same problem and
answer it with an error that says what to do, as this does.
"""
from pathlib import Path


def kernels_missing_error(package_dir: str) -> ImportError:
    """The ImportError to raise when ``fastnn.kernels`` cannot be found beside ``package_dir``."""
    package = Path(package_dir).resolve()
    if (package.parent / "kernels" / "__init__.py").is_file():
        what = (f"fastnn was imported from its source tree ({package}), where its compiled kernels "
                f"(the folder {package.parent / 'kernels'}) are only reachable through an install.")
        how = ("To work on fastnn, install it in editable mode: `pip install -e .` in that folder. "
               "To use an installed fastnn, run Python from another directory, so that the local "
               "'fastnn' folder does not hide the installed package.")
    else:
        what = f"fastnn's kernels (fastnn.kernels) are missing from {package}."
        how = "Reinstall fastnn: `pip install --force-reinstall fastnn` (or `pip install .` from its source)."
    return ImportError(f"{what} {how}", name="fastnn.kernels", path=str(package))
