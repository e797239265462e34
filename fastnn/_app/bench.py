"""Time fastnn against the NumPy reference, scikit-learn, and PyTorch / JAX when installed.

Workloads (Adam, ReLU hidden layers, softmax + cross-entropy):
  S  digits (1437 training rows), 64 -> 64 -> 10, batch 32
  M  20000 x 784 synthetic, 784 -> 1024 -> 1024 -> 10, batch 256
  L  4096 x 784 synthetic, 784 -> 4096 -> 4096 -> 10, batch 256
``--quick`` (the default) trains M and L on 1/8 of their rows, so the GEMM shapes of a
step are those of the full run but an epoch has fewer steps; ``--full`` uses the real
sizes; ``--scale F`` any fraction. Per implementation: one warm-up epoch (compilation
excluded), then ``--repeats`` timed epochs: median [min-max] seconds per epoch.
``--compute-dtype bfloat16``: fastnn's products in bfloat16, beside PyTorch with autocast.
The GEMM floor is an epoch of the same steps' GEMMs alone with numpy's ``np.dot`` (forward,
weight gradients, input gradients but the first layer's): nothing does the same work
faster without a faster GEMM. One is timed beside each timed epoch (before it, then after
the next), so both see the machine's state of the moment: "x GEMM floor" is the median of
the epochs' ratios to their floors. GFLOP/s counts 2 n d_in d_out per GEMM.
"peak RSS +MiB" is the largest increase of the process's resident set size over its value
just before the implementation's model is built, while it builds, runs its warm-up and its
timed epochs (sampled every ~1 ms from /proc/self/statm; "n/a" where that file is absent).
It is the whole process's growth, so the first fastnn run also counts loading (or, on a
cold cache, compiling) its Numba kernels, and every run the BLAS buffers it first touches.
Under the table, fastnn's figure per workload beside the performance issue's bound:
dataset + 4x parameters + 3x one batch's activations + 64 MiB.
"""
import argparse
import contextlib
import math
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

from .memory import STATM, PeakRSS, fmt_mib, lifetime_peak_rss, release_free_memory, rss_bound

IMPLEMENTATIONS = ("fastnn", "reference", "sklearn", "torch", "jax")
LR = 1e-3


@dataclass(frozen=True)
class Workload:
    name: str
    n: int
    sizes: tuple
    batch: int

    def label(self):
        return f"{self.name}: {self.n}x{self.sizes[0]}, {'->'.join(map(str, self.sizes))}, batch {self.batch}"


def workloads(scale, names):
    """The S, M, L workloads with M and L's row counts multiplied by ``scale``."""
    rows = lambda full: max(256, int(round(full * scale)))  # noqa: E731 - at least one full batch
    table = {
        "S": Workload("S", 1437, (64, 64, 10), 32),
        "M": Workload("M", rows(20000), (784, 1024, 1024, 10), 256),
        "L": Workload("L", rows(4096), (784, 4096, 4096, 10), 256),
    }
    return [table[n] for n in names]


def make_data(w, dtype):
    """(X, y) for a workload: the digits training split for S, a seeded synthetic task otherwise."""
    if w.name == "S":
        from .demo import load_data

        X, _, y, _ = load_data()
        return np.ascontiguousarray(X, dtype=dtype), y.astype(np.int64)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((w.n, w.sizes[0]), dtype=np.float32).astype(dtype)
    teacher = rng.standard_normal((w.sizes[0], w.sizes[-1])).astype(dtype)
    return X, np.argmax(X @ teacher, axis=1).astype(np.int64)  # learnable labels


# -- arithmetic and the GEMM floor -----------------------------------------------------------
def gemm_shapes(sizes, n):
    """(kind, m, k, p) of one training step's GEMMs on a batch of n rows: (m, k) @ (k, p)."""
    shapes = []
    for layer, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes.append(("forward", n, d_in, d_out))  # A (n, d_in) @ W
        shapes.append(("weight_grad", d_in, n, d_out))  # A.T @ dZ (n, d_out)
        if layer > 0:  # no gradient with respect to the input data
            shapes.append(("input_grad", n, d_out, d_in))  # dZ @ W.T
    return shapes


