#!/bin/bash
# The sequence-parallel run on the GPU machine (one GPU): MPI ranks sharing
# it with CUDA tensors, the tests, then time, workspace and bytes per rank
# at n = 1M. Staged by stage_distributed.sh; run from anywhere; the
# argument `tests` stops after the tests, `bench` skips them.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export LD_LIBRARY_PATH="$here:${LD_LIBRARY_PATH:-}"
# NCCL may come with the CUDA toolkit or with PyTorch's wheels.
nccl=$(ldconfig -p | awk '/libnccl.so.2/ {print $NF; exit}')
if [[ -z "$nccl" ]]; then
  nccl=$(find / -name 'libnccl.so.2' -not -path '/proc/*' 2>/dev/null | head -1)
  [[ -n "$nccl" ]] && export LD_LIBRARY_PATH="$(dirname "$nccl"):$LD_LIBRARY_PATH"
fi
echo "libnccl: ${nccl:-none}"
export DA_MPI_TIMEOUT=500
run() { echo "== $*"; "$@"; echo "== exit $?"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
mpirun --version | head -1
if [[ "${1:-all}" != bench ]]; then
for ranks in 2 4; do
  run "$here/mpi_run.sh" "$ranks" "$here/mpi_communicator_test_bin" \
    --gtest_brief=1
  run "$here/mpi_run.sh" "$ranks" "$here/sequence_parallel_test_bin" \
    --gtest_brief=1
done
run "$here/mpi_run.sh" 2 "$here/long_net_test_bin" --gtest_brief=1
# NCCL with one rank (one GPU): the engine's set-up and its collectives
# (the agreement and the statistics travel through it).
for impl in distributed ring; do
  run "$here/mpi_run.sh" 1 "$here/sequence_parallel_cuda_run" --comm=nccl \
    --impl=$impl --n=262144 --backward
done
# The command under mpirun on CUDA tensors: MPI with 2 and 4 ranks, NCCL
# with one.
for impl in distributed ring; do
  for ranks in 2 4; do
    run python3 "$here/tool_check.py" --binary "$here/dilated_attention" \
      --impl=$impl --launcher="$here/mpi_run.sh $ranks" --flag=--comm=mpi \
      "$here"/golden/*.safetensors
  done
  run python3 "$here/tool_check.py" --binary "$here/dilated_attention" \
    --impl=$impl --launcher="$here/mpi_run.sh 1" --flag=--comm=nccl \
    "$here"/golden/*.safetensors
done
fi
[[ "${1:-all}" == tests ]] && exit 0
# Config A (every segment inside a shard) and L (segments spanning 2 and 4
# shards), n = 1M, float16, b=1 h=8 d=64; P=1 is "improved" on one rank.
A="--segment_lengths=2048,4096,8192 --dilation_rates=1,2,4"
L="--segment_lengths=2048,524288,1048576 --dilation_rates=1,128,256"
# The PyTorch peer on one process, same shapes.
python3 "$here/torch_peer.py" --segments 2048,4096,8192 --rates 1,2,4
python3 "$here/torch_peer.py" --segments 2048,524288,1048576 --rates 1,128,256
for cfg in A L; do
  flags=${!cfg}
  for pass in "" "--backward"; do
    for causal in "" "--causal"; do
      for impl in distributed ring; do
        for ranks in 1 2 4; do
          echo "-- config $cfg"
          "$here/mpi_run.sh" "$ranks" "$here/sequence_parallel_cuda_run" \
            --impl=$impl --n=1048576 $flags $pass $causal
        done
        if [[ $cfg == L && -n "$causal" ]]; then
          echo "-- config $cfg, zigzag placement"
          "$here/mpi_run.sh" 4 "$here/sequence_parallel_cuda_run" \
            --impl=$impl --n=1048576 $flags $pass $causal --zigzag
        fi
      done
    done
  done
done
