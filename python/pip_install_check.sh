#!/usr/bin/env bash
# Installs the package with pip into a fresh virtual environment (which sees
# the torch already installed for python3) and uses it from outside the
# repository: forward and backward of "improved" against "standard", and a
# multihead module. Fails if any step does.
# Usage: python/pip_install_check.sh    (DA_BAZEL_FLAGS passes bazel flags)
set -euo pipefail
cd "$(dirname "$0")/.."
readonly repository=$PWD

work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
python3 -m venv --system-site-packages "${work}/venv"
"${work}/venv/bin/python" -m pip install --quiet --no-build-isolation \
  "${repository}"

cd "${work}"
"${work}/venv/bin/python" - <<'PYTHON'
import torch
import dilated_attention_torch as da

assert da.__file__.startswith(__import__("sys").prefix), da.__file__
q, k, v = (torch.randn(2, 64, 4, 16, requires_grad=True) for _ in range(3))
out = da.dilated_attention(q, k, v, [16, 32], [1, 2], is_causal=True)
reference = da.dilated_attention(q, k, v, [16, 32], [1, 2], is_causal=True,
                                 impl="standard")
# Both float32 implementations of one function: rounding-level agreement.
torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)
out.sum().backward()
assert torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0
module = da.create_multihead_dilated_attention(
    "standard", embed_dim=64, num_heads=4, segment_lengths=[16, 32],
    dilation_rates=[1, 2])
assert module(torch.randn(2, 64, 64)).shape == (2, 64, 64)
print("pip-installed dilated_attention_torch: PASS")
PYTHON
