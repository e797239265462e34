"""Profile the S workload's epochs with `perf`, the compiled kernels named in its report.

    python benchmarks/perf_jit.py --epochs 8000 --record perf.data
    perf report -i perf.data --no-children --sort symbol

perf names the code of shared libraries (OpenBLAS, libm, Python) but not Numba's: machine
code made at run time. perf reads such names from /tmp/perf-<pid>.map, which this script
writes: it compiles the kernels in this process (into a private, temporary cache: code
loaded from a cache keeps no names), then lists every compiled function's address, and
only then trains (one call of ``--epochs`` epochs, digits-sized data: 64-64-10 ReLU, Adam,
batch 32, float32), with ``perf record`` attached for the training alone when ``--record``
names its output. A function inlined into another is counted in its caller.
"""
import argparse
import os
import signal
import subprocess
import tempfile
import time

import numpy as np

def compiled_functions():
    """{address: name} of every function in the code libraries Numba compiled in this process."""
    import gc

    from numba.core.codegen import CPUCodeLibrary

    def is_library(obj):
        try:
            return isinstance(obj, CPUCodeLibrary)
        except ReferenceError:  # a weakref.proxy whose object is gone
            return False

    found = {}
    for library in (obj for obj in gc.get_objects() if is_library(obj)):
        module = getattr(library, "_final_module", None)
        if module is None:
            continue
        for function in module.functions:
            if not function.is_declaration:
                address = library._codegen._engine.get_function_address(function.name)
                if address:
                    found[address] = function.name
    return found


def write_perf_map(functions):
    """/tmp/perf-<pid>.map: each function runs up to the next one's address."""
    addresses = sorted(functions)
    path = f"/tmp/perf-{os.getpid()}.map"
    with open(path, "w") as out:
        for start, end in zip(addresses, addresses[1:] + [addresses[-1] + 4096]):
            out.write(f"{start:x} {min(end - start, 1 << 20):x} {functions[start]}\n")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8000, help="epochs of the profiled training call")
    parser.add_argument("--record", metavar="FILE", help="run `perf record -o FILE` on the training call")
    args = parser.parse_args(argv)
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="fastnn-perf-")  # before numba reads its config
    import warnings

    from fastnn import NeuralNetwork, Trainer

    rng = np.random.default_rng(0)
    X = rng.standard_normal((1437, 64)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 1437)]
    model = NeuralNetwork(64, [64], 10, "categorical_crossentropy", activation="relu", init="he",
                          dtype=np.float32, seed=0)
    trainer = Trainer(model, "categorical_crossentropy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the compile is the point here
        trainer.train(X, y, None, None, 1, 1e-3, batch_size=32, optimizer="adam")
    print(f"perf map: {write_perf_map(compiled_functions())}")
    perf = None
    if args.record:
        perf = subprocess.Popen(["perf", "record", "-q", "-p", str(os.getpid()), "-o", args.record])
        time.sleep(1.0)  # attached
    start = time.perf_counter()
    trainer.train(X, y, None, None, args.epochs, 1e-3, batch_size=32, optimizer="adam")
    print(f"{(time.perf_counter() - start) / args.epochs * 1e6:.1f} us per epoch over {args.epochs} epochs")
    if perf is not None:
        perf.send_signal(signal.SIGINT)
        perf.wait()
        print(f"perf report -i {args.record} --no-children --sort symbol")


if __name__ == "__main__":
    main()
