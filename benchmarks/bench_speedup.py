"""How many times faster fastnn trains than the NumPy reference: ratios of median epoch
times measured in one process (interleaved, both warm), so machine load and asv's
process-to-process noise cancel out of the ratio.
"""
from .common import (
    BATCH_SIZES, DTYPES, QUICK, WIDE_FEATURES, WIDTHS,
    build, digits, fix_threads, skip_if_too_slow, speedup, train_epochs, wide,
)


class SpeedupVsReference:
    """One epoch of Adam on 784 -> width -> 10 (ReLU) over the 2048 wide rows."""

    params = (WIDTHS, BATCH_SIZES, DTYPES)
    param_names = ["width", "batch_size", "dtype"]
    unit = "x"
    rounds = 1  # the value is already a median of SPEEDUP_REPEATS interleaved epochs
    timeout = 900

    def setup(self, width, batch_size, dtype):
        skip_if_too_slow("reference", width, batch_size)
        fix_threads()
        X, Y = wide(dtype)
        self.runs = {}
        for implementation in ("reference", "fastnn"):
            _, trainer = build(implementation, WIDE_FEATURES, width, dtype)
            self.runs[implementation] = lambda trainer=trainer: train_epochs(trainer, X, Y, batch_size)
            self.runs[implementation]()  # warm-up

    def track_speedup_vs_reference(self, width, batch_size, dtype):
        return speedup(self.runs["reference"], self.runs["fastnn"])


# The workloads of the "Performance" comparison (`python -m fastnn bench`: Adam, ReLU,
# He init, seed 0), at the row counts of its default quick mode (M and L on 1/8 of their
# rows: the GEMM shapes of a step are the full run's, an epoch has fewer steps). With
# FASTNN_ASV_THREADS=N these ratios are comparable to `python -m fastnn bench --threads N`.
WORKLOADS = {
    #     data,                            hidden,        batch
    "S": ("digits",                        [64],          32),
    "M": (("wide", 2500, WIDE_FEATURES),   [1024, 1024],  256),
    "L": (("wide", 512, WIDE_FEATURES),    [4096, 4096],  256),
}


class SpeedupWorkloads:
    """S: digits 64-64-10, batch 32 (1437 rows); M: 784-1024-1024-10, batch 256 (2500
    rows); L: 784-4096-4096-10, batch 256 (512 rows)."""

    params = (["S"] if QUICK else list(WORKLOADS), DTYPES)
    param_names = ["workload", "dtype"]
    unit = "x"
    rounds = 1
    timeout = 1200

    def setup(self, workload, dtype):
        fix_threads()
        data, hidden, batch_size = WORKLOADS[workload]
        if data == "digits":
            X, Y = digits(dtype)[:2]
        else:
            _, rows, features = data
            X, Y = wide(dtype, rows, features)
        self.runs = {}
        for implementation in ("reference", "fastnn"):
            _, trainer = build(implementation, X.shape[1], hidden, dtype)
            self.runs[implementation] = lambda trainer=trainer: train_epochs(trainer, X, Y, batch_size)
            self.runs[implementation]()  # warm-up

    def track_speedup_workload(self, workload, dtype):
        return speedup(self.runs["reference"], self.runs["fastnn"])
