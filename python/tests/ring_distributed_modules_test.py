"""The ring and distributed classes in one process: the single-process
result (what ImprovedDilatedAttention and the oracle compute), the Python
library's constructor arguments, state-dict names and refusals. Across
processes: process_group_test.py under mpirun."""

import os
import tempfile
import unittest

import torch
import torch.distributed as dist

import dilated_attention_torch as da
import oracle
from dilated_attention_torch import distributed

# float32 kernels against a float64 oracle on rows of at most 32 keys (as in
# ops_test): a few float32 ulps; a wrong mask or group is orders larger.
FLOAT32_TOLERANCE = 1e-5


def random_inputs(shape, seed, count=3):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) for _ in range(count)]


SEGMENTS, RATES = [8, 16, 32], [1, 2, 4]


class OneProcessTest(unittest.TestCase):

    def test_equal_the_single_process_result(self):
        q, k, v, grad = random_inputs((2, 32, 3, 8), seed=1, count=4)
        modules = {
            "ring": da.RingDilatedAttention(SEGMENTS, RATES),
            "ring_size_4": da.RingDilatedAttentionV2Collective(
                SEGMENTS, RATES, ring_size=4),
            "distributed": da.DistributedImprovedDilatedAttention(
                SEGMENTS, RATES),
            "sequence_parallel": da.DistributedImprovedDilatedAttention(
                SEGMENTS, RATES, sequence_parallel=True),
        }
        for causal in (False, True):
            reference = [t.double().requires_grad_() for t in (q, k, v)]
            expected = oracle.dilated_attention(*reference, SEGMENTS, RATES,
                                                is_causal=causal)
            expected.backward(grad.double())
            for name, module in modules.items():
                with self.subTest(module=name, causal=causal):
                    inputs = [t.clone().requires_grad_() for t in (q, k, v)]
                    out = module(*inputs, is_causal=causal)
                    out.backward(grad)
                    torch.testing.assert_close(out.double(), expected,
                                               atol=FLOAT32_TOLERANCE, rtol=0)
                    for got, want in zip(inputs, reference):
                        # Gradients sum over more terms (as in ops_test).
                        torch.testing.assert_close(got.grad.double(),
                                                   want.grad, atol=5e-5,
                                                   rtol=0)

    def test_implementations(self):
        self.assertEqual(da.RingDilatedAttention([8], [1]).implementation,
                         "ring")
        self.assertIs(da.RingDilatedAttention,
                      da.RingDilatedAttentionV2Collective)
        self.assertEqual(
            da.DistributedImprovedDilatedAttention(
                [8], [1], sequence_parallel=True).implementation,
            "distributed")
        self.assertEqual(
            da.DistributedImprovedDilatedAttention([8], [1]).implementation,
            "improved")

    def test_the_python_librarys_constructor_arguments(self):
        ring = da.RingDilatedAttentionV2Collective(
            [8], [1], 0.0, 2, None, torch.float16, True, True, False, False,
            32.0)
        self.assertEqual((ring.ring_size, ring.dtype,
                          ring.memory_pool_threshold_mb),
                         (2, torch.float16, 32.0))
        multihead = da.DistributedImprovedMultiheadDilatedAttention(
            32, 4, [8, 16], [1, 2], use_deepspeed=False,
            communication_backend="gloo", cpu_offload=True)
        self.assertEqual(multihead.communication_backend, "gloo")

    def test_multihead_state_dict_and_function(self):
        torch.manual_seed(0)
        plain = da.MultiheadDilatedAttention(32, 4, [1, 2], [8, 16])
        distributed_module = da.DistributedImprovedMultiheadDilatedAttention(
            32, 4, [8, 16], [1, 2], sequence_parallel=True)
        self.assertEqual(set(distributed_module.state_dict()),
                         set(plain.state_dict()))
        distributed_module.load_state_dict(plain.state_dict(), strict=True)
        (x,) = random_inputs((2, 16, 32), seed=2, count=1)
        torch.testing.assert_close(distributed_module(x, x, x),
                                   plain(x, x, x))
        out, weights = distributed_module(x, need_weights=True)
        self.assertIsNone(weights)

    def test_deprecated_and_production_ring_classes(self):
        q, k, v = random_inputs((1, 32, 3, 8), seed=6)
        with self.assertWarnsRegex(DeprecationWarning,
                                   "will be removed in v0.3.0"):
            v2 = da.RingDilatedAttentionV2(SEGMENTS, RATES, ring_size=2)
        production = da.create_production_ring_attention(
            SEGMENTS, RATES, attention_scale=0.25, mixed_precision=True)
        self.assertIsInstance(production.config, da.RingAttentionConfig)
        for causal in (False, True):
            with self.subTest(causal=causal):
                torch.testing.assert_close(
                    v2(q, k, v, is_causal=causal).double(),
                    oracle.dilated_attention(q, k, v, SEGMENTS, RATES,
                                             is_causal=causal),
                    atol=FLOAT32_TOLERANCE, rtol=0)
                out = production(q, k, v, is_causal=causal)
                # float32 in, float32 out, whatever mixed_precision says.
                self.assertEqual(out.dtype, torch.float32)
                torch.testing.assert_close(
                    out.double(),
                    oracle.dilated_attention(q, k, v, SEGMENTS, RATES,
                                             is_causal=causal,
                                             softmax_scale=0.25),
                    atol=FLOAT32_TOLERANCE, rtol=0)
        self.assertEqual(production.get_memory_stats()["forward_count"], 2)
        for module in (v2, production):
            with self.assertRaisesRegex(NotImplementedError,
                                        "attention_mask"):
                module(q, k, v, attention_mask=torch.ones(32, 32))
        with self.assertRaisesRegex(AssertionError, "segment_lengths and "
                                    "dilation_rates must have same length"):
            da.RingAttentionConfig([8, 16], [1])
        with self.assertRaisesRegex(AssertionError, "All dilation rates "
                                    "must be positive"):
            da.RingAttentionConfig([8], [0])
        with self.assertRaisesRegex(TypeError, "config must be a "
                                    "RingAttentionConfig, got dict"):
            da.RingDilatedAttentionProduction({"segment_lengths": [8]})

    def test_ring_multihead_is_the_improved_multihead(self):
        torch.manual_seed(0)
        improved = da.ImprovedMultiheadDilatedAttention(32, 4, [1, 2], [8, 16])
        ring = da.RingMultiheadDilatedAttention(32, 4, [8, 16], [1, 2],
                                                ring_size=2)
        ring.load_state_dict(improved.state_dict(), strict=True)
        (x,) = random_inputs((2, 16, 32), seed=4, count=1)
        torch.testing.assert_close(ring(x, is_causal=True),
                                   improved(x, is_causal=True)[0])
        out, weights = ring(x, need_weights=True)
        self.assertIsNone(weights)

    def test_refusals_name_the_argument_and_value(self):
        cases = [
            (ValueError, "ring_size must be a positive int, got 0",
             lambda: da.RingDilatedAttention([8], [1], ring_size=0)),
            (ValueError, "segment_lengths and dilation_rates must have the "
             "same length", lambda: da.RingDilatedAttention([8, 16], [1])),
            (NotImplementedError, "model_parallel=True",
             lambda: da.DistributedImprovedDilatedAttention(
                 [8], [1], model_parallel=True)),
            (NotImplementedError, "model_parallel=True",
             lambda: da.DistributedImprovedMultiheadDilatedAttention(
                 32, 4, [8], [1], model_parallel=True)),
        ]
        for error, message, make in cases:
            with self.subTest(message=message):
                with self.assertRaisesRegex(error, message):
                    make()
        q, k, v = random_inputs((1, 8, 1, 8), seed=3)
        with self.assertRaisesRegex(TypeError, "communicator must be a "
                                    "Communicator.*got str"):
            da.RingDilatedAttention([8], [1], communicator="world")(q, k, v)

    def test_process_group_refusals(self):
        # torch.distributed is not initialised in this process.
        with self.assertRaisesRegex(ValueError, "not initialised"):
            distributed.process_group_communicator()
        self.assertIsNone(distributed.resolve_communicator(None))

    def test_process_group_outside_mpirun_is_refused(self):
        store = os.path.join(tempfile.mkdtemp(), "store")
        dist.init_process_group("gloo", init_method=f"file://{store}",
                                rank=0, world_size=1)
        saved = {name: os.environ.pop(name, None) for name in
                 ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK")}
        try:
            # One rank: nothing to map.
            self.assertIsNone(distributed.resolve_communicator(None))
            with self.assertRaisesRegex(ValueError, "launched by Open MPI's "
                                        "mpirun"):
                distributed.process_group_communicator(engine="mpi")
            with self.assertRaisesRegex(ValueError, "engine: unknown engine "
                                        "'nccl'"):
                distributed.process_group_communicator(engine="nccl")
            os.environ["OMPI_COMM_WORLD_SIZE"] = "2"
            os.environ["OMPI_COMM_WORLD_RANK"] = "1"
            with self.assertRaisesRegex(ValueError, "rank 0 of 1 is "
                                        "MPI_COMM_WORLD's rank 1 of 2"):
                distributed.process_group_communicator(dist.group.WORLD,
                                                       engine="mpi")
            # "auto" falls back to the group's own backend, here of one
            # rank, whose collectives the attention still goes through.
            communicator = distributed.process_group_communicator()
            self.assertEqual((communicator.rank, communicator.size), (0, 1))
            self.assertIs(distributed.process_group_communicator(),
                          communicator)
            q, k, v = random_inputs((1, 32, 3, 8), seed=5)
            torch.testing.assert_close(
                da.RingDilatedAttention(SEGMENTS, RATES,
                                        communicator=communicator)(q, k, v),
                da.ImprovedDilatedAttention(SEGMENTS, RATES)(q, k, v))
        finally:
            for name, value in saved.items():
                os.environ.pop(name, None)
                if value is not None:
                    os.environ[name] = value
            dist.destroy_process_group()


if __name__ == "__main__":
    unittest.main()
