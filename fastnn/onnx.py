"""Exporting fastnn models to ONNX, to run them where models are served: ``to_onnx``.

``to_onnx`` needs the ``onnx`` package, and for scikit-learn estimators ``skl2onnx``
(``pip install 'fastnn[onnx]'`` brings both); ``import fastnn`` imports neither.
Importing this module registers fastnn's ``MLPClassifier`` and ``MLPRegressor`` with
skl2onnx when it is installed, so that ``skl2onnx.to_onnx`` converts them too, alone or
in a pipeline. What the exported graphs compute, and how to run them:
docs/deploying.md.
"""
import importlib

import numpy as np

from ._core.archive import atomic_write
from .network import NeuralNetwork

_EXTRA = "pip install 'fastnn[onnx]'"


def _require(package, what):
    """Import ``package``, or say which extra brings it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ImportError(f"{what} needs the {package!r} package, which is not installed; "
                          f"install fastnn's ONNX extra: {_EXTRA}") from None


def _check_sample(X_sample, n_features):
    """The ``X_sample`` array, checked against the model's number of input features."""
    shape = np.shape(X_sample)
    if len(shape) != 2 or shape[1] != n_features:
        raise ValueError(f"X_sample must be 2-D with {n_features} columns (the model's input features); "
                         f"got shape {shape}.")
    return X_sample


def to_onnx(model, X_sample=None, *, path=None, opset=None):
    """Export a fastnn model to ONNX.

    Parameters
    ----------
    model : NeuralNetwork, MLPClassifier, MLPRegressor or a scikit-learn estimator holding them
        A ``fastnn.NeuralNetwork`` (or ``fastnn.reference.NeuralNetwork``) of any depth
        and activations; a fitted ``fastnn.MLPClassifier`` or ``MLPRegressor``; or a
        fitted scikit-learn ``Pipeline`` (or any estimator skl2onnx converts) that
        contains them, converted by skl2onnx with fastnn's converters. A model trained
        with ``compute_dtype='bfloat16'`` exports its float32 weights with float32
        products: the graph computes what ``predict`` does with ``compute_dtype=None``.
    X_sample : array-like of shape (n_samples, n_features), optional
        A few input rows. Their dtype sets the type of the ONNX input (float32 or
        float64; the graph computes in the model's dtype whatever the input's, as
        fastnn does). By default the input has the model's dtype. For a scikit-learn
        estimator it goes to ``skl2onnx.to_onnx``, so a DataFrame gives one input per
        column there.
    path : str or os.PathLike, optional
        Also write the model to this file (atomically, as ``fastnn.save``).
    opset : int, optional
        The ONNX opset of the default domain: 17 by default (onnxruntime 1.14 and
        newer run it), at least 13.

    Returns
    -------
    onnx.ModelProto
        For a ``NeuralNetwork``: input ``X`` (n, input_size); output ``output``
        (n, output_size), what ``forward`` returns, and for the classification losses
        ``label``, what ``predict`` returns (int64: (n,) class indices for
        categorical cross-entropy, (n, output_size) 0/1 for log_loss). For an
        ``MLPClassifier``: ``label`` (n,) (int64 or string, as ``predict``; (n,
        n_classes) for multi-label targets) and ``probabilities`` (n, n_classes), as
        plain tensors (no ZipMap); for an ``MLPRegressor``: ``variable`` (n, n_outputs).

    Raises
    ------
    ImportError
        If onnx (or, for a scikit-learn estimator, skl2onnx) is not installed.
    sklearn.exceptions.NotFittedError
        If a scikit-learn estimator is not fitted.
    TypeError, ValueError
        For a model of another kind, an ``X_sample`` of the wrong shape or dtype, an
        opset out of range.

    Examples
    --------
    >>> import onnxruntime as ort                                     # doctest: +SKIP
    >>> fastnn.to_onnx(clf, path="model.onnx")                        # doctest: +SKIP
    >>> session = ort.InferenceSession("model.onnx")                  # doctest: +SKIP
    >>> labels, probabilities = session.run(None, {"X": X_test})      # doctest: +SKIP
    """
    onnx = _require("onnx", "fastnn.to_onnx")
    from ._onnx_graph import check_opset

    if isinstance(model, NeuralNetwork):
        proto = _network_to_onnx(model, X_sample, check_opset(opset, onnx.defs.onnx_opset_version()))
    elif hasattr(model, "fit") and hasattr(model, "get_params"):  # a scikit-learn estimator
        skl2onnx = _require("skl2onnx", "fastnn.to_onnx of a scikit-learn estimator")
        newest = min(onnx.defs.onnx_opset_version(), skl2onnx.get_latest_tested_opset_version())
        proto = _estimator_to_onnx(skl2onnx, model, X_sample, check_opset(opset, newest))
    else:
        raise TypeError("to_onnx exports a fastnn NeuralNetwork, a fitted MLPClassifier or MLPRegressor, or a "
                        f"scikit-learn pipeline that contains them; got {type(model).__name__}.")
    if path is not None:
        atomic_write(path, lambda f: f.write(proto.SerializeToString()))
    return proto


