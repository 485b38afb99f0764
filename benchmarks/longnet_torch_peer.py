#!/usr/bin/env python3
"""The peer of //benchmarks:longnet_benchmark: the LongNet of the Python
library dilated-attention-pytorch, as published on PyPI, timed on the CPU in
float32 on the same model (d_model 768, 12 heads, dim_feedforward 3072,
segments 2048..32768 with rates 1, 2, 4, 6, 12, one encoder and one decoder
layer, batch 1, causal, n = 32768 by default).

The library and its dependencies are installed with pip on the first run into
a cache directory of their own (--deps_dir), and xformers, which it calls
but which has no CPU kernel, is stood in for by torch's
F.scaled_dot_product_attention: see benchmarks/python_library_peer.py.

    python3 benchmarks/longnet_torch_peer.py --threads 2 --repeats 3
    python3 benchmarks/longnet_torch_peer.py --threads 2 --precision medium
    python3 benchmarks/longnet_torch_peer.py --device cuda --dtype float16 \
        --n 131072

Prints, per timed forward, the wall time and the CPU time of the whole
process (all threads), then their medians.
"""

import argparse
import statistics
import time

import torch

try:
  from benchmarks import python_library_peer
except ImportError:  # run as a script from the repository root
  import python_library_peer


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--n", type=int, default=32768)
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--device", default="cpu")
  parser.add_argument("--dtype", default="float32",
                      choices=["float32", "float16", "bfloat16"])
  parser.add_argument("--precision", default="highest",
                      choices=["highest", "high", "medium"],
                      help="torch.set_float32_matmul_precision")
  parser.add_argument("--deps_dir",
                      default=python_library_peer.DEFAULT_DEPS_DIR)
  args = parser.parse_args()

  torch.set_num_threads(args.threads)
  torch.set_float32_matmul_precision(args.precision)
  LongNet = python_library_peer.load(args.deps_dir).LongNet

  torch.manual_seed(1)
  model = LongNet(d_model=768, nhead=12, num_encoder_layers=1,
                  num_decoder_layers=1, dim_feedforward=3072,
                  segment_lengths=[2048, 4096, 8192, 16384, 32768],
                  dilation_rates=[1, 2, 4, 6, 12], dropout=0.0).eval()
  dtype = getattr(torch, args.dtype)
  model = model.to(device=args.device, dtype=dtype)
  x = (torch.rand(1, args.n, 768) * 2 - 1).to(device=args.device,
                                              dtype=dtype)
  synchronize = (torch.cuda.synchronize if x.is_cuda else lambda: None)
  print(f"torch {torch.__version__}, {args.device}, {args.dtype}, "
        f"{args.threads} threads, precision {args.precision}, cpu capability "
        f"{torch.backends.cpu.get_cpu_capability()}")
  walls, cpus = [], []
  with torch.inference_mode():
    model(x, is_causal=True)
    synchronize()
    for _ in range(args.repeats):
      wall, cpu = time.perf_counter(), time.process_time()
      model(x, is_causal=True)
      synchronize()
      walls.append(time.perf_counter() - wall)
      cpus.append(time.process_time() - cpu)
      print(f"PythonLongNet/n:{args.n} wall {walls[-1]:.3f} s "
            f"cpu {cpus[-1]:.3f} s", flush=True)
  print(f"PythonLongNet/n:{args.n} median wall {statistics.median(walls):.3f}"
        f" s cpu {statistics.median(cpus):.3f} s tokens/s "
        f"{args.n / statistics.median(walls):.0f}")


if __name__ == "__main__":
  main()
