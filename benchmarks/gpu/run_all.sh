#!/bin/bash
# Runs on the GPU machine, from a folder holding the CUDA test and benchmark
# binaries, the shared libraries they need and compare.py (see
# docs/PERFORMANCE_CUDA.md for how that folder is made):
#   1. the GPU test suite;
#   2. compute-sanitizer memcheck and racecheck on a few small test cases;
#   3. compare.py (our benchmark binary, PyTorch reference algorithm, dense
#      SDPA), unless QUICK=1 limits it to n = 1M and config B.
# Logs go to $OUT (or /tmp when OUT is unset).
set -u
dir=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp}
export LD_LIBRARY_PATH=$dir:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv
status=0
"$dir/dilated_attention_cuda_test" --gtest_brief=1 2>&1 | tee "$out/tests.log" \
  | tail -40 || status=1
filter='*d64_f16_causal*:*offset_past_segment*:*d128_b2_bf16*:*uneven_heads*'
for tool in memcheck racecheck; do
  compute-sanitizer --tool $tool --error-exitcode 9 \
    "$dir/dilated_attention_cuda_test" --gtest_filter="$filter" --gtest_brief=1 \
    > "$out/sanitizer_$tool.log" 2>&1
  echo "compute-sanitizer $tool: exit $? ($(grep -c 'ERROR SUMMARY: 0' "$out/sanitizer_$tool.log") clean summaries)"
  tail -3 "$out/sanitizer_$tool.log"
done
quick=()
[ "${QUICK:-0}" = 1 ] && quick=(--quick)
PYTHONUNBUFFERED=1 python3 "$dir/compare.py" --binary "$dir/cuda_attention_benchmark" \
  --out "$out/compare.json" "${quick[@]}" 2>&1 | tee "$out/compare.log" | tail -40
exit $status