def batch_sizes(w):
    full, rest = divmod(w.n, w.batch)
    return [w.batch] * full + ([rest] if rest else [])


def epoch_flops(w):
    return sum(2 * m * k * p for n in batch_sizes(w) for _, m, k, p in gemm_shapes(w.sizes, n))


def floor_runner(w, dtype):
    """A function that runs one epoch's GEMMs with ``np.dot`` alone: each step's, at its
    exact shapes, in the epoch's order (operands laid out as the kernels hold them:
    C-contiguous buffers and .T views)."""
    rng = np.random.default_rng(1)
    rand = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    ops = {}
    for n in set(batch_sizes(w)):
        ops[n] = []
        for kind, m, k, p in gemm_shapes(w.sizes, n):
            if kind == "forward":
                a, b = rand(m, k), rand(k, p)
            elif kind == "weight_grad":
                a, b = rand(k, m).T, rand(k, p)
            else:
                a, b = rand(m, k), rand(p, k).T
            ops[n].append((a, b, np.empty((m, p), dtype=dtype)))
    steps = [ops[n] for n in batch_sizes(w)]

    def run_epoch():
        for step in steps:
            for a, b, c in step:
                np.dot(a, b, out=c)

    return run_epoch


# -- one runner per implementation: run_epoch() trains one epoch ----------------------------
def _fastnn_runner(module, w, X, y, dtype, compute_dtype=None, optimizer="adam"):
    model = module.NeuralNetwork(w.sizes[0], list(w.sizes[1:-1]), w.sizes[-1], "categorical_crossentropy",
                                 activation="relu", init="he", dtype=dtype, seed=0, compute_dtype=compute_dtype)
    trainer = module.Trainer(model, "categorical_crossentropy")
    return lambda: trainer.train(X, y, None, None, 1, LR, batch_size=w.batch, optimizer=optimizer)


def _sklearn_runner(w, X, y, dtype):
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=w.sizes[1:-1], activation="relu", solver="adam", batch_size=w.batch,
                        learning_rate_init=LR, max_iter=1, shuffle=True, random_state=0, tol=0.0)
    classes = np.arange(w.sizes[-1])

    def run_epoch():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.partial_fit(X, y, classes=classes)  # one epoch over X per call

    return run_epoch


