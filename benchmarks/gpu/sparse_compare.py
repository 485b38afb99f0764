"""block_sparse on CUDA against FlexAttention with the same block mask, on
the GPU machine: the PyTorch package's functional API (impl="block_sparse")
and torch.nn.attention.flex_attention (compiled) on the layout the package
reports (dilated_attention_torch.block_layout), float16, b = 1, block 128,
forward and forward + backward, CUDA-event times (median of --repeats).
With --calls 1 (the default) a time is that of one call after a
synchronisation, the host's work before its first kernel included; with
--calls N, of N calls in a row divided by N, which leaves out what the GPU
overlaps, and the host's own time per call (in that loop) is printed too.

Useful TFLOP/s count the active blocks only (4 n_active d per head forward,
2.5 times that again for the backward pass) and are set beside our dense
kernel's ("improved" with one segment of n_dense tokens, rate 1: plain
attention) measured in the same run.

  python3 sparse_compare.py [--n 32768 131072] [--head_dim 64 128] [--calls 10]
"""

import argparse
import statistics
import time

import torch
from torch.nn.attention.flex_attention import BlockMask
from torch.nn.attention.flex_attention import flex_attention

import dilated_attention_torch as dat

BLOCK = 128


def timed_ms(fn, repeats, calls=1):
  """Medians over `repeats` of (GPU ms, host ms) per call of `calls` calls
  of fn in a row between two events recorded after a synchronisation."""
  fn()
  torch.cuda.synchronize()
  gpu, host = [], []
  for _ in range(repeats):
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    began = time.perf_counter()
    for _ in range(calls):
      fn()
    host.append((time.perf_counter() - began) * 1e3 / calls)
    end.record()
    torch.cuda.synchronize()
    gpu.append(start.elapsed_time(end) / calls)
  return statistics.median(gpu), statistics.median(host)


def flex_block_mask(layout):
  """FlexAttention's BlockMask of a [nb, nb] bool block layout: the same
  blocks, every one of them whole (no per-element mask)."""
  counts = layout.sum(-1, dtype=torch.int32)
  indices = torch.argsort(layout.to(torch.int8), dim=-1, descending=True,
                          stable=True).to(torch.int32)
  return BlockMask.from_kv_blocks(
      torch.zeros_like(counts)[None, None], indices[None, None],
      counts[None, None], indices[None, None], BLOCK_SIZE=BLOCK)


def useful_tflops(active_pairs, heads, head_dim, ms, backward):
  flops = 4.0 * active_pairs * heads * head_dim * (3.5 if backward else 1.0)
  return flops / (ms * 1e-3) / 1e12


def dense_tflops(n, heads, head_dim, repeats, calls):
  """Our dense kernel (one whole-sequence segment) forward and fwd+bwd."""
  shape = (1, n, heads, head_dim)
  q, k, v = (torch.randn(shape, device="cuda", dtype=torch.float16,
                         requires_grad=True) for _ in range(3))
  grad = torch.randn(shape, device="cuda", dtype=torch.float16)

  def dense():
    return dat.dilated_attention(q, k, v, [n], [1], impl="improved")

  with torch.no_grad():
    fwd, _ = timed_ms(dense, repeats, calls)
  both, _ = timed_ms(lambda: dense().backward(grad), repeats, calls)
  pairs = n * n
  return (useful_tflops(pairs, heads, head_dim, fwd, False),
          useful_tflops(pairs, heads, head_dim, both, True))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--n", type=int, nargs="+", default=[32768, 131072])
  parser.add_argument("--heads", type=int, default=8)
  parser.add_argument("--head_dim", type=int, nargs="+", default=[64])
  parser.add_argument("--windows", type=int, nargs="+",
                      default=[512, 4096])
  parser.add_argument("--n_dense", type=int, default=32768)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--calls", type=int, default=1,
                      help="calls in a row per timing")
  args = parser.parse_args()
  flex = torch.compile(flex_attention)
  patterns = [("local_window", {"block_window": w}) for w in args.windows]
  patterns.append(("dilated_sparse", {}))
  print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, "
        f"float16, h={args.heads}, block {BLOCK}, {args.calls} call(s) in a "
        "row per timing")
  dense = {}
  for d in args.head_dim:
    dense[d] = dense_tflops(args.n_dense, args.heads, d, args.repeats,
                            args.calls)
    print(f"dense improved, n={args.n_dense}, d={d}: fwd {dense[d][0]:.0f} "
          f"TFLOP/s, fwd+bwd {dense[d][1]:.0f} TFLOP/s", flush=True)
  print("| d | n | pattern | density | ours fwd ms | flex fwd ms | fwd ratio "
        "| ours fwd+bwd ms | flex fwd+bwd ms | fwd+bwd ratio "
        "| ours TFLOP/s fwd, fwd+bwd (of dense) | max abs difference "
        "| host ms per fwd+bwd call, ours / flex |")
  print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
  for d in args.head_dim:
    for n in args.n:
      shape = (1, n, args.heads, d)
      q, k, v = (torch.randn(shape, device="cuda", dtype=torch.float16,
                             requires_grad=True) for _ in range(3))
      grad = torch.randn(shape, device="cuda", dtype=torch.float16)
      for pattern, extra in patterns:
        kwargs = dict(block_size=BLOCK, block_pattern=pattern, **extra)
        layout = dat.block_layout(n, args.heads, **kwargs)[0].cuda()
        density = layout.float().mean().item()
        active_pairs = layout.sum().item() * BLOCK * BLOCK

        block_mask = flex_block_mask(layout)
        qt, kt, vt = (t.detach().transpose(1, 2).requires_grad_()
                      for t in (q, k, v))
        gradt = grad.transpose(1, 2)

        def ours():
          return dat.dilated_attention(q, k, v, [n], [1], impl="block_sparse",
                                       **kwargs)

        def theirs():
          return flex(qt, kt, vt, block_mask=block_mask)

        with torch.no_grad():
          difference = (ours() - theirs().transpose(1, 2)).abs().max().item()
          ours_fwd, _ = timed_ms(ours, args.repeats, args.calls)
          flex_fwd, _ = timed_ms(theirs, args.repeats, args.calls)
        ours_bwd, ours_host = timed_ms(lambda: ours().backward(grad),
                                       args.repeats, args.calls)
        flex_bwd, flex_host = timed_ms(lambda: theirs().backward(gradt),
                                       args.repeats, args.calls)
        fwd_tflops = useful_tflops(active_pairs, args.heads, d, ours_fwd,
                                   False)
        bwd_tflops = useful_tflops(active_pairs, args.heads, d, ours_bwd,
                                   True)
        name = pattern + (f" {extra['block_window']}" if extra else "")
        print(f"| {d} | {n} | {name} | {density:.4f} | {ours_fwd:.3f} | "
              f"{flex_fwd:.3f} | {flex_fwd / ours_fwd:.2f}x | "
              f"{ours_bwd:.3f} | {flex_bwd:.3f} | "
              f"{flex_bwd / ours_bwd:.2f}x | {fwd_tflops:.0f} "
              f"({fwd_tflops / dense[d][0]:.0%}), {bwd_tflops:.0f} "
              f"({bwd_tflops / dense[d][1]:.0%}) | {difference:.1e} | "
              f"{ours_host:.3f} / {flex_host:.3f} |",
              flush=True)


if __name__ == "__main__":
  main()
