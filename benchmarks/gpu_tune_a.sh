#!/usr/bin/env bash
# Device call A: compile every config of every spec in 15 parallel shards while the test suite runs
# natively on the GPU, then tune tq4 and write its H100 table.
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
OUT=${OUT:-/tmp/kernelgen-out}; mkdir -p "$OUT"
for i in $(seq 0 14); do
  python3 -m kernelgen.cli tune tq4 tq3 tq2 --compile-only --shard $i/15 > "$OUT/compile-$i.log" 2>&1 &
done
KERNELGEN_AUTOTUNE=0 timeout 330 python3 -m pytest -q -p no:cacheprovider 2>&1 | tee "$OUT/pytest.txt" | tail -4
wait
cat "$OUT"/compile-*.log | grep -v '^$' | sort | uniq -c | head; rm -f "$OUT"/compile-*.log
python3 -m kernelgen.cli tune tq4 2>&1 | tail -3
cp generated/tq4/tuned/*.json "$OUT/"
