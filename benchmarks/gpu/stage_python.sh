#!/bin/bash
# Stages the PyTorch package for the GPU machine: a wheel with the CPU and
# CUDA operator libraries (and the Abseil libraries they load), the package's
# tests with the golden files they read, and the timing script, in one folder
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
  benchmarks/gpu/torch_module_timing.py "$dst/"
cp -r tests/data/golden tests/data/models "$dst/srcdir/dilated_attention/tests/data/"
du -sh "$dst"
