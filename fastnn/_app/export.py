"""``fastnn export MODEL OUT.onnx``: a model file as an ONNX model.

A file written by ``fastnn train --save`` holds, besides the network, the command line's
preprocessing and labels (its metadata). The ONNX model takes them in, so that it takes
what ``fastnn predict`` reads and gives what it prints:

    input   X (n, d) float64      the raw feature columns, in the order of the model's
                                  'features' (stored in the ONNX metadata too)
    graph   (X - mean) / scale in float64, as ``fastnn predict``; cast to the network's
            dtype; the network
    output  classification: label (n,) the class labels as in the training data (string,
            int64 or float64) and probabilities (n, n_classes) of the network's dtype;
            regression: prediction (n,) float64, in the target's units
            (output * y_scale + y_mean).

Any other fastnn model file (``fastnn.save``) is exported as ``fastnn.to_onnx`` exports
the network itself.
"""
import numpy as np

from .args import CLIError

MISSING_ONNX = ("fastnn export needs the 'onnx' package, which is not installed; "
                "install fastnn's ONNX extra: pip install 'fastnn[onnx]'")


def to_onnx(model, meta, opset):
    """The ``onnx.ModelProto`` of ``model``; ``meta``: the command line's metadata, or None."""
    try:
        import onnx

        from .. import _onnx_graph as graph
    except ImportError:
        raise CLIError(MISSING_ONNX) from None
    if meta is None:
        from ..onnx import to_onnx as network_to_onnx

        return network_to_onnx(model, opset=opset)
    opset = graph.check_opset(opset, onnx.defs.onnx_opset_version())
    g = graph.ModelGraph()
    mean, scale = (np.asarray(meta[k], dtype=np.float64) for k in ("mean", "scale"))
    X = g.op("Div", [g.op("Sub", ["X", g.const(mean, "mean")], "centred"), g.const(scale, "scale")], "standardised")
    out = graph.forward(g, g.cast(X, np.float64, model.dtype), graph.tutorial_network(model))
    if meta["task"] == "classification":
        labels = np.asarray(meta["classes"])  # as they were in the training data (JSON: str, int or float)
        graph.labels_at(g, g.op("ArgMax", [out], "argmax", axis=1, keepdims=0), labels, output="label")
        g.op("Identity", [out], "probabilities", output="probabilities")
        outputs = [("label", labels.dtype, [None]), ("probabilities", model.dtype, [None, len(labels)])]
    else:
        y = g.cast(graph.flat(g, out), model.dtype, np.float64)
        scaled = g.op("Mul", [y, g.const(np.float64(meta["y_scale"]), "y_scale")], "scaled")
        g.op("Add", [scaled, g.const(np.float64(meta["y_mean"]), "y_mean")], "prediction", output="prediction")
        outputs = [("prediction", np.float64, [None])]
    doc = (f"fastnn train --save model ({meta['task']} of {meta.get('target')!r}): input X holds the raw features "
           f"{', '.join(meta['features'])}, in that order")
    keep = {k: meta.get(k) for k in ("task", "target", "features", "classes")}
    return g.model([("X", np.float64, [None, model.input_size])], outputs, opset, doc, metadata=keep)


def describe(proto):
    """One line: the model's inputs and outputs with their element types and shapes."""
    import onnx

    def tensor(v):
        t = v.type.tensor_type
        dims = ", ".join(d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "n") for d in t.shape.dim)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        return f"{v.name} ({dims}) {'string' if dtype == object else dtype.name}"

    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    return (f"ONNX opset {opset}; input {', '.join(tensor(v) for v in proto.graph.input)}; "
            f"output {', '.join(tensor(v) for v in proto.graph.output)}")
