#!/usr/bin/env python3
"""Dilated attention on one GPU: this library against PyTorch, same shapes.

Runs, in one process on the GPU machine:
  * our benchmark binary (cuda_attention_benchmark: "improved" and
    "standard"), through its JSON output;
  * the reference algorithm in PyTorch: for every group, gather the selected
    rows (strided slice + reshape copy), F.scaled_dot_product_attention,
    scatter (1 / G) * out back into a zero tensor; once per SDPA backend
    (--backends: flash, cuDNN, memory-efficient), the fastest counted;
  * dense F.scaled_dot_product_attention over the whole sequence (n <= 128K).

Shapes (docs/BASELINES.md): config A (b=1, h=8, d=64, segments 2048/4096/8192,
rates 1/2/4) at n = 32K..1M, forward and forward+backward, causal or not;
config B (b=4, n=2048, h=12, d=64, segments 512/1024/2048) forward; config
D128 (config A's segments and rates at b=1, h=16, d=128) at n = 128K and 1M,
forward and forward+backward, causal or not; config D256 (the same at
h=8, d=256); config INNER (one group:
segments 2048, rate 1, b=1, h=8, d=64: the dense shape inside config A) at
n = 1M, whose "torch dense" column is plain SDPA on the [n / 2048, 8, 2048,
64] batch of segments, per backend, the fastest counted (--configs picks).
float16.
Times are medians of CUDA-event timings after warm-up. Useful TFLOP/s use
the convention of docs/BASELINES.md section 1 (forward 4 b g (n/s) L^2 d per
group, halved when causal; forward+backward 3.5x).

  LD_LIBRARY_PATH=.gpu python3 benchmarks/gpu/compare.py \
      --binary .gpu/cuda_attention_benchmark --out $OUT/compare.json
"""

import argparse
import json
import statistics
import subprocess
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

CONFIG_A = dict(batch=1, heads=8, head_dim=64, segments=[2048, 4096, 8192],
                rates=[1, 2, 4])
CONFIG_B = dict(batch=4, heads=12, head_dim=64, segments=[512, 1024, 2048],
                rates=[1, 2, 4])
CONFIG_D128 = dict(batch=1, heads=16, head_dim=128,
                   segments=[2048, 4096, 8192], rates=[1, 2, 4])
CONFIG_D256 = dict(batch=1, heads=8, head_dim=256,
                   segments=[2048, 4096, 8192], rates=[1, 2, 4])
CONFIG_INNER = dict(batch=1, heads=8, head_dim=64, segments=[2048],
                    rates=[1])
BACKENDS = dict(flash=SDPBackend.FLASH_ATTENTION,
                cudnn=SDPBackend.CUDNN_ATTENTION,
                efficient=SDPBackend.EFFICIENT_ATTENTION)


def forward_flops(cfg, n, causal):
  groups = len(cfg["segments"])
  total = 0.0
  for i, (s, r) in enumerate(zip(cfg["segments"], cfg["rates"])):
    g = cfg["heads"] // groups + (1 if i < cfg["heads"] % groups else 0)
    o = i % r
    length = 0 if o >= s else (s - o + r - 1) // r
    total += 4.0 * cfg["batch"] * g * (n // s) * length * length * cfg["head_dim"]
  return total / 2 if causal else total


def reference_dilated(q, k, v, segments, rates, causal):
  """The reference algorithm: gather, dense SDPA per group, scatter."""
  b, n, h, d = q.shape
  groups = len(segments)
  out = torch.zeros_like(q)
  head = 0
  for i, (s, r) in enumerate(zip(segments, rates)):
    g = h // groups + (1 if i < h % groups else 0)
    o = i % r
    if o < s:
      m = n // s

      def gather(x):
        sel = x[:, :, head:head + g].reshape(b, m, s, g, d)[:, :, o::r]
        return sel.reshape(b * m, -1, g, d).transpose(1, 2)

      oi = F.scaled_dot_product_attention(gather(q), gather(k), gather(v),
                                          is_causal=causal)
      length = oi.shape[2]
      out.view(b, m, s, h, d)[:, :, o::r, head:head + g] = (
          oi.transpose(1, 2).reshape(b, m, length, g, d) / groups)
    head += g
  return out


def dense(q, k, v, causal):
  out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                       v.transpose(1, 2), is_causal=causal)
  return out.transpose(1, 2)


