"""Config B (b=4, n=2048, h=12, d=64, segments 512/1024/2048, rates 1/2/4,
float16) through the PyTorch package's functional API on the GPU: forward
without a gradient and forward + backward, ten calls in a row between two
CUDA events (GPU ms per call) and the host's own time per call in that loop.
Where the two meet, the calls are bound by the host (Python, autograd,
launches), not by the kernels.

  python3 torch_host_time.py [label]      (after run_python.sh installed the wheel)
"""

import statistics
import sys
import time

import torch

import dilated_attention_torch as dat


def in_a_row_ms(fn, calls=10, repeats=15):
  """Medians of (GPU ms, host ms) per call of `calls` calls in a row."""
  for _ in range(20):
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
