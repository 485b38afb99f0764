"""block_sparse on CUDA against FlexAttention with the same block mask, on
the GPU machine: the PyTorch package's functional API (impl="block_sparse")
and torch.nn.attention.flex_attention (compiled) on the layout the package
reports (dilated_attention_torch.block_layout), float16, b = 1, block 128,
forward and forward + backward, CUDA-event times (median of --repeats).

  python3 sparse_compare.py [--n 32768 131072] [--head_dim 64]
"""

import argparse
import statistics

import torch
from torch.nn.attention.flex_attention import BlockMask
from torch.nn.attention.flex_attention import flex_attention

import dilated_attention_torch as dat

BLOCK = 128


def cuda_ms(fn, repeats):
  fn()
  torch.cuda.synchronize()
  times = []
  for _ in range(repeats):
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    times.append(start.elapsed_time(end))
  return statistics.median(times)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--n", type=int, nargs="+", default=[32768, 131072])
  parser.add_argument("--heads", type=int, default=8)
  parser.add_argument("--head_dim", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  flex = torch.compile(flex_attention)
  patterns = [("local_window", {"block_window": 512}),
              ("local_window", {"block_window": 4096}),
              ("dilated_sparse", {})]
  print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, "
        f"float16, h={args.heads}, d={args.head_dim}, block {BLOCK}")
  print("| n | pattern | density | ours fwd ms | flex fwd ms | ours fwd+bwd ms "
        "| flex fwd+bwd ms | max abs difference |")
  print("|---|---|---|---|---|---|---|---|")
  for n in args.n:
    shape = (1, n, args.heads, args.head_dim)
    q, k, v = (torch.randn(shape, device="cuda", dtype=torch.float16,
                           requires_grad=True) for _ in range(3))
    grad = torch.randn(shape, device="cuda", dtype=torch.float16)
    for pattern, extra in patterns:
      kwargs = dict(block_size=BLOCK, block_pattern=pattern, **extra)
      layout = dat.block_layout(n, args.heads, **kwargs)[0].cuda()
      density = layout.float().mean().item()

      # The same blocks, every one of them whole (no per-element mask).
      counts = layout.sum(-1, dtype=torch.int32)
      indices = torch.argsort(layout.to(torch.int8), dim=-1, descending=True,
                              stable=True).to(torch.int32)
      block_mask = BlockMask.from_kv_blocks(
          torch.zeros_like(counts)[None, None],
          indices[None, None], counts[None, None], indices[None, None],
          BLOCK_SIZE=BLOCK)
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
        ours_fwd = cuda_ms(ours, args.repeats)
        flex_fwd = cuda_ms(theirs, args.repeats)
      ours_bwd = cuda_ms(lambda: ours().backward(grad), args.repeats)
      flex_bwd = cuda_ms(lambda: theirs().backward(gradt), args.repeats)
      name = pattern + (f" {extra['block_window']}" if extra else "")
      print(f"| {n} | {name} | {density:.3f} | {ours_fwd:.2f} | "
            f"{flex_fwd:.2f} | {ours_bwd:.2f} | {flex_bwd:.2f} | "
            f"{difference:.1e} |", flush=True)


if __name__ == "__main__":
  main()
