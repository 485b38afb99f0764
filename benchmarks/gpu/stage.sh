#!/bin/bash
# Builds the CUDA test and benchmark binaries and copies them, the shared
# libraries they need that a stock CUDA image lacks (Abseil, Google
# Benchmark, libgomp) and the device scripts into one folder ($1, default
# .gpu) that can travel to the GPU machine. cuBLAS and the CUDA runtime come
# from the GPU machine's own toolkit.
#
#   benchmarks/gpu/stage.sh .gpu
#   (on the GPU machine) bash .gpu/run_all.sh
set -euo pipefail
dst=${1:-.gpu}
./bazelw build -c opt --config=cuda --dynamic_mode=off \
  //tests/cuda:dilated_attention_cuda_test //tests/cuda:fused_backward_cuda_test \
  //tests/cuda:flash_work_test \
  //tests/attention:conformance_cuda_test \
  //tests/attention:golden_cuda_test //tests/models:golden_cuda_test \
  //tests/models:cuda_layers_test \
  //tests/attention:block_sparse_cuda_test //tests/attention:longnet_cuda_test \
  //tests/attention:golden_sparse_cuda_test //tests/attention:dropout_cuda_test \
  //tests/attention:dropout_layout_cuda_test \
  //tests/memory:cuda_allocator_test //tests/kernels/cuda:device_check_test \
  //benchmarks:cuda_attention_benchmark //benchmarks:cuda_tile_sweep \
  //benchmarks:longnet_cuda_benchmark //tools:dilated_attention
rm -rf "$dst"
mkdir -p "$dst"
cp bazel-bin/tests/cuda/dilated_attention_cuda_test \
  bazel-bin/tests/cuda/fused_backward_cuda_test \
  bazel-bin/tests/cuda/flash_work_test \
  bazel-bin/tests/attention/conformance_cuda_test \
  bazel-bin/tests/attention/golden_cuda_test \
  bazel-bin/tests/models/cuda_layers_test \
  bazel-bin/tests/attention/block_sparse_cuda_test \
  bazel-bin/tests/attention/longnet_cuda_test \
  bazel-bin/tests/attention/golden_sparse_cuda_test \
  bazel-bin/tests/attention/dropout_cuda_test \
  bazel-bin/tests/attention/dropout_layout_cuda_test \
  bazel-bin/tests/memory/cuda_allocator_test \
  bazel-bin/tests/kernels/cuda/device_check_test \
  bazel-bin/benchmarks/cuda_attention_benchmark \
  bazel-bin/benchmarks/longnet_cuda_benchmark \
  bazel-bin/benchmarks/cuda_tile_sweep \
  bazel-bin/tools/dilated_attention \
  benchmarks/gpu/compare.py benchmarks/gpu/tool_check.py benchmarks/gpu/run_all.sh benchmarks/gpu/profile.sh \
  benchmarks/gpu/ab.sh benchmarks/gpu/sdpa_profile.py \
  "$dst/"
for lib in $(ldd "$dst"/cuda_attention_benchmark "$dst"/dilated_attention_cuda_test "$dst"/dilated_attention \
             "$dst"/conformance_cuda_test | awk '/=>/ {print $3}' | sort -u |
             grep -E 'libabsl|libbenchmark|libgomp'); do
  cp -L "$lib" "$dst/"
done
cp bazel-bin/tests/models/golden_cuda_test "$dst/models_golden_cuda_test"
chmod -R u+w "$dst"
du -sh "$dst"
