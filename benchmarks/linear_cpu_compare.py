#!/usr/bin/env python3
"""The linear layers on the CPU, side by side in one run: our GEMM
(//benchmarks:linear_benchmark, one CPU path, with Eigen's GEMM from the same
process) and PyTorch's F.linear (benchmarks/linear_torch_peer.py), on
LongNet's shapes (768 -> 768, 768 -> 3072, 3072 -> 768) at a few row counts.
The two sides alternate for --rounds rounds on the same threads; the table
gives each side's best round (ours: the median of 5 repetitions; PyTorch:
the median of 5 samples), in ms, and the ratios.

    ./bazelw build -c opt //benchmarks:linear_benchmark
    python3 benchmarks/linear_cpu_compare.py --threads 2 --path avx2
"""

import argparse
import collections
import json
import os
import subprocess

import torch

try:
  from benchmarks import linear_torch_peer
except ImportError:  # run as a script from the repository root
  import linear_torch_peer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_ours(binary, path, rows, threads):
  """Returns {(side, rows, in, out): median ms} for our path and Eigen."""
  row_pattern = "|".join(str(r) for r in rows)
  env = dict(os.environ, OMP_NUM_THREADS=str(threads))
  result = subprocess.run(
      [binary, f"--benchmark_filter=({path}|eigen)/highest/rows:({row_pattern})/",
       "--benchmark_repetitions=5", "--benchmark_report_aggregates_only=true",
       "--benchmark_format=json"],
      env=env, check=True, capture_output=True, text=True)
  times = {}
  for entry in json.loads(result.stdout)["benchmarks"]:
    if entry.get("error_occurred"):
      raise SystemExit(f"{entry['name']}: {entry.get('error_message')}")
    if entry.get("aggregate_name") != "median":
      continue
    fields = dict(part.split(":") for part in entry["run_name"].split("/")
                  if ":" in part)
    side = "eigen" if "/eigen/" in entry["run_name"] else "ours"
    key = (side, int(fields["rows"]), int(fields["in"]), int(fields["out"]))
    times[key] = entry["real_time"]  # the benchmark's unit is ms
  return times


def run_peer(rows):
  """Returns {("torch", rows, in, out): median ms}."""
  times = {}
  for r in rows:
    for features_in, features_out in linear_torch_peer.SHAPES:
      samples = linear_torch_peer.time_linear(r, features_in, features_out, 5)
      samples.sort()
      times[("torch", r, features_in, features_out)] = samples[2] * 1e3
  return times


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--path", default="avx2",
                      help="our CPU path: avx2, avx512 (the CPU must have it)")
  parser.add_argument("--rows", type=int, nargs="+", default=[16, 64, 128, 256])
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--binary",
                      default=os.path.join(ROOT, "bazel-bin/benchmarks/linear_benchmark"))
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  torch.set_float32_matmul_precision("highest")
  best = collections.defaultdict(lambda: float("inf"))
  for _ in range(args.rounds):
    for times in (run_ours(args.binary, args.path, args.rows, args.threads),
                  run_peer(args.rows)):
      for key, value in times.items():
        best[key] = min(best[key], value)
  print(f"{args.threads} threads, our path {args.path}, torch "
        f"{torch.__version__} (CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}), best of {args.rounds} "
        f"rounds, ms")
  print("| rows | in -> out | ours | Eigen | F.linear | Eigen / ours | F.linear / ours |")
  print("|---|---|---|---|---|---|---|")
  for r in args.rows:
    for features_in, features_out in linear_torch_peer.SHAPES:
      ours = best[("ours", r, features_in, features_out)]
      eigen = best[("eigen", r, features_in, features_out)]
      peer = best[("torch", r, features_in, features_out)]
      print(f"| {r} | {features_in} -> {features_out} | {ours:.3f} | "
            f"{eigen:.3f} | {peer:.3f} | {eigen / ours:.2f} | "
            f"{peer / ours:.2f} |")


if __name__ == "__main__":
  main()
