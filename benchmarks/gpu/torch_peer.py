#!/usr/bin/env python3
"""The single-process peer of run_distributed.sh: the dilated-attention
algorithm in PyTorch on one GPU (per group: strided gather, one
F.scaled_dot_product_attention call, scatter of (1 / G) * out), timed with
every SDPA backend (cuDNN, flash, memory-efficient), the fastest reported.
Same shapes as run_distributed.sh: b=1, h=8, d=64, n = 1M, float16.

    python3 torch_peer.py --segments 2048,4096,8192 --rates 1,2,4
"""

import argparse

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


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


def time_ms(fn, iters=5):
  fn()
  torch.cuda.synchronize()
  start = torch.cuda.Event(enable_timing=True)
  stop = torch.cuda.Event(enable_timing=True)
  start.record()
  for _ in range(iters):
    fn()
  stop.record()
  torch.cuda.synchronize()
  return start.elapsed_time(stop) / iters


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--segments", required=True)
  parser.add_argument("--rates", required=True)
  parser.add_argument("--n", type=int, default=1 << 20)
  args = parser.parse_args()
  segments = [int(x) for x in args.segments.split(",")]
  rates = [int(x) for x in args.rates.split(",")]
  shape = (1, args.n, 8, 64)
  q, k, v = (torch.randn(shape, device="cuda", dtype=torch.float16,
                         requires_grad=True) for _ in range(3))
  grad = torch.randn(shape, device="cuda", dtype=torch.float16)
  backends = {"cudnn": SDPBackend.CUDNN_ATTENTION,
              "flash": SDPBackend.FLASH_ATTENTION,
              "efficient": SDPBackend.EFFICIENT_ATTENTION}
  for causal in (False, True):
    for name, passes in (("fwd", False), ("fwd+bwd", True)):
      best = None
      for backend_name, backend in backends.items():
        def call():
          with sdpa_kernel(backend):
            out = dilated(q, k, v, segments, rates, causal)
            if passes:
              out.backward(grad)
        try:
          ms = time_ms(call)
        except RuntimeError:
          continue
        if best is None or ms < best[1]:
          best = (backend_name, ms)
      print(f"torch segments={args.segments} rates={args.rates} n={args.n} "
            f"{name}{' causal' if causal else ''}: {best[1]:.3f} ms/call "
            f"(fastest SDPA backend: {best[0]})")


if __name__ == "__main__":
  main()
