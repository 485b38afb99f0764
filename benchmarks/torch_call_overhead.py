"""Per-call overhead of the PyTorch package over the C++ call it makes.

Runs //benchmarks:call_overhead_benchmark (Attention::Forward, and Forward +
Backward, at tiny shapes) and, in the same run, the same calls through
dilated_attention_torch: the functional API without autograd, and forward +
backward through autograd. Prints each time and the difference, which is what
the package adds (dispatch, argument checks, output allocation, autograd).

  ./bazelw run -c opt //benchmarks:torch_call_overhead
"""

import json
import os
import subprocess
import sys
import timeit

import torch

import dilated_attention_torch as dat

SHAPES = [(16, 2), (256, 4)]  # (seq, heads), head_dim 16: as in the C++ side.
HEAD_DIM = 16


def cpp_times(binary, threads):
    """Microseconds per call of every C++ case, by name, with `threads`
    OpenMP threads (as the kernels get in this process)."""
    result = subprocess.run(
        [binary, "--benchmark_format=json", "--benchmark_repetitions=5",
         "--benchmark_report_aggregates_only=true"],
        check=True, capture_output=True, text=True,
        env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    times = {}
    for entry in json.loads(result.stdout)["benchmarks"]:
        if entry.get("aggregate_name") == "median":
            times[entry["run_name"].split("/min_time")[0]] = entry["real_time"]
    return times


def python_time(function, repeat=5):
    """Median microseconds per call."""
    function()
    number = max(1, int(0.2 / max(timeit.timeit(function, number=1), 1e-6)))
    runs = sorted(timeit.repeat(function, number=number, repeat=repeat))
    return runs[len(runs) // 2] / number * 1e6


def main():
    binary = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "call_overhead_benchmark")
    # One thread on both sides: the overhead is per call, and a single
    # thread keeps other load on the machine from scheduling noise. torch and
    # the kernels share one OpenMP runtime in this process.
    threads = 1
    torch.set_num_threads(threads)
    cpp = cpp_times(binary, threads)
    print(f"torch {torch.__version__}, {threads} thread(s); "
          "microseconds per call (median of 5)")
    print(f"{'case':32} {'C++':>10} {'PyTorch':>10} {'overhead':>10}")
    for impl in ("standard", "improved"):
        for seq, heads in SHAPES:
            segments, rates = [seq // 2, seq], [1, 2]
            q, k, v, grad = (torch.randn(1, seq, heads, HEAD_DIM)
                             for _ in range(4))
            leaves = [t.clone().requires_grad_() for t in (q, k, v)]

            def forward():
                with torch.no_grad():
                    dat.dilated_attention(q, k, v, segments, rates, impl=impl)

            def forward_backward():
                out = dat.dilated_attention(*leaves, segments, rates,
                                            impl=impl)
                out.backward(grad)

            for suffix, function in (("fwd", forward),
                                     ("fwd_bwd", forward_backward)):
                name = f"{impl}/n:{seq}/h:{heads}/{suffix}"
                ours = python_time(function)
                print(f"{name:32} {cpp[name]:10.2f} {ours:10.2f} "
                      f"{ours - cpp[name]:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
