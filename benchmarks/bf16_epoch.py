"""Epoch time of a dense classifier, fastnn float32 and bfloat16 against PyTorch float32 and
PyTorch autocast bfloat16 (fused Adam), in one process, alternating epoch by epoch with
0.5 s pauses (idle thread pools stop spinning) after one warm-up epoch each. PyTorch is a
benchmark peer only (not a dependency): install it to run this.

    python benchmarks/bf16_epoch.py 784-1024-1024-10 20000 7 [threads]

Prints a Markdown table (median and minimum seconds per epoch, training accuracy) and each
epoch as it ends (stderr). Numbers: docs/performance.md, "Mixed precision: bfloat16".
"""
import sys
import time

import numpy as np


def main():
    sizes = [int(s) for s in sys.argv[1].split("-")]; N = int(sys.argv[2]); reps = int(sys.argv[3]); nthr = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    import fastnn, torch
    fastnn.set_num_threads(nthr); torch.set_num_threads(nthr)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, sizes[0])).astype(np.float32)
    y = np.argmax(np.tanh(X @ rng.standard_normal((sizes[0], 64))) @ rng.standard_normal((64, sizes[-1])), axis=1)
    Y = np.eye(sizes[-1], dtype=np.float32)[y]
    LR, B = 1e-3, 256

    def fastnn_runner(cd):
        nn = fastnn.NeuralNetwork(sizes[0], sizes[1:-1], sizes[-1], "categorical_crossentropy", activation="relu", init="he", dtype="float32", seed=0, compute_dtype=cd)
        tr = fastnn.Trainer(nn, "categorical_crossentropy")
        def epoch():
            tr.train(X, Y, None, None, 1, LR, batch_size=B, optimizer="adam")
        def acc():
            return float(np.mean(nn.predict(X) == y))
        return epoch, acc

    def torch_runner(autocast):
        torch.manual_seed(0)
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        model = torch.nn.Sequential(*layers[:-1])
        opt = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        lossf = torch.nn.CrossEntropyLoss()
        g = torch.Generator().manual_seed(0)
        def epoch():
            perm = torch.randperm(N, generator=g)
            for s in range(0, N, B):
                i = perm[s:s + B]
                xb, yb = Xt[i], yt[i]
                opt.zero_grad(set_to_none=True)
                if autocast:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        loss = lossf(model(xb), yb)
                else:
                    loss = lossf(model(xb), yb)
                loss.backward()
                opt.step()
        def acc():
            with torch.no_grad():
                return float((model(Xt).argmax(1) == yt).float().mean())
        return epoch, acc

    runners = {"fastnn f32": fastnn_runner(None), "fastnn bf16": fastnn_runner("bfloat16"),
               "torch f32 fused Adam": torch_runner(False), "torch autocast bf16 fused Adam": torch_runner(True)}
    for name, (ep, _) in runners.items():
        ep()  # warm-up epoch (compile, allocate)
    times = {k: [] for k in runners}
    for r in range(reps):
        for name, (ep, _) in runners.items():
            time.sleep(0.5)  # the previous library's idle workers stop spinning
            t = time.perf_counter(); ep(); times[name].append(time.perf_counter() - t)
            print(f"  {name}: {times[name][-1]:.3f} s", file=sys.stderr, flush=True)
    base = np.median(times["fastnn f32"])
    print(f"# {sys.argv[1]}, {N} rows, batch {B}, Adam lr {LR}, ReLU, {nthr} threads, {reps} timed epochs each (after 1 warm-up), alternating")
    print("| | median s/epoch | vs fastnn f32 | min s/epoch | min vs fastnn f32 | train accuracy after %d epochs | epochs (s) |" % (reps + 1))
    print("|---|---|---|---|---|---|---|")
    bmin = np.min(times["fastnn f32"])
    for name, (ep, acc) in runners.items():
        m = np.median(times[name])
        mn = np.min(times[name])
        print(f"| {name} | {m:.3f} | {m / base:.2f} | {mn:.3f} | {mn / bmin:.2f} | {acc():.4f} | {' '.join('%.3f' % t for t in times[name])} |", flush=True)


if __name__ == "__main__":
    main()
