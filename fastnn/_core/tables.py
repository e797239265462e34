"""Names users type -> the integer codes the kernels take. One table per idea."""
from ..kernels import codes

ACTIVATIONS = {
    "identity": codes.IDENTITY,
    "sigmoid": codes.SIGMOID,
    "tanh": codes.TANH,
    "relu": codes.RELU,
    "leaky_relu": codes.LEAKY_RELU,
    "elu": codes.ELU,
}
OUTPUT_ACTIVATIONS = {
    "identity": codes.IDENTITY,
    "sigmoid": codes.SIGMOID,
    "softmax": codes.SOFTMAX,
}
LOSSES = {
    "mse": codes.MSE,
    "log_loss": codes.LOG_LOSS,
    "categorical_crossentropy": codes.CATEGORICAL_CROSSENTROPY,
}
# The output activation each loss gets by default (the tutorial's rule: softmax for
# categorical cross-entropy, sigmoid otherwise) and the ones it accepts.
DEFAULT_OUTPUT = {"mse": "sigmoid", "log_loss": "sigmoid", "categorical_crossentropy": "softmax"}
ALLOWED_OUTPUTS = {
    "mse": ("identity", "sigmoid", "softmax"),
    "log_loss": ("sigmoid",),
    "categorical_crossentropy": ("softmax",),
}
# Default slope/scale of the negative part: Keras's and PyTorch's choices.
DEFAULT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}
INITS = ("normal", "glorot", "he")
DTYPES = ("float32", "float64")
