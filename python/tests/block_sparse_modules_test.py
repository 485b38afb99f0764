"""The block-sparse classes against the float64 oracle with the layout
expanded to a token mask, their attention weights, the Python library's
constructor arguments and state-dict names, and refusals."""

import unittest

import torch

import dilated_attention_torch as da
import dilated_attention_torch as dilated_attention_pytorch
import oracle

# float32 kernels against a float64 oracle on rows of at most 64 keys: a few
# float32 ulps of values of order 1; a wrong block is orders larger.
FLOAT32_TOLERANCE = 1e-5
# Through two float32 projections of width 32 on each side of the attention.
PROJECTED_TOLERANCE = 5e-5


def layout_of(rows, num_blocks):
    layout = torch.zeros(num_blocks, num_blocks, dtype=torch.bool)
    for i, keys in enumerate(rows):
        layout[i, list(keys)] = True
    return layout


def random_inputs(shape, seed, count=3):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) for _ in range(count)]


# (name, config, dilation_rates, layout of 4 blocks of 16 written out)
CONFIGS = [
    ("local_window",
     da.SparsePatternConfig(pattern_type="local_window", block_size=16,
                            local_window_size=32), [1],
     layout_of([[0, 1], [0, 1, 2], [1, 2, 3], [2, 3]], 4)),
    # Block distances from dilation_rates: 0, +-2.
    ("dilated_sparse",
     da.SparsePatternConfig(pattern_type="dilated_sparse", block_size=16),
     [2], layout_of([[0, 2], [1, 3], [0, 2], [1, 3]], 4)),
    # 20 global tokens round up to 2 global blocks.
    ("global_local",
     da.SparsePatternConfig(pattern_type="global_local", block_size=16,
                            local_window_size=16, global_tokens=20), [1],
     layout_of([[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2], [0, 1, 3]], 4)),
]