def _torch_runner(w, X, y, dtype, threads, autocast=False):
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    tdtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    layers = []
    for i, (d_in, d_out) in enumerate(zip(w.sizes[:-1], w.sizes[1:])):
        layers.append(torch.nn.Linear(d_in, d_out, dtype=tdtype))
        if i < len(w.sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    try:  # the fused Adam is PyTorch's fastest (CPU support since 2.4): M 1.4x faster than the default
        opt = torch.optim.Adam(net.parameters(), lr=LR, fused=True)
    except (RuntimeError, TypeError, ValueError):
        opt = torch.optim.Adam(net.parameters(), lr=LR)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(0)
    # "torch-autocast": the forward pass (and so its products) in bfloat16, as PyTorch advises.
    precision = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if autocast else contextlib.nullcontext

    def run_epoch():
        order = torch.randperm(w.n, generator=gen)
        for start in range(0, w.n, w.batch):
            rows = order[start : start + w.batch]
            opt.zero_grad(set_to_none=True)
            with precision():
                loss = torch.nn.functional.cross_entropy(net(Xt[rows]), yt[rows])
            loss.backward()
            opt.step()

    return run_epoch


def _jax_runner(w, X, y, dtype):
    import jax
    import jax.numpy as jnp

    if np.dtype(dtype) == np.float64:
        jax.config.update("jax_enable_x64", True)
    key = jax.random.PRNGKey(0)
    params = []
    for d_in, d_out in zip(w.sizes[:-1], w.sizes[1:]):
        key, sub = jax.random.split(key)
        params.append((jax.random.normal(sub, (d_in, d_out), dtype) * math.sqrt(2 / d_in), jnp.zeros(d_out, dtype)))

    def loss(p, Xb, yb):
        A = Xb
        for W, b in p[:-1]:
            A = jax.nn.relu(A @ W + b)
        logits = A @ p[-1][0] + p[-1][1]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), yb[:, None], axis=1))

    @jax.jit
    def epoch(state, Xs, ys):  # whole epoch as one compiled scan over full batches
        def step(carry, batch):
            p, m, v, t = carry
            g = jax.grad(loss)(p, *batch)
            t = t + 1
            m = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
            v = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
            lr_t = LR * jnp.sqrt(1 - 0.999**t) / (1 - 0.9**t)
            p = jax.tree_util.tree_map(lambda p, m, v: p - lr_t * m / (jnp.sqrt(v) + 1e-8), p, m, v)
            return (p, m, v, t), None

        return jax.lax.scan(step, state, (Xs, ys))[0]

    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    state = [(params, zeros, zeros, jnp.asarray(0.0, dtype))]
    steps = w.n // w.batch  # full batches only (scan needs equal shapes)
    rng = np.random.default_rng(0)

    def run_epoch():
        rows = rng.permutation(w.n)[: steps * w.batch]
        Xs = jnp.asarray(X[rows].reshape(steps, w.batch, -1))
        ys = jnp.asarray(y[rows].reshape(steps, w.batch))
        state[0] = epoch(state[0], Xs, ys)
        jax.block_until_ready(state[0])

    return run_epoch


def make_runner(impl, w, X, y, dtype, threads, compute_dtype=None):
    """A function that trains one epoch, or raises ImportError when ``impl`` is not installed."""
    import fastnn
    from .. import reference

    if impl == "fastnn":
        return _fastnn_runner(fastnn, w, X, y, dtype, compute_dtype)
    if impl == "reference":
        return _fastnn_runner(reference, w, X, y, dtype, compute_dtype)
    if impl == "sklearn":
        return _sklearn_runner(w, X, y, dtype)
    if impl in ("torch", "torch-autocast"):
        return _torch_runner(w, X, y, dtype, threads, autocast=impl == "torch-autocast")
    return _jax_runner(w, X, y, dtype)


def time_epochs(run_epoch, repeats, after_warmup=None, floor=None):
    """(warm-up seconds, timed epoch seconds, floor epoch seconds). ``after_warmup``, when
    given, runs one more untimed epoch and is then called before the timed ones
    (``bench_workload`` ends its RSS sampling there). ``floor``, when given (``floor_runner``),
    is timed beside each timed epoch: before it, then after the next, alternately."""
    start = time.perf_counter()
    run_epoch()
    warmup = time.perf_counter() - start
    if after_warmup is not None:
        run_epoch()  # a steady-state epoch: what the timed ones allocate shows here too
        after_warmup()
    if floor is not None:
        floor()  # warm-up: its operands' first touch
    times, floors = [], []
    for r in range(repeats):
        for run, out in ((floor, floors), (run_epoch, times))[:: 1 if r % 2 == 0 else -1]:
            if run is not None:
                start = time.perf_counter()
                run()
                out.append(time.perf_counter() - start)
    return warmup, times, floors


# -- report -----------------------------------------------------------------------------------
def fmt_seconds(t):
    return f"{t * 1e3:.3g} ms" if t < 1 else f"{t:.3g} s"


def fmt_range(times):
    lo, med, hi = min(times), float(np.median(times)), max(times)
    unit, k = ("ms", 1e3) if med < 1 else ("s", 1.0)
    return f"{med * k:.3g} [{lo * k:.3g}-{hi * k:.3g}] {unit}"


