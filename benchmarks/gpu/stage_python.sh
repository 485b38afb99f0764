#!/bin/bash
# Stages the PyTorch package for the GPU machine: a wheel with the CPU and
# CUDA operator libraries (and the Abseil libraries they load), the package's
# tests with the golden files they read, the timing scripts and the Python
# library's wheels (the LongNet peer), in one folder
# ($1, default .gpu_python).
#
#   benchmarks/gpu/stage_python.sh .gpu_python
#   (on the GPU machine) bash .gpu_python/run_python.sh
set -euo pipefail
dst=${1:-.gpu_python}
rm -rf "$dst"
mkdir -p "$dst/srcdir/dilated_attention/tests/data"
DA_BAZEL_FLAGS="${DA_BAZEL_FLAGS:--c opt --config=cuda}" \
  pip wheel --no-build-isolation --no-deps -w "$dst" .
cp python/tests/*.py benchmarks/gpu/run_python.sh \
  benchmarks/gpu/torch_module_timing.py benchmarks/gpu/sparse_compare.py \
  benchmarks/gpu/sparse_ncu.py benchmarks/gpu/torch_host_time.py \
  benchmarks/python_library_peer.py \
  benchmarks/longnet_torch_peer.py "$dst/"
# The Python library's LongNet as the models' peer: its wheels, installed
# there without network (DA_PEER_WHEELS, benchmarks/python_library_peer.py).
python3 -m pip download --quiet --no-deps -d "$dst/peer_wheels" \
  dilated-attention-pytorch==0.2.0 torchscale==0.3.0 einops
cp -r tests/data/golden tests/data/models "$dst/srcdir/dilated_attention/tests/data/"
du -sh "$dst"