class BlockSparseRingDilatedAttentionTest(unittest.TestCase):

    def test_patterns_match_the_oracle(self):
        q, k, v = random_inputs((2, 64, 2, 8), seed=1)
        for name, config, rates, layout in CONFIGS:
            for causal in (False, True):
                with self.subTest(pattern=name, causal=causal):
                    attention = da.BlockSparseRingDilatedAttention(
                        [64], rates, sparse_config=config)
                    expected = oracle.masked_attention(
                        q, k, v, oracle.expand_block_layout(layout, 16),
                        is_causal=causal)
                    torch.testing.assert_close(
                        attention(q, k, v, is_causal=causal).double(),
                        expected, atol=FLOAT32_TOLERANCE, rtol=0)

    def test_custom_layout(self):
        q, k, v = random_inputs((1, 32, 2, 8), seed=2)
        layout = layout_of([[0, 3], [1], [], [0, 1, 2, 3]], 4)
        attention = da.BlockSparseRingDilatedAttention(
            [32], [1], sparse_config={"block_size": 8}, block_layout=layout)
        torch.testing.assert_close(
            attention(q, k, v).double(),
            oracle.masked_attention(q, k, v,
                                    oracle.expand_block_layout(layout, 8)),
            atol=FLOAT32_TOLERANCE, rtol=0)

    def test_gradients_match_the_oracle(self):
        q, k, v, grad = random_inputs((1, 64, 2, 8), seed=3, count=4)
        name, config, rates, layout = CONFIGS[0]
        inputs = [t.clone().requires_grad_() for t in (q, k, v)]
        da.BlockSparseRingDilatedAttention([64], rates, config)(
            *inputs, is_causal=True).backward(grad)
        reference = [t.double().requires_grad_() for t in (q, k, v)]
        oracle.masked_attention(*reference,
                                oracle.expand_block_layout(layout, 16),
                                is_causal=True).backward(grad.double())
        for got, want in zip(inputs, reference):
            # Gradients sum over more terms than the output.
            torch.testing.assert_close(got.grad.double(), want.grad,
                                       atol=5e-5, rtol=0)

    def test_attention_weights_are_one_softmax_per_row(self):
        q, k = random_inputs((2, 64, 2, 8), seed=4, count=2)
        name, config, rates, layout = CONFIGS[2]
        attention = da.BlockSparseRingDilatedAttention([64], rates, config)
        out, weights = attention(q, k, k, is_causal=True,
                                 return_attention_weights=True)
        self.assertEqual(weights["block_size"], 16)
        self.assertEqual(weights["shape"], (2, 2, 64, 64))
        self.assertEqual(weights["num_blocks"], (4, 4))
        expected_pairs = [tuple(p) for p in layout.nonzero().tolist()]
        self.assertEqual(weights["block_indices"], expected_pairs)
        dense = torch.zeros(2, 2, 64, 64, dtype=torch.float64)
        for (i, j), block in zip(weights["block_indices"],
                                 weights["block_values"]):
            self.assertEqual(block.device.type, "cpu")
            dense[:, :, i * 16:(i + 1) * 16, j * 16:(j + 1) * 16] = block
        # The oracle's probabilities: its output for v = identity columns.
        allowed = oracle.expand_block_layout(layout, 16)
        eye = torch.eye(64, dtype=torch.float64)[None, :, None, :].expand(
            2, 64, 2, 64)
        scores_q = q.double()
        expected = oracle.masked_attention(
            torch.cat([scores_q, torch.zeros(2, 64, 2, 56,
                                             dtype=torch.float64)], -1),
            torch.cat([k.double(), torch.zeros(2, 64, 2, 56,
                                               dtype=torch.float64)], -1),
            eye, allowed, is_causal=True, softmax_scale=8 ** -0.5)
        torch.testing.assert_close(dense, expected.permute(0, 2, 1, 3),
                                   atol=FLOAT32_TOLERANCE, rtol=0)
        # Every row's weights add up to 1 over all its blocks (the Python
        # library's add up to the row's number of blocks).
        torch.testing.assert_close(dense.sum(-1),
                                   torch.ones(2, 2, 64, dtype=torch.float64),
                                   atol=FLOAT32_TOLERANCE, rtol=0)

    def test_the_python_librarys_constructor_arguments(self):
        attention = da.BlockSparseRingDilatedAttention(
            [64], [1], sparsity_config={"pattern_type": "local_window"},
            sparsity_ratio=0.25, use_tf32=True, quality_threshold=0.9,
            ring_size=2, dropout=0.0, use_pattern_cache=False)
        self.assertEqual(attention.sparse_config.pattern_type, "local_window")
        self.assertEqual(attention.sparse_config.sparsity_ratio, 0.25)
        self.assertEqual(attention.ring_size, 2)
        self.assertEqual(da.SparsePatternConfig(),
                         da.SparsePatternConfig("dilated_sparse", 0.1, 128,
                                                512, 64))
        # The Python library's module paths.
        module = dilated_attention_pytorch.block_sparse_ring_dilated_attention
        self.assertIs(module.SparsePatternConfig, da.SparsePatternConfig)

    def test_refusals_name_the_argument_and_value(self):
        q, k, v = random_inputs((1, 40, 2, 8), seed=5)
        with self.assertRaisesRegex(ValueError, "Sequence length 40 must be "
                                    "divisible by block size 16"):
            da.BlockSparseRingDilatedAttention(
                [40], [1], {"block_size": 16})(q, k, v)
        cases = [
            (ValueError, "Unknown pattern type: 'strided'",
             dict(sparse_config={"pattern_type": "strided"})),
            (ValueError, "sparse_config.block_size must be a positive int, "
             "got 0", dict(sparse_config={"block_size": 0})),
            (ValueError, r"sparsity_ratio must be in \(0, 1\], got 1.5",
             dict(sparsity_ratio=1.5)),
            (TypeError, "unexpected keyword argument 'pattern_type'",
             dict(pattern_type="local_window")),
            (TypeError, "sparse_config must be a SparsePatternConfig",
             dict(sparse_config="local_window")),
            (ValueError, "dropout must be between 0.0 and 1.0, got 2",
             dict(dropout=2)),
        ]
        for error, message, arguments in cases:
            with self.subTest(arguments=arguments):
                with self.assertRaisesRegex(error, message):
                    da.BlockSparseRingDilatedAttention([64], [1], **arguments)

    def test_variants_are_the_same_function(self):
        q, k, v = random_inputs((1, 64, 2, 8), seed=6)
        name, config, rates, layout = CONFIGS[0]
        base = da.BlockSparseRingDilatedAttention([64], rates, config)
        optimized = da.BlockSparseOptimized([64], rates, config,
                                            enable_batched_ops=False,
                                            cache_size=4)
        torch_sparse = da.BlockSparseTorchSparse([64], rates, config,
                                                 sparse_threshold=0.5)
        for variant in (optimized, torch_sparse):
            torch.testing.assert_close(variant(q, k, v, is_causal=True),
                                       base(q, k, v, is_causal=True))
        self.assertEqual(optimized.cache_size, 4)
        with self.assertRaisesRegex(ValueError, "cache_size must be a "
                                    "positive int, got 0"):
            da.BlockSparseOptimized([64], [1], cache_size=0)
        with self.assertRaisesRegex(ValueError, "sparse_threshold must be "
                                    "between 0 and 1, got 2"):
            da.BlockSparseTorchSparse([64], [1], sparse_threshold=2)


