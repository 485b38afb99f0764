"""The Python library dilated-attention-pytorch, as published on PyPI, for
the benchmarks that time it next to this library.

load() installs the package and its dependencies with pip on first use into
a cache directory of their own (so the environment needs only torch; on a
machine without network, DA_PEER_WHEELS names a folder holding their wheels,
as benchmarks/gpu/stage_python.sh stages them), and
stands in for xformers' memory_efficient_attention, which the library calls
and which has no CPU kernel, with torch's F.scaled_dot_product_attention
(the same attention; nothing else of the library is changed).
"""

import importlib.util
import os
import subprocess
import sys
import types

import torch.nn.functional as F

PACKAGES = ["dilated-attention-pytorch==0.2.0", "torchscale==0.3.0",
            "einops", "numpy"]

DEFAULT_DEPS_DIR = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
    "dilated_attention", "longnet_peer")


def _install_dependencies(deps_dir):
  marker = os.path.join(deps_dir, ".installed")
  if not os.path.exists(marker):
    wheels = os.environ.get("DA_PEER_WHEELS")
    source = ["--no-index", "--find-links", wheels] if wheels else []
    # numpy (torchscale's XPOS imports it) only where it is missing.
    packages = [p for p in PACKAGES
                if p != "numpy" or importlib.util.find_spec("numpy") is None]
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "--no-deps", "--target", deps_dir] + source + packages,
                   check=True)
    open(marker, "w").close()
  if deps_dir not in sys.path:
    sys.path.insert(0, deps_dir)


def _install_xformers_stand_in():
  """Registers a module `xformers.ops` with what the library uses of it."""

  class LowerTriangularMask:
    pass

  def memory_efficient_attention(query, key, value, op=None, attn_bias=None):
    # xformers takes [batch, seq, heads, head_dim]; SDPA takes heads first.
    out = F.scaled_dot_product_attention(
        query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2),
        is_causal=isinstance(attn_bias, LowerTriangularMask))
    return out.transpose(1, 2)

  ops = types.ModuleType("xformers.ops")
  ops.AttentionOp = object
  ops.LowerTriangularMask = LowerTriangularMask
  ops.memory_efficient_attention = memory_efficient_attention
  package = types.ModuleType("xformers")
  package.ops = ops
  sys.modules["xformers"] = package
  sys.modules["xformers.ops"] = ops


def load(deps_dir=DEFAULT_DEPS_DIR):
  """Returns the module dilated_attention_pytorch.long_net (LongNet,
  LongNetLM) of the Python library."""
  _install_dependencies(deps_dir)
  _install_xformers_stand_in()
  from dilated_attention_pytorch import long_net
  return long_net
