"""One PyTorch SDPA call on a batch of dense 2048-token problems, for Nsight
Compute: the inputs are made and the backend warmed up outside the profiled
range, so `ncu --profile-from-start off` sees only the attention kernels of
one forward (and backward) pass. Prints the pass's time from CUDA events.

  ncu --profile-from-start off --clock-control none --section LaunchStats \
      --section SpeedOfLight --section ComputeWorkloadAnalysis \
      --section WarpStateStats --section SchedulerStats \
      python3 sdpa_profile.py --head_dim 64 --heads 8 --batch 512 [--backward]
"""
import argparse

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {"cudnn": SDPBackend.CUDNN_ATTENTION,
            "flash": SDPBackend.FLASH_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}
SEQ = 2048


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--head_dim", type=int, default=64)
  parser.add_argument("--heads", type=int, default=8)
  parser.add_argument("--batch", type=int, default=512)
  parser.add_argument("--backend", choices=sorted(BACKENDS), default="cudnn")
  parser.add_argument("--causal", action="store_true")
  parser.add_argument("--backward", action="store_true")
  args = parser.parse_args()
  shape = (args.batch, args.heads, SEQ, args.head_dim)
  q, k, v = (torch.randn(shape, device="cuda", dtype=torch.float16,
                         requires_grad=args.backward) for _ in range(3))
  grad = torch.randn(shape, device="cuda", dtype=torch.float16)

  def step():
    out = F.scaled_dot_product_attention(q, k, v, is_causal=args.causal)
    if args.backward:
      out.backward(grad)

  with sdpa_kernel(BACKENDS[args.backend]):
    for _ in range(3):
      step()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(5):
      step()
    end.record()
    torch.cuda.synchronize()
    ms = start.elapsed_time(end) / 5
    flops = (4.0 * args.batch * args.heads * SEQ * SEQ * args.head_dim *
             (0.5 if args.causal else 1.0) * (3.5 if args.backward else 1.0))
    print(f"{args.backend} d={args.head_dim} h={args.heads} b={args.batch} "
          f"causal={args.causal} backward={args.backward}: {ms:.3f} ms, "
          f"{flops / ms / 1e9:.0f} TFLOP/s", flush=True)
    torch.cuda.profiler.start()
    step()
    torch.cuda.synchronize()
    torch.cuda.profiler.stop()


if __name__ == "__main__":
  main()
