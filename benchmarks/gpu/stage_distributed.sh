#!/bin/bash
# Builds the sequence-parallel tests and runs for the GPU machine and copies
# them, their shared libraries (not Open MPI's: the GPU machine's own
# mpirun and libmpi serve them) and the device script into one folder ($1,
# default .gpu_dist).
#
#   benchmarks/gpu/stage_distributed.sh .gpu_dist
#   (on the GPU machine) bash .gpu_dist/run_distributed.sh
set -euo pipefail
dst=${1:-.gpu_dist}
targets=(
  //tests/distributed:mpi_communicator_test_bin
  //tests/sequence_parallel:sequence_parallel_test_bin
  //tests/sequence_parallel:long_net_test_bin
  //benchmarks:sequence_parallel_cuda_run
  //tools:dilated_attention
)
if [[ -n "${DA_EXTRA_TARGETS:-}" ]]; then targets+=(${DA_EXTRA_TARGETS}); fi
./bazelw build -c opt --config=cuda --dynamic_mode=off "${targets[@]}"
rm -rf "$dst"
mkdir -p "$dst"
for target in "${targets[@]}"; do
  path=${target#//}
  cp "bazel-bin/${path%%:*}/${path##*:}" "$dst/"
done
cp bazel/mpi_run.sh benchmarks/gpu/run_distributed.sh benchmarks/gpu/tool_check.py \
  benchmarks/gpu/torch_peer.py "$dst/"
mkdir -p "$dst/golden"
cp tests/data/golden/f16_causal_b2.safetensors tests/data/golden/bf16_uneven_heads.safetensors \
  tests/data/golden/f32_custom_scale_b2.safetensors "$dst/golden/"
for lib in $(ldd "$dst"/sequence_parallel_test_bin "$dst"/sequence_parallel_cuda_run |
             awk '/=>/ {print $3}' | sort -u | grep -E 'libabsl|libgomp|libgtest'); do
  cp -L "$lib" "$dst/"
done
chmod -R u+w "$dst"
du -sh "$dst"
