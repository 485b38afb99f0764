#!/usr/bin/env python3
"""The peer of //benchmarks:longnet_benchmark: the LongNet of the Python
library dilated-attention-pytorch, as published on PyPI, timed on the CPU in
float32 on the same model (d_model 768, 12 heads, dim_feedforward 3072,
segments 2048..32768 with rates 1, 2, 4, 6, 12, one encoder and one decoder
layer, batch 1, causal, n = 32768 by default).

The library and its dependencies are installed with pip on the first run into
a cache directory of their own (--deps_dir), so the environment that runs
this script only needs torch. Its attention calls xformers'
memory_efficient_attention, which has no CPU kernel; this script stands in
for it with torch's F.scaled_dot_product_attention (the same attention, the
fastest CPU path PyTorch has) and changes nothing else.

    python3 benchmarks/longnet_torch_peer.py --threads 2 --repeats 3
    python3 benchmarks/longnet_torch_peer.py --threads 2 --precision medium

Prints, per timed forward, the wall time and the CPU time of the whole
process (all threads), then their medians.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
import types

import torch
import torch.nn.functional as F

PACKAGES = ["dilated-attention-pytorch==0.2.0", "torchscale==0.3.0",
            "einops", "numpy"]


def install_dependencies(deps_dir):
  marker = os.path.join(deps_dir, ".installed")
  if not os.path.exists(marker):
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "--no-deps", "--target", deps_dir] + PACKAGES, check=True)
    open(marker, "w").close()
  sys.path.insert(0, deps_dir)


def install_xformers_stand_in():
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


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--n", type=int, default=32768)
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--precision", default="highest",
                      choices=["highest", "high", "medium"],
                      help="torch.set_float32_matmul_precision")
  parser.add_argument("--deps_dir", default=os.path.join(
      os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
      "dilated_attention", "longnet_peer"))
  args = parser.parse_args()

  torch.set_num_threads(args.threads)
  torch.set_float32_matmul_precision(args.precision)
  install_dependencies(args.deps_dir)
  install_xformers_stand_in()
  from dilated_attention_pytorch.long_net import LongNet

  torch.manual_seed(1)
  model = LongNet(d_model=768, nhead=12, num_encoder_layers=1,
                  num_decoder_layers=1, dim_feedforward=3072,
                  segment_lengths=[2048, 4096, 8192, 16384, 32768],
                  dilation_rates=[1, 2, 4, 6, 12], dropout=0.0).eval()
  x = torch.rand(1, args.n, 768) * 2 - 1
  print(f"torch {torch.__version__}, {args.threads} threads, precision "
        f"{args.precision}, cpu capability "
        f"{torch.backends.cpu.get_cpu_capability()}")
  walls, cpus = [], []
  with torch.inference_mode():
    model(x, is_causal=True)
    for _ in range(args.repeats):
      wall, cpu = time.perf_counter(), time.process_time()
      model(x, is_causal=True)
      walls.append(time.perf_counter() - wall)
      cpus.append(time.process_time() - cpu)
      print(f"PythonLongNet/n:{args.n} wall {walls[-1]:.3f} s "
            f"cpu {cpus[-1]:.3f} s", flush=True)
  print(f"PythonLongNet/n:{args.n} median wall {statistics.median(walls):.3f}"
        f" s cpu {statistics.median(cpus):.3f} s tokens/s "
        f"{args.n / statistics.median(walls):.0f}")


if __name__ == "__main__":
  main()