def time_ms(fn, warmup=3, reps=10):
  for _ in range(warmup):
    fn()
  torch.cuda.synchronize()
  times = []
  for _ in range(reps):
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    stop.record()
    stop.synchronize()
    times.append(start.elapsed_time(stop))
  return statistics.median(times)


def torch_case(kind, cfg, n, causal, backward, backend=None):
  """Returns (ms, extra MiB) of `kind` ("reference", "dense", or "inner":
  SDPA on the batch of segments of a one-group config) with SDPA
  restricted to `backend` (a BACKENDS key; None: PyTorch's choice), or
  (None, None) when that backend cannot run the case."""
  torch.manual_seed(0)
  shape = (cfg["batch"], n, cfg["heads"], cfg["head_dim"])
  if kind == "inner":
    segment = cfg["segments"][0]
    shape = (cfg["batch"] * n // segment, cfg["heads"], segment,
             cfg["head_dim"])
  q, k, v = (torch.randn(shape, device="cuda", dtype=torch.float16,
                         requires_grad=backward) for _ in range(3))
  grad = torch.randn(shape, device="cuda", dtype=torch.float16)

  def call():
    if kind == "reference":
      out = reference_dilated(q, k, v, cfg["segments"], cfg["rates"], causal)
    elif kind == "inner":
      out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    else:
      out = dense(q, k, v, causal)
    if backward:
      for t in (q, k, v):
        t.grad = None
      out.backward(grad)

  def run():
    if backend is None:
      call()
    else:
      with sdpa_kernel([BACKENDS[backend]]):
        call()

  torch.cuda.synchronize()
  torch.cuda.reset_peak_memory_stats()
  base = torch.cuda.memory_allocated()
  try:
    ms = time_ms(run, warmup=2 if n >= 1 << 20 else 3,
                 reps=5 if n >= 1 << 20 else 10)
  except torch.OutOfMemoryError:
    return None, None
  except RuntimeError as error:  # no kernel of `backend` for this case
    print(f"{kind} {backend} n={n}: {str(error).splitlines()[0]}",
          file=sys.stderr)
    return None, None
  extra = (torch.cuda.max_memory_allocated() - base) / 2**20
  del q, k, v, grad
  torch.cuda.empty_cache()
  return ms, extra


def fastest(kind, cfg, n, causal, backward, backends):
  """Times `kind` on every backend; returns ({backend: entry}, the fastest
  entry with its backend named, or None)."""
  by_backend = {}
  for backend in backends:
    by_backend[backend] = dict(zip(("ms", "extra_mib"),
                                   torch_case(kind, cfg, n, causal, backward,
                                              backend)))
  timed = [(entry["ms"], backend) for backend, entry in by_backend.items()
           if entry["ms"] is not None]
  if not timed:
    return by_backend, None
  best_backend = min(timed)[1]
  return by_backend, dict(by_backend[best_backend], backend=best_backend)


