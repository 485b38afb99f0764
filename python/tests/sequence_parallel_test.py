"""Runs on every rank under mpirun (bazel/mpi_run.sh): "ring" and
"distributed" over the MPI communicator, each rank holding its contiguous
shard, against the single-process "improved" on the whole sequence, forward
and backward, causal and not. Exits nonzero on any rank that disagrees."""

import sys

import torch

import dilated_attention_torch as dat
from dilated_attention_torch.distributed import mpi_communicator

# Both sides compute in float32; the sharded one merges partial softmaxes
# by their log-sum-exp, which reorders the sums: rounding-level differences.
TOLERANCE = 1e-5


def main():
    comm = mpi_communicator(timeout_seconds=120)
    if comm.size < 2:
        print("needs at least 2 ranks", file=sys.stderr)
        return 1
    torch.manual_seed(0)  # The same tensors on every rank.
    b, n, h, d = 2, 128, 4, 16
    segments, rates = [32, 64, 128], [1, 2, 4]
    q, k, v, grad = (torch.randn(b, n, h, d) for _ in range(4))
    rows = slice(comm.rank * n // comm.size, (comm.rank + 1) * n // comm.size)
    failures = []
    for impl in ("ring", "distributed"):
        for causal in (False, True):
            whole = [t.clone().requires_grad_() for t in (q, k, v)]
            expected = dat.dilated_attention(*whole, segments, rates,
                                             is_causal=causal, impl="improved")
            expected.backward(grad)
            shard = [t[:, rows].clone().requires_grad_() for t in (q, k, v)]
            out = dat.dilated_attention(*shard, segments, rates,
                                        is_causal=causal, impl=impl,
                                        communicator=comm)
            out.backward(grad[:, rows])
            pairs = [("out", out, expected[:, rows])] + [
                (name, part.grad, full.grad[:, rows])
                for name, part, full in zip(("grad_q", "grad_k", "grad_v"),
                                            shard, whole)]
            for name, got, want in pairs:
                error = (got - want).abs().max().item()
                if not error <= TOLERANCE:
                    failures.append(f"{impl} causal={causal} {name}: "
                                    f"max error {error:.3g}")
    for failure in failures:
        print(f"rank {comm.rank}: FAIL {failure}", file=sys.stderr)
    print(f"rank {comm.rank} of {comm.size}: "
          f"{'FAIL' if failures else 'PASS'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
