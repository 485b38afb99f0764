#!/usr/bin/env python3
"""Dilated attention on one GPU: this library against PyTorch, same shapes.

Runs, in one process on the GPU machine:
  * our benchmark binary (cuda_attention_benchmark: "improved" and
    "standard"), through its JSON output;
  * the reference algorithm in PyTorch: for every group, gather the selected
    rows (strided slice + reshape copy), F.scaled_dot_product_attention,
    scatter (1 / G) * out back into a zero tensor;
  * dense F.scaled_dot_product_attention over the whole sequence (n <= 128K).

Shapes (docs/BASELINES.md): config A (b=1, h=8, d=64, segments 2048/4096/8192,
rates 1/2/4) at n = 32K..1M, forward and forward+backward, causal or not;
config B (b=4, n=2048, h=12, d=64, segments 512/1024/2048) forward. float16.
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

CONFIG_A = dict(batch=1, heads=8, head_dim=64, segments=[2048, 4096, 8192],
                rates=[1, 2, 4])
CONFIG_B = dict(batch=4, heads=12, head_dim=64, segments=[512, 1024, 2048],
                rates=[1, 2, 4])


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


def torch_case(kind, cfg, n, causal, backward):
  """Returns (ms, extra MiB) of `kind` ("reference" or "dense")."""
  torch.manual_seed(0)
  shape = (cfg["batch"], n, cfg["heads"], cfg["head_dim"])
  q, k, v = (torch.randn(shape, device="cuda", dtype=torch.float16,
                         requires_grad=backward) for _ in range(3))
  grad = torch.randn(shape, device="cuda", dtype=torch.float16)

  def run():
    if kind == "reference":
      out = reference_dilated(q, k, v, cfg["segments"], cfg["rates"], causal)
    else:
      out = dense(q, k, v, causal)
    if backward:
      for t in (q, k, v):
        t.grad = None
      out.backward(grad)

  torch.cuda.synchronize()
  torch.cuda.reset_peak_memory_stats()
  base = torch.cuda.memory_allocated()
  try:
    ms = time_ms(run, warmup=2 if n >= 1 << 20 else 3,
                 reps=5 if n >= 1 << 20 else 10)
  except torch.OutOfMemoryError:
    return None, None
  extra = (torch.cuda.max_memory_allocated() - base) / 2**20
  del q, k, v, grad
  torch.cuda.empty_cache()
  return ms, extra


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
                      help="only n = 1M of config A and config B")
  args = parser.parse_args()

  ns = [1 << 20] if args.quick else [1 << 15, 1 << 17, 1 << 19, 1 << 20]
  cases = []
  for n in ns:
    for backward in (False, True):
      for causal in (False, True):
        cases.append(("A", CONFIG_A, n, causal, backward))
  for causal in (False, True):
    cases.append(("B", CONFIG_B, 2048, causal, False))

  ours = run_binary(args.binary,
                    "^(improved|standard)/(A/n:1048576/|B/)" if args.quick
                    else "^(improved|standard)/")
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
    row["torch_reference"] = dict(zip(("ms", "extra_mib"),
                                      torch_case("reference", cfg, n, causal,
                                                 backward)))
    if n <= 1 << 17:
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
        "torch reference ms | torch dense ms | reference / improved |")
  print("|---|---|---|---|---|---|---|")
  for row in rows:
    imp = row.get("improved") or {}
    ref = row.get("torch_reference") or {}
    speedup = (f"{ref['ms'] / imp['ms']:.2f}x"
               if imp.get("ms") and ref.get("ms") else "-")
    tflops = (f"{row['flops'] / imp['ms'] / 1e9:.0f}" if imp.get("ms") else "-")
    print(f"| {row['case']} | {fmt(imp)} | {tflops} | "
          f"{fmt(row.get('standard'))} | {fmt(ref)} | "
          f"{fmt(row.get('torch_dense'))} | {speedup} |")
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
