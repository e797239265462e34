"""The ONNX graph of a dense network, written once for every way fastnn exports one.

``forward`` emits the layers (Gemm, then the activation) into a ``Graph``: a
``ModelGraph`` collects them into a standalone ONNX model (``fastnn.to_onnx`` of a
``NeuralNetwork``, ``fastnn export``), a converter graph (``fastnn._onnx_sklearn``) adds
them to skl2onnx's container, so that a scikit-learn pipeline holds the same nodes.

Every op computes in the network's dtype, as fastnn does, so the graph reproduces
fastnn's outputs to rounding. Leaky ReLU and ELU are built from primitives: ONNX's
``LeakyRelu`` and ``Elu`` take alpha as a float32 attribute (0.01 is then 0.0099999998,
a 2e-8 relative error on a float64 network), and onnxruntime has no float64 ``Elu``.
Not public: ``fastnn.to_onnx`` is.
"""
import json
import numbers
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ._version import __version__

TENSOR_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
                np.dtype(np.int64): TensorProto.INT64, np.dtype(np.bool_): TensorProto.BOOL,
                np.dtype(object): TensorProto.STRING}
# The oldest opset fastnn's graphs are tested with, and the one they get by default: old
# enough for any onnxruntime of the last years (1.14+), and every op used here is older.
MIN_OPSET = 13
DEFAULT_OPSET = 17
_ELEMENTWISE = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "exp": "Exp"}


@dataclass
class Network:
    """A dense network as ONNX needs it: weights[l] (d_l, d_{l+1}), biases[l] (d_{l+1},),
    the hidden and output activations by fastnn's names ('sigmoid', not 'logistic'), the
    alpha of leaky ReLU / ELU, and the dtype everything computes in."""

    weights: list
    biases: list
    activation: str
    alpha: float
    output_activation: str
    dtype: np.dtype


def check_opset(opset, newest):
    """The opset to write: ``opset``, or DEFAULT_OPSET for None; ``newest`` is the
    newest the packages at hand support."""
    if opset is None:
        return DEFAULT_OPSET
    if not isinstance(opset, numbers.Integral) or isinstance(opset, bool) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an int from {MIN_OPSET} to {newest} (the newest the installed packages "
                         f"support for this model); got {opset!r}.")
    return int(opset)


def tutorial_network(nn):
    """The ``Network`` of a ``fastnn.NeuralNetwork``."""
    return Network(nn.weights, nn.biases, nn.activation, nn.alpha, nn.output_activation, nn.dtype)


def tensor_type(dtype):
    """The ONNX element type of a NumPy dtype (text is a Python-object array of str)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "U":
        dtype = np.dtype(object)
    return TENSOR_TYPES[dtype]


class Graph:
    """Nodes and constants under construction, each named uniquely from a hint. Subclasses
    say where they go (``_unique``, ``_add_node``, ``_add_const``)."""

    def const(self, value, hint):
        """The name of a constant holding ``value`` (a NumPy array or scalar)."""
        name = self._unique(hint)
        self._add_const(name, np.asarray(value))
        return name

    def op(self, op_type, inputs, hint, output=None, **attrs):
        """Add one node; return the name of its output (``output`` when given)."""
        output = output or self._unique(hint)
        self._add_node(op_type, list(inputs), output, attrs)
        return output

    def cast(self, name, from_dtype, to_dtype):
        """``name`` converted to ``to_dtype``; no node when it already has that dtype."""
        if np.dtype(from_dtype) == np.dtype(to_dtype):
            return name
        return self.op("Cast", [name], "cast", to=tensor_type(to_dtype))


class ModelGraph(Graph):
    """A standalone ONNX model: nodes and initializers in lists, then ``model``."""

    def __init__(self):
        self.nodes, self.initializers, self._names = [], [], set()

    def _unique(self, hint):
        name, i = hint, 0
        while name in self._names:
            i += 1
            name = f"{hint}_{i}"
        self._names.add(name)
        return name

    def _add_node(self, op_type, inputs, output, attrs):
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=self._unique(f"{op_type}_node"), **attrs))

    def _add_const(self, name, array):
        if array.dtype.kind == "U":
            array = array.astype(object)
        self.initializers.append(numpy_helper.from_array(array, name))

    def model(self, inputs, outputs, opset, doc, metadata=None):
        """The checked ``onnx.ModelProto``. ``inputs`` and ``outputs`` are (name, dtype,
        shape) with None for a free dimension; ``metadata`` a dict stored as JSON strings
        in the model's metadata_props."""
        def info(name, dtype, shape):
            return helper.make_tensor_value_info(name, tensor_type(dtype), shape)

        graph = helper.make_graph(self.nodes, "fastnn", [info(*i) for i in inputs], [info(*o) for o in outputs],
                                  initializer=self.initializers, doc_string=doc)
        opset_ids = [helper.make_opsetid("", opset)]
        # The oldest IR version that carries this opset: runtimes older than the onnx
        # package that writes the file can still load it.
        model = helper.make_model(graph, opset_imports=opset_ids, producer_name="fastnn",
                                  producer_version=__version__, ir_version=helper.find_min_ir_version_for(opset_ids))
        for key, value in (metadata or {}).items():
            model.metadata_props.add(key=key, value=json.dumps(value))
        onnx.checker.check_model(model, full_check=True)
        return model


