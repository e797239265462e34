"""Integer codes shared by the kernels and the Python layer that selects them.

Numba specialises on types, not values: passing a code (an int) instead of a
function keeps one compiled signature for every activation, loss and optimizer.
"""

# activations (hidden and output)
IDENTITY = 0
SIGMOID = 1
TANH = 2
RELU = 3
LEAKY_RELU = 4
ELU = 5
SOFTMAX = 6  # output layer only

# losses
MSE = 0  # mean over samples and outputs of (a - y)^2
LOG_LOSS = 1  # binary cross-entropy, mean over samples and outputs
CATEGORICAL_CROSSENTROPY = 2  # mean over samples of -sum_k y_k log p_k

# optimizers (update rules over the flat parameter buffer)
SGD = 0
MOMENTUM = 1
NESTEROV = 2
ADAM = 3

# scikit-learn's conventions (fastnn.sklearn). Each of its losses is paired with its
# canonical link, so the output delta is always A - Y (times the sample weight).
EXP = 7  # output activation of the poisson loss (log link); output layer only
SK_SQUARED_ERROR = 10  # 0.5 * mean over samples and outputs of (a - y)^2
SK_POISSON = 11  # half Poisson deviance: mean over samples, sum over outputs
SK_BINARY_LOG_LOSS = 12  # sigmoid cross-entropy: mean over samples, sum over outputs
SK_LOG_LOSS = 13  # softmax cross-entropy: mean over samples of -sum_k y_k log p_k

# How a guarded epoch ended (kernels/guard.py; the last value fit_epoch and split_run return):
# every batch done, stopped before a batch when asked, or stopped before a non-finite update.
COMPLETE, STOPPED, DIVERGED = 0, 1, 2
