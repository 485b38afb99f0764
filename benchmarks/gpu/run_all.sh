#!/bin/bash
# Runs on the GPU machine, from the folder benchmarks/gpu/stage.sh fills (the
# CUDA test and benchmark binaries, their shared libraries, compare.py):
#   1. the GPU tests (the CUDA suite, also with the sm_90a wgmma kernels
#      switched off and with the one-kernel backward switched on, the
#      conformance suite, the golden files, block_sparse, longnet, dropout
#      and the allocators on CUDA; run from the repository root, where
#      tests/data is);
#   2. the dilated_attention command on CUDA (tool_check.py);
#      compute-sanitizer memcheck and racecheck on a few small test cases
#      (fixed-length and every sequence layout);
#   3. compare.py (our benchmark binary, PyTorch reference algorithm, dense
#      SDPA), unless QUICK=1 limits it to n = 1M and config B; COMPARE=0
#      skips it.
# Logs go to $OUT (or /tmp when OUT is unset).
set -u
dir=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp}
export LD_LIBRARY_PATH=$dir:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv
status=0
export MODEL_GOLDEN_DIR=${MODEL_GOLDEN_DIR:-$PWD/tests/data/models/}
for test in device_check_test cuda_allocator_test dilated_attention_cuda_test \
            fused_backward_cuda_test \
            flash_work_test conformance_cuda_test golden_cuda_test \
            models_golden_cuda_test cuda_layers_test block_sparse_cuda_test \
            longnet_cuda_test \
            golden_sparse_cuda_test dropout_cuda_test dropout_layout_cuda_test; do
  "$dir/$test" --gtest_brief=1 > "$out/$test.log" 2>&1 || status=1
  echo "$test:"; tail -2 "$out/$test.log"
done
DA_DISABLE_WGMMA=1 "$dir/dilated_attention_cuda_test" --gtest_brief=1 \
  > "$out/dilated_attention_cuda_test_mma_sync.log" 2>&1 || status=1
echo "dilated_attention_cuda_test, DA_DISABLE_WGMMA=1:"
tail -2 "$out/dilated_attention_cuda_test_mma_sync.log"
# The dilated_attention command with --device=cuda on golden files
# (fixed-length, partial segments, packed).
python3 "$dir/tool_check.py" --binary "$dir/dilated_attention" \
  tests/data/golden/f16_causal_b2.safetensors \
  tests/data/golden/f16_partial_segments.safetensors \
  tests/data/golden/f16_packed.safetensors > "$out/tool_check.log" 2>&1 || status=1
tail -1 "$out/tool_check.log"
filter='*improved_d64_f16_causal:*improved_d128_f16_causal:*improved_offset_past_segment_f16:*improved_d32_b2_f16_causal:*improved_uneven_heads_bf16_causal:*standard_d64_f16'
# The sequence layouts: packed, padded at the ends, partial segments.
filter="$filter:*improved_packed_d64_bf16_causal:*improved_packed_short_d64_f16_causal:*improved_right_padding_d64_bf16_causal:*improved_both_ends_padding_d32_f16:*improved_partial_offset_past_end_f16_causal:*improved_partial_d128_f16_causal"
for tool in memcheck racecheck; do
  compute-sanitizer --tool $tool --error-exitcode 9 \
    "$dir/dilated_attention_cuda_test" --gtest_filter="$filter" --gtest_brief=1 \
    > "$out/sanitizer_$tool.log" 2>&1
  echo "compute-sanitizer $tool: exit $?"
  tail -3 "$out/sanitizer_$tool.log"
  # block_sparse and longnet: their whole (small) suites.
  for test in block_sparse_cuda_test longnet_cuda_test dropout_cuda_test; do
    compute-sanitizer --tool $tool --error-exitcode 9 "$dir/$test" \
      --gtest_brief=1 > "$out/sanitizer_${tool}_$test.log" 2>&1
    echo "compute-sanitizer $tool $test: exit $?"
  done
done
# LongNet forward on CUDA at 32K .. 1M (the Python library's LongNet, its
# peer, runs from run_python.sh); LONGNET=0 skips it.
if [ "${LONGNET:-1}" = 1 ]; then
  "$dir/longnet_cuda_benchmark" > "$out/longnet_cuda.log" 2>&1 || status=1
  grep -E "^LongNetCuda" "$out/longnet_cuda.log" | tail -8
fi
[ "${COMPARE:-1}" = 0 ] && exit $status
quick=()
[ "${QUICK:-0}" = 1 ] && quick=(--quick)
PYTHONUNBUFFERED=1 python3 "$dir/compare.py" --binary "$dir/cuda_attention_benchmark" \
  --out "$out/compare.json" "${quick[@]}" 2>&1 | tee "$out/compare.log" | tail -40
exit $status
