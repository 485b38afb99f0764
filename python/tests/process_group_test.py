"""Runs on every rank under mpirun (bazel/mpi_run.sh): torch.distributed
initialised with gloo from Open MPI's environment, and the ring and
distributed classes taking their ranks from the process group (mapped onto
MPI, and through gloo itself), each rank holding its contiguous shard,
against the single-process modules on the whole sequence, forward and
backward; subgroups. Exits nonzero on any rank that disagrees."""

import os
import sys

import torch
import torch.distributed as dist

import dilated_attention_torch as dat
from dilated_attention_torch import distributed

# Both sides compute in float32; the sharded one merges partial softmaxes
# by their log-sum-exp, which reorders the sums: rounding-level differences.
TOLERANCE = 1e-5
# Through the float32 projections and layer norms of width 32.
PROJECTED_TOLERANCE = 5e-5


def init_process_group():
    rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
    size = int(os.environ["OMPI_COMM_WORLD_SIZE"])
    # A file store in the run's own session directory (bazel/mpi_run.sh):
    # no port to agree on.
    store = os.path.join(os.environ["OMPI_MCA_orte_tmpdir_base"],
                         "torch_store")
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                            world_size=size)
    return rank, size


def compare(failures, name, got, want, tolerance):
    error = (got - want).abs().max().item()
    if not error <= tolerance:
        failures.append(f"{name}: max error {error:.3g}")


def check_attention_modules(rank, size, failures):
    torch.manual_seed(0)  # The same tensors on every rank.
    b, n, h, d = 2, 64, 3, 8
    segments, rates = [16, 32, 64], [1, 2, 4]
    q, k, v, grad = (torch.randn(b, n, h, d) for _ in range(4))
    rows = slice(rank * n // size, (rank + 1) * n // size)
    # The group's own backend (gloo) carrying the traffic instead of MPI.
    through_gloo = distributed.process_group_communicator(
        engine="process_group")
    modules = {
        "RingDilatedAttention": dat.RingDilatedAttention(segments, rates),
        "RingDilatedAttention(group)": dat.RingDilatedAttention(
            segments, rates, communicator=dist.group.WORLD),
        "RingDilatedAttention(gloo engine)": dat.RingDilatedAttention(
            segments, rates, communicator=through_gloo),
        "DistributedImprovedDilatedAttention":
            dat.DistributedImprovedDilatedAttention(
                segments, rates, sequence_parallel=True),
        "DistributedImprovedDilatedAttention(gloo engine)":
            dat.DistributedImprovedDilatedAttention(
                segments, rates, sequence_parallel=True,
                communicator=through_gloo),
    }
    # The functional API with the process group itself.
    compare(failures, "dilated_attention(communicator=group)",
            dat.dilated_attention(q[:, rows], k[:, rows], v[:, rows],
                                  segments, rates, impl="ring",
                                  communicator=dist.group.WORLD),
            dat.dilated_attention(q, k, v, segments, rates)[:, rows],
            TOLERANCE)
    for causal in (False, True):
        whole = [t.clone().requires_grad_() for t in (q, k, v)]
        expected = dat.ImprovedDilatedAttention(segments, rates)(
            *whole, is_causal=causal)
        expected.backward(grad)
        for name, module in modules.items():
            shard = [t[:, rows].clone().requires_grad_() for t in (q, k, v)]
            out = module(*shard, is_causal=causal)
            out.backward(grad[:, rows])
            label = f"{name} causal={causal}"
            compare(failures, f"{label} out", out, expected[:, rows],
                    TOLERANCE)
            for grad_name, part, full in zip(("grad_q", "grad_k", "grad_v"),
                                             shard, whole):
                compare(failures, f"{label} {grad_name}", part.grad,
                        full.grad[:, rows], TOLERANCE)


def check_multihead(rank, size, failures):
    torch.manual_seed(1)
    plain = dat.MultiheadDilatedAttention(32, 4, [1, 2], [32, 64])
    sharded = dat.DistributedImprovedMultiheadDilatedAttention(
        32, 4, [32, 64], [1, 2], sequence_parallel=True)
    sharded.load_state_dict(plain.state_dict())
    x = torch.randn(2, 64, 32)
    rows = slice(rank * 64 // size, (rank + 1) * 64 // size)
    compare(failures, "DistributedImprovedMultiheadDilatedAttention",
            sharded(x[:, rows], is_causal=True),
            plain(x, is_causal=True)[:, rows], PROJECTED_TOLERANCE)
    improved = dat.ImprovedMultiheadDilatedAttention(32, 4, [1, 2], [32, 64])
    ring = dat.RingMultiheadDilatedAttention(32, 4, [32, 64], [1, 2])
    ring.load_state_dict(improved.state_dict())
    compare(failures, "RingMultiheadDilatedAttention",
            ring(x[:, rows], is_causal=True),
            improved(x, is_causal=True)[0][:, rows], PROJECTED_TOLERANCE)


def check_subgroups(rank, failures):
    subgroup = dist.new_group(ranks=[0])  # Collective: every rank calls it.
    if rank != 0:
        return
    try:
        distributed.process_group_communicator(subgroup, engine="mpi")
        failures.append("a subgroup was mapped onto MPI")
    except ValueError as error:
        if "subgroup" not in str(error):
            failures.append(f"subgroup refused with: {error}")
    # Any group through its own backend: here one rank, the whole sequence.
    communicator = distributed.process_group_communicator(subgroup)
    if (communicator.rank, communicator.size) != (0, 1):
        failures.append(f"subgroup communicator {communicator}")
    torch.manual_seed(2)
    q, k, v = (torch.randn(1, 32, 2, 8) for _ in range(3))
    compare(failures, "RingDilatedAttention(subgroup)",
            dat.RingDilatedAttention([16, 32], [1, 2],
                                     communicator=subgroup)(q, k, v),
            dat.ImprovedDilatedAttention([16, 32], [1, 2])(q, k, v),
            TOLERANCE)


def main():
    rank, size = init_process_group()
    if size < 2:
        print("needs at least 2 ranks", file=sys.stderr)
        return 1
    failures = []
    check_attention_modules(rank, size, failures)
    check_multihead(rank, size, failures)
    check_subgroups(rank, failures)
    for failure in failures:
        print(f"rank {rank}: FAIL {failure}", file=sys.stderr)
    print(f"rank {rank} of {size}: {'FAIL' if failures else 'PASS'}")
    dist.destroy_process_group()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