class BlockSparseHierarchicalTest(unittest.TestCase):

    # Blocks of 16: level 1 (stride 2 blocks, one block each side) gives
    # query blocks 0 and 2; level 2 (stride 4 blocks, global) block 0.
    LEVELS = [{"stride": 32, "window_size": 32, "block_size": 99},
              {"stride": 64, "window_size": -1, "block_size": 99}]
    LAYOUT = layout_of([[0, 1, 2, 3], [], [1, 2, 3], []], 4)

    def make(self):
        return da.BlockSparseHierarchical(
            [64], [1], da.HierarchicalConfig(level_configs=self.LEVELS),
            sparse_config={"block_size": 16})

    def test_matches_the_oracle(self):
        q, k, v = random_inputs((1, 64, 2, 8), seed=12)
        attention = self.make()
        torch.testing.assert_close(attention.get_layout(64)[0], self.LAYOUT)
        for causal in (False, True):
            with self.subTest(causal=causal):
                torch.testing.assert_close(
                    attention(q, k, v, is_causal=causal).double(),
                    oracle.masked_attention(
                        q, k, v, oracle.expand_block_layout(self.LAYOUT, 16),
                        is_causal=causal),
                    atol=FLOAT32_TOLERANCE, rtol=0)

    def test_stats_presets_and_defaults(self):
        stats = self.make().get_pattern_stats(64)
        self.assertEqual((stats["total_blocks"], stats["active_blocks"]),
                         (16, 7))
        self.assertAlmostEqual(stats["sparsity"], 9 / 16)
        self.assertEqual([level["active_positions"]
                          for level in stats["levels"]], [2, 1])
        self.assertIn("Active blocks: 7/16",
                      self.make().visualize_pattern(64))
        presets = da.get_hierarchical_presets()
        self.assertEqual(sorted(presets), ["fine_grained", "long_range",
                                           "standard", "ultra_sparse"])
        self.assertEqual(presets["fine_grained"].num_levels, 4)
        default = da.BlockSparseHierarchical([64], [1])
        self.assertEqual(default.block_size, 64)
        self.assertEqual(default.levels, [(64, 256), (256, 1024), (1024, -1)])
        self.assertIsInstance(da.create_hierarchical_attention(32, 4),
                              da.BlockSparseHierarchical)

    def test_bad_levels(self):
        for levels, message in (
                ([{"stride": 0, "window_size": 32}],
                 r"level_configs\[0\]\['stride'\] must be positive, got 0"),
                ([{"stride": 4}], r"level_configs\[0\] must be a dict with"),
                ([], "level_configs cannot be empty")):
            with self.subTest(levels=levels):
                with self.assertRaisesRegex(ValueError, message):
                    da.BlockSparseHierarchical(
                        [64], [1], da.HierarchicalConfig(levels))


