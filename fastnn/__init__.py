"""fastnn: fast dense neural networks on the CPU, with Numba kernels.

``NeuralNetwork`` and ``Trainer`` are drop-ins for the "math behind neural networks"
tutorial's classes; ``fastnn.reference`` holds the same API in plain NumPy.
"""
import importlib.util as _util

if _util.find_spec(__name__ + ".kernels") is None:  # first: every module below needs the kernels
    from ._core.source_tree import kernels_missing_error

    raise kernels_missing_error(__path__[0])

from ._core import collector as _collector

with _collector.paused():  # the import's objects are not garbage: no full collections (collector.py)
    from . import io as _io
    from . import reference  # noqa: F401  (registers its engine with io; fastnn.reference)
    from ._core.precompile import CompileWarning
    from ._core.threads import get_num_threads, set_num_threads
    from ._version import __version__
    from .callbacks import Callback, EarlyStopping, LambdaCallback, ModelCheckpoint
    from .errors import BFloat16Unavailable, DivergenceError, ModelFileError
    from .history import History, plot_history
    from .io import load_checkpoint, load_model, save_checkpoint, save_model
    from .network import NeuralNetwork
    from .optimizers import SGD, Adam
    from .schedules import Constant, ExponentialDecay, InverseScaling, ReduceLROnPlateau, StepDecay
    from .trainer import Trainer

# The loaders build the classes a file names: this package's, and the reference's
# (which registers itself).
_io.register_engine("fastnn", NeuralNetwork, Trainer)

load, save = load_model, save_model

__all__ = ["NeuralNetwork", "Trainer", "SGD", "Adam", "DivergenceError", "BFloat16Unavailable", "CompileWarning", "__version__",
           "ModelFileError", "save", "load", "save_model", "load_model", "save_checkpoint", "load_checkpoint",
           "MLPClassifier", "MLPRegressor", "Callback", "EarlyStopping", "LambdaCallback", "ModelCheckpoint",
           "History", "plot_history", "set_num_threads", "get_num_threads", "Constant", "ExponentialDecay", "InverseScaling", "ReduceLROnPlateau", "StepDecay",
           "to_onnx"]


def __getattr__(name):
    # The scikit-learn drop-ins import scikit-learn: only when first asked for.
    if name in ("MLPClassifier", "MLPRegressor"):
        with _collector.paused():
            from . import sklearn

        return getattr(sklearn, name)
    if name == "to_onnx":  # imports skl2onnx when installed (to register with it): only when asked for
        from .onnx import to_onnx

        return to_onnx
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
