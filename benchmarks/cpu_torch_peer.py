#!/usr/bin/env python3
"""The PyTorch peer of //benchmarks:cpu_attention_benchmark on the CPU: the
dilated-attention algorithm as gather + F.scaled_dot_product_attention +
scatter (per group: strided gather of its heads and positions, one SDPA call
over every segment, scatter of (1 / G) * out), on config A of
docs/BASELINES.md (b = 1, h = 8, d = 64, segments 2048/4096/8192, rates
1/2/4). Prints the best of --repeats wall times per case, in the case names
of the C++ benchmark. torch is not a dependency of the repository: install it
where the numbers are taken (pip install torch).

    python3 benchmarks/cpu_torch_peer.py --threads 2 --n 32768 --dtype bf16
"""

import argparse
import time

import torch
import torch.nn.functional as F

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16,
          "fp16": torch.float16}


def dilated(q, k, v, segments, rates, causal):
  b, n, h, d = q.shape
  groups = len(segments)
  out = torch.zeros_like(q)
  heads = [h // groups + (1 if i < h % groups else 0) for i in range(groups)]
  first = 0
  for i, (s, r) in enumerate(zip(segments, rates)):
    s = min(s, n)
    o = i % r
    hs = slice(first, first + heads[i])
    first += heads[i]

    def gather(t):
      t = t[:, :, hs].reshape(b, n // s, s, heads[i], d)[:, :, o::r]
      return t.reshape(b * (n // s), -1, heads[i], d).transpose(1, 2)

    o_i = F.scaled_dot_product_attention(gather(q), gather(k), gather(v),
                                         is_causal=causal)
    rows = o_i.transpose(1, 2).reshape(b, n // s, -1, heads[i], d)
    view = out[:, :, hs].reshape(b, n // s, s, heads[i], d)
    view[:, :, o::r] = rows / groups
    out[:, :, hs] = view.reshape(b, n, heads[i], d)
  return out


def best_ms(fn, repeats):
  fn()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    best = min(best, (time.perf_counter() - start) * 1e3)
  return best


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--n", type=int, default=32768)
  parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  torch.set_num_threads(args.threads)
  segments, rates = [2048, 4096, 8192], [1, 2, 4]
  shape = (1, args.n, 8, 64)
  dtype = DTYPES[args.dtype]
  q, k, v = (torch.empty(shape, dtype=dtype).uniform_(-1, 1).requires_grad_()
             for _ in range(3))
  grad = torch.empty(shape, dtype=dtype).uniform_(-1, 1)
  for causal in (False, True):
    for passes in ("fwd", "fwd_bwd"):
      def call():
        if passes == "fwd":
          with torch.no_grad():
            dilated(q, k, v, segments, rates, causal)
        else:
          dilated(q, k, v, segments, rates, causal).backward(grad)
      ms = best_ms(call, args.repeats)
      mode = "causal" if causal else "full"
      print(f"torch/A/n:{args.n}/{mode}/{passes}/{args.dtype} {ms:.1f} ms "
            f"(threads={torch.get_num_threads()}, torch {torch.__version__})")


if __name__ == "__main__":
  main()
