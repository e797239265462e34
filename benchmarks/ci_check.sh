#!/usr/bin/env bash
# CI check of the asv suite: it imports, its benchmarks are well formed, and every one
# of them runs once, without error, on the reduced grid (FASTNN_ASV_QUICK=1), in the
# current interpreter against the working tree. Nothing is saved (--dry-run).
# Expects fastnn installed in this interpreter (.ci/run does `pip install -e .`);
# installs asv if it is missing. Exits non-zero on any failed benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python -c "import asv" 2>/dev/null; then
    python -m pip install "asv==0.6.6" >/dev/null
fi
export FASTNN_ASV_QUICK=1

python -m asv machine --yes >/dev/null
python -m asv check --python=same

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
python -m asv run --python=same --quick --dry-run --show-stderr --durations=5 2>&1 | tee "$log" || status=$?

# asv 0.6.6 exits 2 when a benchmark fails; the grep also catches failures that a
# future asv might report with exit status 0 (a failed parameter combination prints
# "failed" in its cell, a failed benchmark "failed" after its name).
if [ "$status" -ne 0 ] || grep -qE '(^|[[:space:]])failed([[:space:]]|$)|Traceback' "$log"; then
    echo "asv quick run: a benchmark failed (exit status $status); see the log above." >&2
    exit 1
fi
if ! grep -q 'Running [1-9][0-9]* total benchmarks' "$log"; then
    echo "asv quick run: no benchmark ran." >&2
    exit 1
fi
echo "asv quick run: all benchmarks ran without error."