def bench_workload(w, impls, dtype, repeats, threads, log, compute_dtype=None):
    X, y = make_data(w, dtype)
    floor = floor_runner(w, dtype)  # before the RSS sampling: its operands are not the implementations'
    flops = epoch_flops(w)
    results, notes = {}, []
    for impl in impls:
        release_free_memory()
        # The increase of the whole process: it counts whatever the implementation allocates
        # besides its model and training buffers (framework import caches, Numba's compiler on
        # a first call, the reference's NumPy temporaries), but not X and y, made before.
        # Sampled from before the model is built to the end of two untimed epochs: the
        # sampling thread, waking every millisecond for the GIL, made workload S's timed
        # epochs 10-20% slower when it ran through them.
        rss = PeakRSS().start()
        try:
            run_epoch = make_runner(impl, w, X, y, dtype, threads, compute_dtype)
        except ImportError:
            rss.stop()
            notes.append(f"{impl} not installed")
            continue
        log(f"  {w.name} {impl} ...")
        try:
            warmup, times, floors = time_epochs(run_epoch, repeats, after_warmup=rss.stop, floor=floor)
        except Exception as e:  # noqa: BLE001 - an optional peer failing must not end the run
            if impl in ("fastnn", "reference"):
                raise
            notes.append(f"{impl} failed: {type(e).__name__}: {e}")
            continue
        finally:
            rss.stop()  # already stopped after the warm-up epochs, unless those failed
        results[impl] = (warmup, times, floors, rss.increase)
        del run_epoch
    ref = float(np.median(results["reference"][1])) if "reference" in results else None
    rows = []
    for impl, (warmup, times, floors, rss_increase) in results.items():
        med = float(np.median(times))
        ratio = float(np.median(np.divide(times, floors)))  # each epoch against the floor beside it
        rows.append([w.name, impl, fmt_range(times), f"{flops / med / 1e9:.1f}", f"{ratio:.2f}",
                     f"{ref / med:.1f}x" if ref else "-", fmt_seconds(warmup), fmt_mib(rss_increase)])
    floors = [f for _, _, impl_floors, _ in results.values() for f in impl_floors]
    rows.append([w.name, "GEMM floor (np.dot)", fmt_range(floors), f"{flops / float(np.median(floors)) / 1e9:.1f}",
                 "1.00", "-", "-", "-"])
    memory = None
    if "fastnn" in results:
        peak = results["fastnn"][3]
        memory = (f"fastnn peak RSS {w.name}: {'n/a' if peak is None else fmt_mib(peak) + ' MiB'} "
                  f"(bound {fmt_mib(rss_bound(w, dtype))} MiB: dataset + 4x parameters + 3x batch activations "
                  f"+ 64 MiB)")
    return rows, notes, memory


HEADER = ["workload", "implementation", "time/epoch median [min-max]", "GFLOP/s", "x GEMM floor",
          "speed-up vs reference", "warm-up epoch", "peak RSS +MiB"]


def markdown_table(rows):
    widths = [max(len(str(r[i])) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = ["| " + " | ".join(str(c).ljust(wd) for c, wd in zip(HEADER, widths)) + " |",
             "|" + "|".join("-" * (wd + 2) for wd in widths) + "|"]
    lines += ["| " + " | ".join(str(c).ljust(wd) for c, wd in zip(r, widths)) + " |" for r in rows]
    return "\n".join(lines)


def add_arguments(p):
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="scale", action="store_const", const=0.125,
                      help="M and L on 1/8 of their rows (the default)")
    size.add_argument("--full", dest="scale", action="store_const", const=1.0, help="the real sizes (minutes)")
    size.add_argument("--scale", dest="scale", type=float, metavar="F", help="fraction of M and L's rows")
    p.set_defaults(scale=0.125)
    p.add_argument("--workloads", default="S,M,L", metavar="S,M,L", help="which workloads (default S,M,L)")
    p.add_argument("--impls", default=",".join(IMPLEMENTATIONS), metavar="NAMES",
                   help=f"which implementations (default all installed: {','.join(IMPLEMENTATIONS)})")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="default float32")
    p.add_argument("--repeats", type=int, default=None, metavar="N",
                   help="timed epochs per implementation (default 3, or 5 with --full)")
    p.add_argument("--compute-dtype", choices=("bfloat16",), default=None,
                   help="fastnn's (and the reference's) matrix products in bfloat16 (float32 only; needs fastnn[bf16]); "
                        "adds PyTorch with autocast bfloat16 (torch-autocast) beside torch")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="limit BLAS (threadpoolctl) and Numba threads to N (default: their own defaults)")