def activate(g, Z, activation, alpha, dtype, hint):
    """The activation of pre-activations ``Z``, as fastnn's kernels compute it."""
    if activation == "identity":
        return Z
    if activation == "softmax":
        return g.op("Softmax", [Z], hint, axis=1)  # one row per sample: the same under every opset's definition
    if activation in _ELEMENTWISE:
        return g.op(_ELEMENTWISE[activation], [Z], hint)
    zero = g.const(np.zeros((), dtype), "zero")
    alpha_ = g.const(np.asarray(alpha, dtype), "alpha")
    if activation == "leaky_relu":  # z if z > 0 else alpha z
        negative = g.op("Mul", [alpha_, Z], "leaky")
    elif activation == "elu":  # z if z > 0 else alpha (e^z - 1); min(z, 0) keeps exp finite
        expz = g.op("Exp", [g.op("Min", [Z, zero], "negative_part")], "exp")
        negative = g.op("Mul", [alpha_, g.op("Sub", [expz, g.const(np.ones((), dtype), "one")], "expm1")], "elu")
    else:
        raise ValueError(f"no ONNX form for activation {activation!r}")
    return g.op("Where", [g.op("Greater", [Z, zero], "positive"), Z, negative], hint)


def forward(g, X, net):
    """Emit the layers of ``net`` on input ``X`` (already of ``net.dtype``); return the
    name of the output activations (n, d_out)."""
    last = len(net.weights) - 1
    A = X
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        W = np.asarray(W, dtype=net.dtype)
        b = np.asarray(b, dtype=net.dtype).reshape(-1)
        Z = g.op("Gemm", [A, g.const(W, f"W{l}"), g.const(b, f"b{l}")], f"Z{l}")
        A = activate(g, Z, net.activation if l < last else net.output_activation, net.alpha, net.dtype, f"A{l}")
    return A


def label_values(classes):
    """Class labels as an ONNX tensor can hold them: integers, booleans and whole-number
    floats as int64 (as skl2onnx does), text as str, other numbers as float64."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "biu":
        return classes.astype(np.int64)
    if classes.dtype.kind == "f":
        whole = np.isfinite(classes).all() and np.array_equal(classes.astype(np.int64), classes)
        return classes.astype(np.int64) if whole else classes.astype(np.float64)
    if all(isinstance(c, str) for c in classes.ravel()):
        return classes.astype(str)
    raise TypeError(f"class labels must be numbers or strings to be exported to ONNX; got {classes.tolist()!r}")


def labels_at(g, index, labels, output=None):
    """``labels[index]``: the label of each row, from int64 indices (n,)."""
    return g.op("Gather", [g.const(labels, "classes"), index], "label", output=output, axis=0)


def flat(g, name, output=None):
    """(n, 1) -> (n,)."""
    return g.op("Reshape", [name, g.const(np.array([-1], dtype=np.int64), "flat_shape")], "flat", output=output)
