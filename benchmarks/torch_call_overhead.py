"""Per-call overhead of the PyTorch package over the C++ call it makes.

Runs //benchmarks:call_overhead_benchmark (Attention::Forward, and Forward +
Backward, at tiny shapes) and, in the same run, the same calls through
dilated_attention_torch: the functional API without autograd, and forward +
backward through autograd. Prints each time and the difference, which is what
the package adds (dispatch, argument checks, output allocation, autograd).
Each case is timed twice: through the functional API, and with the
operator torch.ops.dilated_attention.forward called directly (its autograd
registered with torch.library, which the dispatcher runs on every call, also
without a gradient; the functional API dispatches below it).

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


def python_times(*functions, repeat=5):
    """Median microseconds per call of each function, their runs taken in
    turn (A B A B ...) so that a change in the machine's load reaches all."""
    numbers = []
    for function in functions:
        function()
        numbers.append(max(1, int(
            0.2 / max(timeit.timeit(function, number=1), 1e-6))))
    runs = [[] for _ in functions]
    for _ in range(repeat):
        for function, number, times in zip(functions, numbers, runs):
            times.append(timeit.timeit(function, number=number) / number)
    return [sorted(times)[len(times) // 2] * 1e6 for times in runs]


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
          "microseconds per call (median of 7, the cases of a shape in turn)")
    print(f"{'case':38} {'C++':>10} {'PyTorch':>10} {'overhead':>10}")
    for impl in ("standard", "improved"):
        for seq, heads in SHAPES:
            segments, rates = [seq // 2, seq], [1, 2]
            q, k, v, grad = (torch.randn(1, seq, heads, HEAD_DIM)
                             for _ in range(4))
            leaves = [t.clone().requires_grad_() for t in (q, k, v)]

            def forward():
                with torch.no_grad():
                    dat.dilated_attention(q, k, v, segments, rates, impl=impl)

            def operator_forward():
                with torch.no_grad():
                    torch.ops.dilated_attention.forward(
                        q, k, v, segments, rates, False, None, impl, None,
                        None)

            def forward_backward():
                out = dat.dilated_attention(*leaves, segments, rates,
                                            impl=impl)
                out.backward(grad)

            def operator_forward_backward():
                out, _ = torch.ops.dilated_attention.forward(
                    *leaves, segments, rates, False, None, impl, None, None)
                out.backward(grad)

            prefix = f"{impl}/n:{seq}/h:{heads}/"
            rows = [("fwd", "fwd"), ("fwd", "fwd (operator)"),
                    ("fwd_bwd", "fwd_bwd"), ("fwd_bwd", "fwd_bwd (operator)")]
            times = python_times(forward, operator_forward, forward_backward,
                                 operator_forward_backward, repeat=7)
            for (case, label), ours in zip(rows, times):
                cpp_time = cpp[prefix + case]
                print(f"{prefix + label:38} {cpp_time:10.2f} {ours:10.2f} "
                      f"{ours - cpp_time:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