def run(args) -> int:
    names = [s.strip().upper() for s in args.workloads.split(",") if s.strip()]
    impls = [s.strip().lower() for s in args.impls.split(",") if s.strip()]
    if args.compute_dtype and "torch" in impls and "torch-autocast" not in impls:
        impls.insert(impls.index("torch") + 1, "torch-autocast")
    known = (*IMPLEMENTATIONS, "torch-autocast")
    bad = [n for n in names if n not in ("S", "M", "L")] + [i for i in impls if i not in known]
    if bad or not names or not impls:
        raise ValueError(f"unknown workload or implementation {', '.join(map(repr, bad)) or '(none given)'}; "
                         f"expected workloads among S, M, L and implementations among {', '.join(IMPLEMENTATIONS)}")
    if not (args.scale and 0 < args.scale <= 1):
        raise ValueError(f"--scale must be in (0, 1]; got {args.scale}")
    repeats = args.repeats or (5 if args.scale == 1.0 else 3)
    if repeats < 1 or (args.threads is not None and args.threads < 1):
        raise ValueError("--repeats and --threads must be positive integers")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    with _thread_limit(args.threads):
        rows, notes, memory = [], [], []
        for w in workloads(args.scale, names):
            log(f"{w.label()} ...")
            r, n, m = bench_workload(w, impls, args.dtype, repeats, args.threads, log, args.compute_dtype)
            rows += r
            notes += [f"{w.name}: {x}" for x in n]
            memory += [m] if m else []
    products = f", products in {args.compute_dtype} (fastnn, reference)" if args.compute_dtype else ""
    print(f"{args.dtype}{products}, Adam, median of {repeats} epochs after 1 warm-up epoch; "
          f"threads: {_thread_summary(args.threads)}")
    print(f"fastnn's matrix products: {'oneDNN bfloat16' if args.compute_dtype else _blas_library()}")
    for w in workloads(args.scale, names):
        print(f"- {w.label()} ({math.ceil(w.n / w.batch)} steps/epoch)")
    print()
    print(markdown_table(rows))
    if memory:
        print()
        print("\n".join(memory))
    if any(r[-1] == "n/a" for r in rows):
        lifetime = lifetime_peak_rss()
        print(f"peak RSS +MiB unavailable: no {STATM} to sample; getrusage gives only the process's lifetime "
              f"peak{'' if lifetime is None else f' ({fmt_mib(lifetime)} MiB)'}, not an increase during one run")
    if notes:
        print()
        print("Not measured: " + "; ".join(dict.fromkeys(notes)))
    return 0


@contextlib.contextmanager
def _thread_limit(threads):
    if threads is None:
        yield
        return
    import numba
    from threadpoolctl import threadpool_limits

    previous = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        numba.set_num_threads(previous)


def _blas_library():
    from .._core import products
    from ..kernels import blas

    return f"{blas.library()}; wide float32 steps: {products.describe()}" if blas.ROUTED else blas.library()


def _thread_summary(threads):
    from threadpoolctl import threadpool_info

    pools = ", ".join(f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info())
    return f"--threads {threads}" if threads else (pools or "default")


def main(argv=None) -> int:
    """``python -m fastnn._app.bench [options]``, also run by ``fastnn bench``."""
    parser = argparse.ArgumentParser(prog="fastnn bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
