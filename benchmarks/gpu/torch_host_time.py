"""Config B (b=4, n=2048, h=12, d=64, segments 512/1024/2048, rates 1/2/4,
float16) through the PyTorch package's functional API on the GPU: forward
without a gradient and forward + backward, ten calls in a row between two
CUDA events (GPU ms per call) and the host's own time per call in that loop.
Where the two meet, the calls are bound by the host (Python, autograd,
launches), not by the kernels.

  python3 torch_host_time.py [label]      (after run_python.sh installed the wheel)
"""

import sys

import torch

import dilated_attention_torch as dat
from sparse_compare import timed_ms


def in_a_row_ms(fn):
  """Medians of (GPU ms, host ms) per call of ten calls in a row, after
  twenty warm-up calls."""
  for _ in range(20):
    fn()
  return timed_ms(fn, repeats=15, calls=10)


def main():
  label = sys.argv[1] if len(sys.argv) > 1 else ""
  shape = (4, 2048, 12, 64)
  q, k, v = (torch.randn(shape, device="cuda", dtype=torch.float16,
                         requires_grad=True) for _ in range(3))
  grad = torch.randn(shape, device="cuda", dtype=torch.float16)

  def call():
    return dat.dilated_attention(q, k, v, [512, 1024, 2048], [1, 2, 4],
                                 impl="improved")

  def forward():
    with torch.no_grad():
      call()

  def forward_backward():
    call().backward(grad)

  cases = []
  for name, fn in (("fwd", forward), ("fwd+bwd", forward_backward)):
    gpu, host = in_a_row_ms(fn)
    cases.append(f"{name}: in a row {gpu:.3f} ms, host {host:.3f} ms")
  print(label, " | ".join(cases), flush=True)


if __name__ == "__main__":
  main()