def _network_to_onnx(nn, X_sample, opset):
    from . import _onnx_graph as graph

    in_dtype = nn.dtype
    if X_sample is not None:
        in_dtype = np.asarray(_check_sample(X_sample, nn.input_size)).dtype
        if in_dtype not in (np.float32, np.float64):
            raise ValueError(f"X_sample must hold float32 or float64 numbers (the type of the ONNX input); "
                             f"got dtype {in_dtype}.")
    g = graph.ModelGraph()
    out = graph.forward(g, g.cast("X", in_dtype, nn.dtype), graph.tutorial_network(nn))
    out = g.op("Identity", [out], "output", output="output")
    outputs = [(out, nn.dtype, [None, nn.output_size])]
    if nn.loss_func == "categorical_crossentropy":  # predict: the index of the largest output
        outputs.append((g.op("ArgMax", [out], "label", output="label", axis=1, keepdims=0), np.int64, [None]))
    elif nn.loss_func == "log_loss":  # predict: each output above 0.5
        above = g.op("Greater", [out, g.const(np.asarray(0.5, nn.dtype), "half")], "above_half")
        outputs.append((g.op("Cast", [above], "label", output="label", to=graph.tensor_type(np.int64)), np.int64,
                        [None, nn.output_size]))
    doc = (f"fastnn {type(nn).__name__}: layers {'-'.join(map(str, nn.layer_sizes))}, activation {nn.activation}, "
           f"output {nn.output_activation}, loss {nn.loss_func}, {nn.dtype.name}")
    return g.model([("X", in_dtype, [None, nn.input_size])], outputs, opset, doc)


def _fastnn_estimators(model):
    """fastnn's estimators inside ``model`` (itself included), in the order get_params lists them."""
    from .sklearn import MLPClassifier, MLPRegressor

    found = [model] + [v for v in model.get_params(deep=True).values() if hasattr(v, "get_params")]
    return [est for est in found if isinstance(est, (MLPClassifier, MLPRegressor))]


def _estimator_to_onnx(skl2onnx, model, X_sample, opset):
    from sklearn.utils.validation import check_is_fitted
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    from .sklearn import MLPClassifier

    check_is_fitted(model)
    n_features = getattr(model, "n_features_in_", None)
    if X_sample is not None:
        if n_features is not None:
            _check_sample(X_sample, n_features)
        return skl2onnx.to_onnx(model, X_sample, target_opset=opset, options={MLPClassifier: {"zipmap": False}})
    inner = _fastnn_estimators(model)
    if n_features is None or not inner:
        raise ValueError(f"to_onnx needs X_sample to know the input of this {type(model).__name__}: "
                         "it has no n_features_in_ or no fastnn estimator inside; pass a few rows of input.")
    tensor = FloatTensorType if inner[0].coefs_[0].dtype == np.float32 else DoubleTensorType
    return skl2onnx.to_onnx(model, initial_types=[("X", tensor([None, n_features]))], target_opset=opset,
                            options={MLPClassifier: {"zipmap": False}})


try:  # register fastnn's estimators with skl2onnx, when it is there
    importlib.import_module("skl2onnx")
except ImportError:
    pass
else:
    from . import _onnx_sklearn

    _onnx_sklearn.register()

__all__ = ["to_onnx"]