class BlockSparseRingMultiheadDilatedAttentionTest(unittest.TestCase):

    def make(self, **kwargs):
        torch.manual_seed(0)
        config = da.SparsePatternConfig(pattern_type="local_window",
                                        block_size=16, local_window_size=32)
        return da.BlockSparseRingMultiheadDilatedAttention(
            32, 4, [64], [1], sparse_config=config, **kwargs)

    def expected(self, module, x, key_padding_mask=None, causal=False):
        """Projections, the oracle's attention with the written-out layout,
        out_proj, in float64."""
        layout = layout_of([[0, 1], [0, 1, 2], [1, 2, 3], [2, 3]], 4)
        allowed = oracle.expand_block_layout(layout, 16)
        if key_padding_mask is not None:
            allowed = allowed & ~key_padding_mask[0][None, None, :]
        weights = {name: p.double() for name, p in module.state_dict().items()}

        def linear(name, t):
            return t @ weights[f"{name}.weight"].T + weights[f"{name}.bias"]
        x = x.double()
        heads = (x.shape[0], x.shape[1], 4, 8)
        out = oracle.masked_attention(
            linear("q_proj", x).view(heads), linear("k_proj", x).view(heads),
            linear("v_proj", x).view(heads), allowed, is_causal=causal)
        return linear("out_proj", out.reshape(x.shape))

    def test_state_dict_names_and_loading(self):
        module = self.make()
        names = {f"{p}.{t}" for p in ("q_proj", "k_proj", "v_proj",
                                      "out_proj") for t in ("weight", "bias")}
        self.assertEqual(set(module.state_dict()), names)
        generator = torch.Generator().manual_seed(7)
        checkpoint = {name: torch.randn(tuple(t.shape), generator=generator)
                      for name, t in module.state_dict().items()}
        module.load_state_dict(checkpoint, strict=True)
        for name, tensor in module.state_dict().items():
            torch.testing.assert_close(tensor, checkpoint[name])

    def test_forward_matches_the_oracle(self):
        module = self.make()
        (x,) = random_inputs((1, 64, 32), seed=8, count=1)
        for causal in (False, True):
            with self.subTest(causal=causal):
                torch.testing.assert_close(
                    module(x, x, x, is_causal=causal).double(),
                    self.expected(module, x, causal=causal),
                    atol=PROJECTED_TOLERANCE, rtol=0)

    def test_key_padding_masks_keys(self):
        module = self.make()
        (x,) = random_inputs((1, 64, 32), seed=9, count=1)
        mask = torch.zeros(1, 64, dtype=torch.bool)
        mask[0, 10:20] = True
        got = module(x, x, x, key_padding_mask=mask).double()
        expected = self.expected(module, x, key_padding_mask=mask)
        # Padded query rows are 0 before out_proj here; compare the others.
        keep = ~mask[0]
        torch.testing.assert_close(got[:, keep], expected[:, keep],
                                   atol=PROJECTED_TOLERANCE, rtol=0)

    def test_batch_first_false_and_need_weights(self):
        module = self.make()
        other = self.make(batch_first=False)
        other.load_state_dict(module.state_dict())
        (x,) = random_inputs((2, 64, 32), seed=10, count=1)
        out, weights = other(x.transpose(0, 1), x.transpose(0, 1),
                             x.transpose(0, 1), need_weights=True)
        torch.testing.assert_close(out.transpose(0, 1), module(x, x, x))
        self.assertEqual(weights["num_blocks"], (4, 4))
        self.assertIsInstance(module(x, x, x), torch.Tensor)

    def test_refusals(self):
        module = self.make()
        (x,) = random_inputs((1, 64, 32), seed=11, count=1)
        with self.assertRaisesRegex(NotImplementedError, "attn_mask"):
            module(x, x, x, attn_mask=torch.zeros(64, 64))
        with self.assertRaisesRegex(ValueError, r"embed_dim \(30\) must be "
                                    r"divisible by num_heads \(4\)"):
            da.BlockSparseRingMultiheadDilatedAttention(30, 4, [64], [1])


if __name__ == "__main__":
    unittest.main()