def run_binary(binary, regex):
  proc = subprocess.run(
      [binary, "--benchmark_format=json", f"--benchmark_filter={regex}"],
      check=True, capture_output=True, text=True)
  report = json.loads(proc.stdout)
  results = {}
  for bench in report["benchmarks"]:
    if "error_message" in bench:
      results[bench["name"]] = dict(error=bench["error_message"])
      continue
    name = bench["name"].split("/min_time:")[0].removesuffix("/manual_time")
    results[name] = dict(
        ms=bench["real_time"], tflops=bench.get("TFLOPs"),
        extra_mib=bench.get("extra_MiB"))
  return results


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--binary", required=True)
  parser.add_argument("--out", default=None)
  parser.add_argument("--quick", action="store_true",
                      help="only n = 1M of config A, D128 and D256, and config B")
  parser.add_argument("--configs", default="A,B",
                      help="comma-separated: A, B, D128, D256, INNER")
  parser.add_argument("--backends", default="flash,cudnn,efficient",
                      help="SDPA backends the reference runs on, each timed")
  args = parser.parse_args()
  configs = args.configs.split(",")
  backends = args.backends.split(",")

  cases = []
  if "A" in configs:
    for n in ([1 << 20] if args.quick else
              [1 << 15, 1 << 17, 1 << 19, 1 << 20]):
      for backward in (False, True):
        for causal in (False, True):
          cases.append(("A", CONFIG_A, n, causal, backward))
  if "B" in configs:
    for causal in (False, True):
      cases.append(("B", CONFIG_B, 2048, causal, False))
  if "D128" in configs:
    for n in [1 << 20] if args.quick else [1 << 17, 1 << 20]:
      for backward in (False, True):
        for causal in (False, True):
          cases.append(("D128", CONFIG_D128, n, causal, backward))
  if "D256" in configs:
    for n in [1 << 20] if args.quick else [1 << 17, 1 << 20]:
      for backward in (False, True):
        for causal in (False, True):
          cases.append(("D256", CONFIG_D256, n, causal, backward))

  if "INNER" in configs:
    for backward in (False, True):
      for causal in (False, True):
        cases.append(("INNER", CONFIG_INNER, 1 << 20, causal, backward))

  filters = []
  if "A" in configs:
    filters.append("A/n:1048576/" if args.quick else "A/")
  if "B" in configs:
    filters.append("B/")
  if "D128" in configs:
    filters.append("D128/n:1048576/" if args.quick else "D128/")
  if "D256" in configs:
    filters.append("D256/n:1048576/" if args.quick else "D256/")
  if "INNER" in configs:
    filters.append("INNER/")
  ours = run_binary(args.binary,
                    f"^(improved|standard)/({'|'.join(filters)})")
  print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}",
        flush=True)
  rows = []
  for name, cfg, n, causal, backward in cases:
    mode = ("fwdbwd" if backward else "fwd") + ("/causal" if causal else "")
    label = f"{name}/n:{n}/{mode}"
    flops = forward_flops(cfg, n, causal) * (3.5 if backward else 1.0)
    row = dict(case=label, flops=flops)
    for impl in ("improved", "standard"):
      row[impl] = ours.get(f"{impl}/{label}")
    row["torch_reference_by_backend"], row["torch_reference"] = fastest(
        "reference", cfg, n, causal, backward, backends)
    if name == "INNER":
      row["torch_dense_by_backend"], row["torch_dense"] = fastest(
          "inner", cfg, n, causal, backward, backends)
    elif n <= 1 << 17 and name not in ("D128", "D256"):
      row["torch_dense"] = dict(zip(("ms", "extra_mib"),
                                    torch_case("dense", cfg, n, causal,
                                               backward)))
    rows.append(row)
    print(json.dumps(row), flush=True)

  def fmt(entry, key="ms"):
    if not entry or entry.get(key) is None:
      return "-"
    return f"{entry[key]:.3f}"

  print()
  print("| case | improved ms | improved TFLOP/s | standard ms | "
        "torch reference ms (fastest backend) | torch dense ms | "
        "reference / improved |")
  print("|---|---|---|---|---|---|---|")
  for row in rows:
    imp = row.get("improved") or {}
    ref = row.get("torch_reference") or {}
    speedup = (f"{ref['ms'] / imp['ms']:.2f}x"
               if imp.get("ms") and ref.get("ms") else "-")
    tflops = (f"{row['flops'] / imp['ms'] / 1e9:.0f}" if imp.get("ms") else "-")
    print(f"| {row['case']} | {fmt(imp)} | {tflops} | "
          f"{fmt(row.get('standard'))} | {fmt(ref)} "
          f"({ref.get('backend', '-')}) | "
          f"{fmt(row.get('torch_dense'))} | {speedup} |")
  print("\ntorch dense of INNER: SDPA alone on the batch of segments (fastest "
        "backend); of A: SDPA over the whole sequence (PyTorch's choice).")
  extra = {k: v for k, v in ours.items() if k.startswith("improved/A/n:4194304")
           or k.startswith("improved/A/n:16777216")}
  if extra:
    print()
    for k, v in sorted(extra.items()):
      print(k, v)
  if args.out:
    with open(args.out, "w") as f:
      json.dump(dict(rows=rows, ours=ours), f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
