"""The factory's names for the ring, distributed and block-sparse classes,
the registries, and the adaptive refusal."""

import importlib
import unittest

import torch

import dilated_attention_torch as da
from dilated_attention_torch import core


class FactoryTest(unittest.TestCase):

    def test_attention_names(self):
        expected = {
            "ring": da.RingDilatedAttentionV2Collective,
            "distributed": da.DistributedImprovedDilatedAttention,
            "improved_distributed": da.DistributedImprovedDilatedAttention,
            "block_sparse_ring": da.BlockSparseRingDilatedAttention,
            "block_sparse": da.BlockSparseRingDilatedAttention,
        }
        for name, cls in expected.items():
            with self.subTest(name=name):
                # dropout and use_tf32 for every name, as the Python
                # library's callers pass them.
                module = da.create_dilated_attention(
                    name, [16, 32], [1, 2], dropout=0.0, use_tf32=True)
                self.assertIs(type(module), cls)

    def test_multihead_names(self):
        expected = {
            "ring": da.RingMultiheadDilatedAttention,
            "distributed": da.DistributedImprovedMultiheadDilatedAttention,
            "improved_distributed":
                da.DistributedImprovedMultiheadDilatedAttention,
            "block_sparse_ring": da.BlockSparseRingMultiheadDilatedAttention,
        }
        for name, cls in expected.items():
            with self.subTest(name=name):
                module = da.create_multihead_dilated_attention(
                    name, embed_dim=32, num_heads=4, segment_lengths=[16, 32],
                    dilation_rates=[1, 2], enable_memory_pool=True)
                self.assertIs(type(module), cls)

    def test_ring_module_computes_dilated_attention(self):
        generator = torch.Generator().manual_seed(1)
        q, k, v = (torch.randn(1, 32, 2, 8, generator=generator)
                   for _ in range(3))
        ring = da.create_dilated_attention("ring", [16, 32], [1, 2])
        improved = da.create_dilated_attention("improved", [16, 32], [1, 2])
        torch.testing.assert_close(ring(q, k, v, is_causal=True),
                                   improved(q, k, v, is_causal=True))

    def test_block_sparse_attention(self):
        module = da.create_block_sparse_attention(
            sparsity_ratio=0.5, pattern_type="local_window", embed_dim=32,
            num_heads=4, segment_lengths=[64], dilation_rates=[1],
            block_size=16)
        self.assertIsInstance(module,
                              da.BlockSparseRingMultiheadDilatedAttention)
        config = module.attention.sparse_config
        self.assertEqual((config.pattern_type, config.sparsity_ratio,
                          config.block_size), ("local_window", 0.5, 16))
        x = torch.randn(1, 64, 32)
        self.assertEqual(module(x, x, x).shape, x.shape)

    def test_adaptive_is_refused(self):
        with self.assertRaisesRegex(NotImplementedError, "learned"):
            da.create_adaptive_sparse_attention(embed_dim=32, num_heads=4)

    def test_registries(self):
        class Custom(da.DilatedAttention):
            pass
        core.register_attention("custom_test", Custom)
        self.assertIs(type(da.create_dilated_attention("custom_test", [8],
                                                       [1])), Custom)
        core.register_multihead_attention("multihead_custom_test",
                                          da.MultiheadDilatedAttention)
        self.assertIs(type(da.create_multihead_dilated_attention(
            "custom_test", embed_dim=32, num_heads=4, segment_lengths=[8],
            dilation_rates=[1])), da.MultiheadDilatedAttention)

    def test_unknown_names_and_arguments(self):
        with self.assertRaisesRegex(ValueError, "Unknown attention type "
                                    "'nope'. Available types: .*'ring'"):
            da.create_multihead_dilated_attention("nope")
        with self.assertRaisesRegex(TypeError, "RingDilatedAttentionV2"
                                    "Collective does not take the argument "
                                    "'sequence_parallel'"):
            da.create_dilated_attention("ring", [8], [1],
                                        sequence_parallel=True)


class ModulePathsTest(unittest.TestCase):

    def test_the_python_librarys_module_paths(self):
        paths = {
            "block_sparse_ring_dilated_attention": [
                "BlockSparseRingDilatedAttention", "SparsePatternConfig"],
            "block_sparse_ring_multihead_dilated_attention": [
                "BlockSparseRingMultiheadDilatedAttention"],
            "block_sparse_optimized": ["BlockSparseOptimized"],
            "block_sparse_torch_sparse": ["BlockSparseTorchSparse"],
            "block_sparse_hierarchical": [
                "BlockSparseHierarchical", "HierarchicalConfig",
                "create_hierarchical_attention", "get_hierarchical_presets"],
            "ring_dilated_attention_v2_collective": [
                "RingDilatedAttentionV2Collective", "RingDilatedAttention"],
            "ring_dilated_attention_v2": ["RingDilatedAttentionV2"],
            "ring_dilated_attention_production": [
                "RingDilatedAttentionProduction", "RingAttentionConfig",
                "create_production_ring_attention"],
            "improved_distributed_dilated_attention": [
                "DistributedImprovedDilatedAttention",
                "DistributedImprovedMultiheadDilatedAttention"],
            "core": ["create_block_sparse_attention",
                     "create_adaptive_sparse_attention"],
        }
        for path, names in paths.items():
            module = importlib.import_module(f"dilated_attention_torch.{path}")
            for name in names:
                with self.subTest(name=f"{path}.{name}"):
                    self.assertIs(getattr(module, name), getattr(da, name))
                    self.assertIn(name, da.__all__)


if __name__ == "__main__":
    unittest.main()
