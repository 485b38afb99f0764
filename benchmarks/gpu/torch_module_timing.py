"""Config A (b=1, h=8, d=64, segments 2048/4096/8192, rates 1/2/4, fp16) at
n = 1M on the GPU: the PyTorch package's functional API, timed with CUDA
events, against the kernels alone in the same process (the operator called
with the outputs' allocation and Python argument checks left out is not
available from Python, so the reference is torch.profiler's CUDA kernel time
of the same calls). Prints both and their ratio.

  python torch_module_timing.py      (after run_python.sh installed the wheel)
"""

import torch
from torch.profiler import ProfilerActivity, profile

import dilated_attention_torch as dat

SEGMENTS, RATES = [2048, 4096, 8192], [1, 2, 4]


def timed(function, repeats=20):
    function()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        function()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def kernel_milliseconds(function, repeats=20):
    with profile(activities=[ProfilerActivity.CUDA]) as trace:
        for _ in range(repeats):
            function()
        torch.cuda.synchronize()
    total_us = sum(event.device_time_total for event in trace.key_averages())
    return total_us / 1e3 / repeats


def main():
    n = 1 << 20
    q, k, v = (torch.randn(1, n, 8, 64, device="cuda", dtype=torch.float16)
               for _ in range(3))
    for causal in (False, True):
        def call():
            with torch.no_grad():
                dat.dilated_attention(q, k, v, SEGMENTS, RATES,
                                      is_causal=causal)
        module_ms = timed(call)
        kernels_ms = kernel_milliseconds(call)
        print(f"config A n=1M fp16 {'causal' if causal else 'full'}: "
              f"functional API {module_ms:.3f} ms, its CUDA kernels "
              f"{kernels_ms:.3f} ms, ratio {module_ms / kernels_ms:.3f}")


if __name__ == "__main__":
    main()
