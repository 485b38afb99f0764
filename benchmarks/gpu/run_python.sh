#!/bin/bash
# The PyTorch package on the GPU machine (staged by stage_python.sh): installs
# the wheel into a folder of its own, runs the package's tests (CUDA ones
# included), then times the functional API at config A n = 1M against the
# same call's kernel time.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python -m pip install --quiet --no-deps --target "$here/site" "$here"/*.whl
export PYTHONPATH="$here/site:$here"
# The tests find their data as under bazel test.
export TEST_SRCDIR="$here/srcdir" TEST_WORKSPACE=dilated_attention
cd "$here"
python -m unittest -v cuda_test ops_test modules_test 2>&1 | tail -40
python torch_module_timing.py
# The Python library's LongNet in float16 (the peer of
# //benchmarks:longnet_cuda_benchmark, staged by stage.sh).
export DA_PEER_WHEELS="$here/peer_wheels"
for n in 32768 131072; do
  python longnet_torch_peer.py --device cuda --dtype float16 --n "$n" \
    --repeats 3 --deps_dir "$here/peer_site"
done
