"""What the command line's commands share: the error type, the parser, argument types and
the training flags (``train`` and ``demo``)."""
import argparse

import numpy as np

ACTIVATIONS = ("relu", "leaky_relu", "elu", "tanh", "sigmoid", "identity")
OPTIMIZERS = ("adam", "sgd", "momentum", "nesterov", "gd")


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit status 2)."""

    def error(self, message):
        sub = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        hint = f" (see 'fastnn {sub + ' ' if sub else ''}--help')"
        self.exit(2, f"fastnn: error: {message}{hint}\n")


# -- argument types ------------------------------------------------------------------------
def hidden_sizes(text: str) -> list[int]:
    """'256,128' -> [256, 128]: comma-separated positive integers."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers such as 256,128; got {text!r}")
    return sizes


def _argument(text, convert, valid, expected):
    """``convert(text)`` when it parses and is ``valid``, else argparse's error naming
    what was ``expected``."""
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not valid(value):
        raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _argument(text, int, lambda v: v >= 1, "a positive integer")


def positive_float(text: str) -> float:
    return _argument(text, float, lambda v: np.isfinite(v) and v > 0, "a positive number")


def fraction(text: str) -> float:
    return _argument(text, float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def default_init(activation: str) -> str:
    """He-normal for the ReLU family, Glorot otherwise (the usual pairing)."""
    return "he" if activation in ("relu", "leaky_relu", "elu") else "glorot"


def add_training_arguments(p, *, hidden="64,64", epochs=50, batch_size=32, lr=1e-3, dtype="float32"):
    p.add_argument("--hidden", type=hidden_sizes, default=hidden_sizes(hidden), metavar="N[,N...]",
                   help=f"hidden layer widths, comma-separated (default {hidden})")
    p.add_argument("--activation", choices=ACTIVATIONS, default="relu", help="hidden activation (default relu)")
    p.add_argument("--init", choices=("auto", "normal", "glorot", "he"), default="auto",
                   help="weight initialisation (default auto: he for the ReLU family, glorot otherwise)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="default adam")
    p.add_argument("--epochs", type=positive_int, default=epochs, help=f"default {epochs}")
    p.add_argument("--batch-size", type=positive_int, default=batch_size, help=f"default {batch_size}")
    p.add_argument("--lr", type=positive_float, default=lr, help=f"learning rate (default {lr:g})")
    p.add_argument("--dtype", choices=("float32", "float64"), default=dtype, help=f"default {dtype}")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, split and shuffling (default 0)")
