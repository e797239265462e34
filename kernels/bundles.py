"""The values the epoch kernels take, each a named tuple of the arguments that travel
together (Numba passes a tuple by value: unpacking it costs nothing).

One set for both faces: the tutorial's and scikit-learn's fits differ only in the
objective they state (and in the data they bring). Scalars are Python ints and floats (int64
and float64 in Numba); anything else would be another compiled signature.
"""
from collections import namedtuple

# The training rows. X (N, d_0) dense, or CSR parts (data, indices, indptr) with a
# (0, 0) X: ``indptr.size > 0`` selects CSR. Y (N, d_L) targets; sw (N,) sample weights,
# or empty for unit weights.
Data = namedtuple("Data", "X data indices indptr Y sw")

# The network: flat parameters theta (W_0, b_0, W_1, ...; kernels/network.py), layer sizes
# (L + 1,) int64, activation codes (L,) int64 (the last one the output's) and the slope or
# scale ``alpha`` of leaky ReLU / ELU.
Net = namedtuple("Net", "theta sizes act_codes alpha")

# What a batch minimises and what is reported. ``loss_code`` is trained; ``metric_code`` is
# the loss reported (the tutorial may report another one); ``acc_kind`` what
# losses.count_correct counts; ``clip_eps`` clips probabilities inside logs. L2: a batch
# with weight sum s (its rows, for unit weights) minimises
#     metric / s + 0.5 l2 sum(W^2) + 0.5 l2_summed sum(W^2) / s,
# the tutorial's ``l2`` on the mean loss, scikit-learn's ``alpha`` as ``l2_summed``.
# The two faces' losses are two types with the same fields: the tutorial's codes.MSE...
# (means, losses.loss_sum) and scikit-learn's codes.SK_* (each with its canonical link,
# losses.sk_loss_sum). The type picks the family when a kernel is compiled, so a fit
# compiles its own face's losses only (losses.batch_loss).
OBJECTIVE_FIELDS = "loss_code metric_code acc_kind clip_eps l2 l2_summed"
TutorialObjective = namedtuple("TutorialObjective", OBJECTIVE_FIELDS)
SklearnObjective = namedtuple("SklearnObjective", OBJECTIVE_FIELDS)

# An optimizer (codes.SGD...ADAM, kernels/optimizers.py) with its state: m, v (p,) modified
# in place, and t, the number of updates done before this call.
Optimizer = namedtuple("Optimizer", "code m v t lr mu beta1 beta2 eps")

# Inverted dropout of the hidden layers (kernels/dropout.py): thresholds (L - 1,) int64 and
# the mask stream (key, counter), uint64.
Dropout = namedtuple("Dropout", "thresholds key counter")

# Scratch for batches of up to b rows: Xb (b d_0,), Yb (b d_L,), swb (b,); acts, deltas
# (b sum(d_1..d_L),); gates (b sum(d_1..d_{L-1}),) with dropout, else empty; grad (p,);
# check (3 C,), kernels/guard.py's full check of an update, C elements at a time (read only
# by a guarded epoch; None elsewhere).
Scratch = namedtuple("Scratch", "Xb Yb swb acts deltas gates grad check", defaults=(None,))

