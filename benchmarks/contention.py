"""fastnn vs the reference on a quiet and on a busy machine, default threads and one thread.

    python benchmarks/contention.py [--repeats 3] [--wide]

Runs ``benchmarks/tutorial_speed.py`` (the tutorial's script and a ReLU + Adam minibatch
fit, with ``--wide`` a wide-layer fit too, fastnn and the reference alternating in one
process) in four conditions: quiet or
busy (another process spinning on one core, started before and stopped after, bounded
by a timeout) x default threads or ``FASTNN_NUM_THREADS=1``. Prints one Markdown table.
"""
import argparse
import contextlib
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPIN = "import time\nend = time.time() + 1800\nwhile time.time() < end:\n    pass\n"  # bounded: 30 min at most


@contextlib.contextmanager
def busy_core(busy=True):
    """Inside the block, another process spinning on one core (bounded by SPIN's timeout),
    or nothing when ``busy`` is False."""
    spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if busy else None
    try:
        yield
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def run(repeats, busy, one_thread, wide=False):
    env = {k: v for k, v in os.environ.items() if k != "FASTNN_NUM_THREADS"}
    if one_thread:
        env["FASTNN_NUM_THREADS"] = "1"
    with busy_core(busy):
        command = [sys.executable, str(HERE / "tutorial_speed.py"), "--repeats", str(repeats)] + ["--wide"] * wide
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ") and "workload" not in line]
    return [[cell.strip() for cell in row] for row in rows]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wide", action="store_true", help="add tutorial_speed.py's wide workload")
    args = parser.parse_args(argv)
    print("| condition | workload | fastnn s | reference s | speed-up |")
    print("|---|---|---|---|---|")
    for busy in (False, True):
        for one_thread in (False, True):
            condition = f"{'busy' if busy else 'quiet'}, {'FASTNN_NUM_THREADS=1' if one_thread else 'default threads'}"
            for workload, fastnn_s, reference_s, speedup, _ in run(args.repeats, busy, one_thread, args.wide):
                print(f"| {condition} | {workload} | {fastnn_s} | {reference_s} | {speedup} |", flush=True)


if __name__ == "__main__":
    main()
