#!/usr/bin/env python3
"""The peer of //benchmarks:linear_benchmark: PyTorch's F.linear (y = x W^T +
b, float32) on the same shapes, the linear layers of LongNet at the paper's
width (768 -> 768, 768 -> 3072, 3072 -> 768), at the same row counts, on the
CPU with the same number of threads.

    OMP_NUM_THREADS=2 bazel-bin/benchmarks/linear_benchmark
    python3 benchmarks/linear_torch_peer.py --threads 2

Each sample times a loop of calls long enough to last about 50 ms (one call
at the longest shapes), as Google Benchmark times a loop of iterations; each
call allocates its output, as the library's Linear does. Prints, per case,
the median and the best time per call over --repeats samples and the GFLOP/s
of the median.
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = ((768, 768), (768, 3072), (3072, 768))


SAMPLE_SECONDS = 0.05


def time_linear(rows, features_in, features_out, repeats):
  """Returns the wall time in seconds per call of each of `repeats` samples."""
  generator = torch.Generator().manual_seed(1)
  x = torch.rand(rows, features_in, generator=generator) * 2 - 1
  w = torch.rand(features_out, features_in, generator=generator) * 2 - 1
  b = torch.rand(features_out, generator=generator) * 2 - 1
  for _ in range(3):
    F.linear(x, w, b)
  start = time.perf_counter()
  F.linear(x, w, b)
  calls = max(1, int(SAMPLE_SECONDS / (time.perf_counter() - start)))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(calls):
      F.linear(x, w, b)
    times.append((time.perf_counter() - start) / calls)
  return times


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--rows", type=int, nargs="+",
                      default=[16, 64, 128, 192, 256, 32768])
  parser.add_argument("--repeats", type=int, default=5,
                      help="timed samples per case (at most 3 from 4096 rows)")
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  torch.set_float32_matmul_precision("highest")
  print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
  for rows in args.rows:
    for features_in, features_out in SHAPES:
      repeats = min(args.repeats, 3) if rows >= 4096 else args.repeats
      times = time_linear(rows, features_in, features_out, repeats)
      median = statistics.median(times)
      gflops = 2.0 * rows * features_in * features_out / median * 1e-9
      print(f"F.linear/rows:{rows}/in:{features_in}/out:{features_out} "
            f"median {median * 1e3:.3f} ms best {min(times) * 1e3:.3f} ms "
            f"{gflops:.1f} GFLOP/s")


if __name__ == "__main__":
  main()
