"""Two processes started by torch.multiprocessing (no mpirun, as under
torchrun): torch.distributed with gloo, and the ring and distributed
classes running on the process group's own backend, each rank holding its
contiguous shard, against the single-process result, forward and
backward."""

import os
import tempfile
import unittest

import torch
import torch.distributed as dist
import torch.multiprocessing

# The sharded side merges partial softmaxes by their log-sum-exp, which
# reorders float32 sums: rounding-level differences.
TOLERANCE = 1e-5
RANKS = 2


def worker(rank, store):
    # Imported here: the spawned process imports this module afresh.
    import dilated_attention_torch as dat
    for name in ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"):
        os.environ.pop(name, None)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank,
                            world_size=RANKS)
    try:
        torch.manual_seed(0)  # The same tensors on every rank.
        b, n, h, d = 1, 64, 3, 8
        segments, rates = [16, 32, 64], [1, 2, 4]
        q, k, v, grad = (torch.randn(b, n, h, d) for _ in range(4))
        rows = slice(rank * n // RANKS, (rank + 1) * n // RANKS)
        whole = [t.clone().requires_grad_() for t in (q, k, v)]
        expected = dat.ImprovedDilatedAttention(segments, rates)(
            *whole, is_causal=True)
        expected.backward(grad)
        for module in (dat.RingDilatedAttention(segments, rates),
                       dat.DistributedImprovedDilatedAttention(
                           segments, rates, sequence_parallel=True)):
            shard = [t[:, rows].clone().requires_grad_() for t in (q, k, v)]
            out = module(*shard, is_causal=True)
            out.backward(grad[:, rows])
            torch.testing.assert_close(out, expected[:, rows],
                                       atol=TOLERANCE, rtol=0)
            for part, full in zip(shard, whole):
                torch.testing.assert_close(part.grad, full.grad[:, rows],
                                           atol=TOLERANCE, rtol=0)
    finally:
        dist.destroy_process_group()


class SpawnedProcessGroupTest(unittest.TestCase):

    def test_ring_and_distributed_over_gloo(self):
        store = os.path.join(tempfile.mkdtemp(), "store")
        # A failure on any rank raises here, naming the rank.
        torch.multiprocessing.spawn(worker, args=(store,), nprocs=RANKS,
                                    join=True)


if __name__ == "__main__":
    unittest.main()
