"""fastnn: fast dense neural networks on the CPU, with Numba kernels.

``NeuralNetwork`` and ``Trainer`` are drop-ins for the "math behind neural networks"
tutorial's classes; ``fastnn.reference`` holds the same API in plain NumPy.
"""
from .errors import DivergenceError
from .network import NeuralNetwork
from .optimizers import SGD, Adam
from .trainer import Trainer

__version__ = "0.1.0"
__all__ = ["NeuralNetwork", "Trainer", "SGD", "Adam", "DivergenceError", "__version__"]
