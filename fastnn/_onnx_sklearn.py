"""fastnn's scikit-learn estimators in skl2onnx: converters registered through its public
API (``update_registered_converter``), so that ``skl2onnx.to_onnx`` converts them, alone
or inside a pipeline, once ``fastnn.onnx`` is imported.

The outputs are those skl2onnx gives scikit-learn's own estimators: a classifier's
``label`` (n,) and ``probabilities`` (n, n_classes) (skl2onnx's parser adds its ZipMap
unless the option ``zipmap=False`` is given; ``fastnn.to_onnx`` gives it), a
regressor's ``variable`` (n, n_outputs). The network is fastnn's own graph
(``fastnn._onnx_graph``), so the fastnn-only activations convert too. It computes in
the estimator's dtype whatever the input's, as ``predict`` does; the outputs take the
input's float type, as in skl2onnx's own converters.
"""
import numpy as np
from onnx import TensorProto
from skl2onnx import update_registered_converter
from skl2onnx.common.data_types import (DoubleTensorType, FloatTensorType, Int64TensorType, StringTensorType,
                                        guess_numpy_type)
from sklearn.utils.validation import check_is_fitted

from . import _onnx_graph as graph
from ._core import sk_engine
from .sklearn import MLPClassifier, MLPRegressor

_FLOAT_TENSORS = {np.dtype(np.float32): FloatTensorType, np.dtype(np.float64): DoubleTensorType}
_LABEL_TENSORS = {"i": Int64TensorType, "U": StringTensorType, "f": DoubleTensorType}


class ConverterGraph(graph.Graph):
    """Nodes and initializers added to skl2onnx's container, named by its scope."""

    def __init__(self, scope, container):
        self.scope, self.container = scope, container

    def _unique(self, hint):
        return self.scope.get_unique_variable_name(hint)

    def _add_node(self, op_type, inputs, output, attrs):
        self.container.add_node(op_type, inputs, output, name=self.scope.get_unique_operator_name(op_type), **attrs)

    def _add_const(self, name, array):
        if array.dtype.kind in "UO":  # the container takes text as UTF-8 bytes
            self.container.add_initializer(name, TensorProto.STRING, list(array.shape),
                                           [str(s).encode("utf-8") for s in array.ravel()])
        else:
            self.container.add_initializer(name, graph.tensor_type(array.dtype), list(array.shape), array.ravel())


def network(est):
    """The ``graph.Network`` of a fitted fastnn estimator."""
    # The engine's names ('logistic' is fastnn's 'sigmoid') and the Spec's leaky ReLU slope
    # or ELU scale: the same tables the estimator trains with.
    spec = est._spec()
    names = sk_engine.HIDDEN_ACTIVATIONS
    return graph.Network(list(est.coefs_), list(est.intercepts_), names[est.activation], spec.alpha,
                         names.get(est.out_activation_, est.out_activation_), spec.dtype)


def _fitted(operator):
    est = operator.raw_operator
    check_is_fitted(est)
    return est


def _is_multilabel(est):
    return est._label_binarizer.y_type_ == "multilabel-indicator"


def _input_dtype(operator):
    return np.dtype(guess_numpy_type(operator.inputs[0].type))


def _output_dtype(operator, est):
    """The float type of the outputs: the input's, as in skl2onnx's own converters (its
    ZipMap takes float32 only), or the estimator's for an integer input."""
    dtype = _input_dtype(operator)
    return dtype if dtype in _FLOAT_TENSORS else np.dtype(est.coefs_[0].dtype)


def _network_output(g, operator, net):
    return graph.forward(g, g.cast(operator.inputs[0].full_name, _input_dtype(operator), net.dtype), net)


def _emit(g, name, dtype, out_dtype, output):
    """``name`` as the converter's output ``output``, of ``out_dtype``."""
    if dtype == out_dtype:
        return g.op("Identity", [name], output, output=output)
    return g.op("Cast", [name], output, output=output, to=graph.tensor_type(out_dtype))


# -- MLPClassifier --------------------------------------------------------------------------
def classifier_shapes(operator):
    """label (n,) of the classes' type, or (n, n_classes) int64 for multi-label targets;
    probabilities (n, n_classes)."""
    est = _fitted(operator)
    if len(est.classes_) < 2:
        raise ValueError(f"{type(est).__name__} was fitted on one class ({est.classes_.tolist()[0]!r}); "
                         "an ONNX classifier needs at least two. Fit it on data with two or more classes.")
    n, k = operator.inputs[0].get_first_dimension(), len(est.classes_)
    if _is_multilabel(est):
        operator.outputs[0].type = Int64TensorType([n, k])
    else:
        operator.outputs[0].type = _LABEL_TENSORS[graph.label_values(est.classes_).dtype.kind]([n])
    operator.outputs[1].type = _FLOAT_TENSORS[_output_dtype(operator, est)]([n, k])


def convert_classifier(scope, operator, container):
    """``predict`` and ``predict_proba`` of a fitted fastnn ``MLPClassifier``."""
    est = operator.raw_operator
    g, net = ConverterGraph(scope, container), network(est)
    out = _network_output(g, operator, net)
    label, proba = operator.outputs[0].full_name, operator.outputs[1].full_name
    if _is_multilabel(est) or est.n_outputs_ == 1:
        above_half = g.op("Greater", [out, g.const(np.asarray(0.5, net.dtype), "half")], "above_half")
    if _is_multilabel(est):  # one sigmoid per class; a label is 1 where it exceeds 0.5
        probabilities = out
        g.op("Cast", [above_half], "label", output=label, to=TensorProto.INT64)
    elif est.n_outputs_ == 1:  # binary: the one output is P(classes_[1]); predict thresholds it at 0.5
        one = g.const(np.asarray(1.0, net.dtype), "one")
        probabilities = g.op("Concat", [g.op("Sub", [one, out], "negative_proba"), out], "proba", axis=1)
        positive = g.op("Cast", [graph.flat(g, above_half)], "positive", to=TensorProto.INT64)
        graph.labels_at(g, positive, graph.label_values(est.classes_), output=label)
    else:  # multiclass: softmax; the class of the largest probability (the first of ties, as np.argmax)
        probabilities = out
        argmax = g.op("ArgMax", [out], "argmax", axis=1, keepdims=0)
        graph.labels_at(g, argmax, graph.label_values(est.classes_), output=label)
    _emit(g, probabilities, net.dtype, _output_dtype(operator, est), proba)


# -- MLPRegressor ---------------------------------------------------------------------------
def regressor_shapes(operator):
    """variable (n, n_outputs)."""
    est = _fitted(operator)
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = _FLOAT_TENSORS[_output_dtype(operator, est)]([n, est.n_outputs_])


def convert_regressor(scope, operator, container):
    """``predict`` of a fitted fastnn ``MLPRegressor``, as (n, n_outputs)."""
    est = operator.raw_operator
    g, net = ConverterGraph(scope, container), network(est)
    out = _network_output(g, operator, net)
    _emit(g, out, net.dtype, _output_dtype(operator, est), operator.outputs[0].full_name)


def register():
    """Register fastnn's estimators with skl2onnx (again: it replaces the registration)."""
    # 'zipmap' declared makes skl2onnx use its classifier parser, which adds the ZipMap;
    # that parser asks for 'nocl' (class indices instead of labels), which is not offered.
    update_registered_converter(MLPClassifier, "FastnnMLPClassifier", classifier_shapes, convert_classifier,
                                options={"zipmap": [True, False, "columns"], "nocl": [False]})
    update_registered_converter(MLPRegressor, "FastnnMLPRegressor", regressor_shapes, convert_regressor)
