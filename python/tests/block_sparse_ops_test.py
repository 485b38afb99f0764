""""block_sparse" through the operators: every pattern's layout against one
written out by hand, forward and backward against the float64 oracle with the
layout expanded to a token mask, custom layouts, the attention cache keeping
layouts apart, opcheck with the block-sparse arguments, refusals."""

import unittest

import torch

import dilated_attention_torch as da
import oracle

# float32 kernels against a float64 oracle on rows of at most 96 keys: a few
# float32 ulps of values of order 1; a wrong block is orders larger.
FLOAT32_TOLERANCE = 1e-5
# Gradients sum over more terms (dS, then dQ and dK over the keys).
GRADIENT_TOLERANCE = 5e-5


def layout_of(rows, num_blocks):
    """bool [nb, nb] from the key blocks of every query block."""
    layout = torch.zeros(num_blocks, num_blocks, dtype=torch.bool)
    for i, keys in enumerate(rows):
        layout[i, list(keys)] = True
    return layout


# (name, seq_len, block arguments, the layout written out by hand)
PATTERNS = [
    # w' = (32 / 16) / 2 = 1 block on each side.
    ("local_window", 64,
     dict(block_size=16, block_pattern="local_window", block_window=32),
     layout_of([[0, 1], [0, 1, 2], [1, 2, 3], [2, 3]], 4)),
    # i, i +- 1, i +- 2, i +- 4, clipped to 6 blocks.
    ("dilated_sparse", 96,
     dict(block_size=16, block_pattern="dilated_sparse"),
     layout_of([[0, 1, 2, 4], [0, 1, 2, 3, 5], [0, 1, 2, 3, 4],
                [1, 2, 3, 4, 5], [0, 2, 3, 4, 5], [1, 3, 4, 5]], 6)),
    # One global block (16 tokens), which attends everywhere, plus w' = 1.
    ("global_local", 64,
     dict(block_size=16, block_pattern="global_local", block_window=32,
          global_tokens=16),
     layout_of([[0, 1, 2, 3], [0, 1, 2], [0, 1, 2, 3], [0, 2, 3]], 4)),
    # One level: query blocks 0 and 2 (stride 2 blocks) attend within one
    # block; blocks 1 and 3 have no key (rows of zeros).
    ("hierarchical", 64,
     dict(block_size=16, block_pattern="hierarchical",
          hierarchical_levels=[(32, 32)]),
     layout_of([[0, 1], [], [1, 2, 3], []], 4)),
]


def random_inputs(shape, seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) for _ in range(4)]


class BlockSparseOperatorTest(unittest.TestCase):

    def check_against_oracle(self, shape, arguments, layout, seed,
                             is_causal=False):
        q, k, v, grad_out = random_inputs(shape, seed)
        inputs = [t.clone().requires_grad_() for t in (q, k, v)]
        out = da.dilated_attention(*inputs, [shape[1]], [1],
                                   impl="block_sparse", is_causal=is_causal,
                                   **arguments)
        out.backward(grad_out)
        reference = [t.double().requires_grad_() for t in (q, k, v)]
        allowed = oracle.expand_block_layout(layout, arguments["block_size"])
        expected = oracle.masked_attention(*reference, allowed,
                                           is_causal=is_causal)
        expected.backward(grad_out.double())
        torch.testing.assert_close(out.double(), expected,
                                   atol=FLOAT32_TOLERANCE, rtol=0)
        for got, want in zip(inputs, reference):
            torch.testing.assert_close(got.grad.double(), want.grad,
                                       atol=GRADIENT_TOLERANCE, rtol=0)

    def test_pattern_layouts_are_the_ones_written_out(self):
        for name, n, arguments, expected in PATTERNS:
            with self.subTest(pattern=name):
                got = da.block_layout(n, 2, **arguments)
                self.assertEqual(got.dtype, torch.bool)
                torch.testing.assert_close(got, expected[None])

    def test_patterns_match_the_oracle(self):
        for name, n, arguments, layout in PATTERNS:
            for causal in (False, True):
                with self.subTest(pattern=name, causal=causal):
                    self.check_against_oracle((2, n, 2, 8), arguments, layout,
                                              seed=len(name), is_causal=causal)

    def test_custom_layouts_shared_and_per_head(self):
        shared = layout_of([[0, 3], [1], [], [0, 1, 2, 3]], 4)
        per_head = torch.stack([shared, shared.T.contiguous(),
                                torch.ones(4, 4, dtype=torch.bool)])
        for name, layout in (("shared", shared), ("per_head", per_head)):
            for causal in (False, True):
                with self.subTest(layout=name, causal=causal):
                    self.check_against_oracle(
                        (1, 32, 3, 8), dict(block_size=8, block_layout=layout),
                        layout, seed=3, is_causal=causal)

    def test_layout_in_uint8_on_a_strided_view(self):
        layout = layout_of([[0], [0, 1], [1, 2], [2, 3]], 4)
        as_bytes = (layout.to(torch.uint8) * 7).T.contiguous().T  # strided
        self.check_against_oracle((1, 32, 2, 8),
                                  dict(block_size=8, block_layout=as_bytes),
                                  layout, seed=4)

    def test_the_cache_keeps_layouts_apart(self):
        # The same shapes and arguments but the layout: each call must use
        # its own, also after the other was cached.
        first = layout_of([[0], [1], [2], [3]], 4)
        second = layout_of([[0, 1, 2, 3]] * 4, 4)
        for layout in (first, second, first):
            self.check_against_oracle((1, 32, 2, 8),
                                      dict(block_size=8, block_layout=layout),
                                      layout, seed=5)
        for window in (16, 32):
            arguments = dict(block_size=8, block_pattern="local_window",
                             block_window=window)
            self.check_against_oracle((1, 32, 2, 8), arguments,
                                      da.block_layout(32, 2, **arguments)[0],
                                      seed=6)

    def test_softmax_scale_is_honoured(self):
        q, k, v, _ = random_inputs((1, 32, 2, 8), seed=7)
        layout = layout_of([[0, 1], [1], [2, 3], [0, 3]], 4)
        out = da.dilated_attention(q, k, v, [32], [1], softmax_scale=0.2,
                                   impl="block_sparse", block_size=8,
                                   block_layout=layout)
        expected = oracle.masked_attention(
            q, k, v, oracle.expand_block_layout(layout, 8), softmax_scale=0.2)
        torch.testing.assert_close(out.double(), expected,
                                   atol=FLOAT32_TOLERANCE, rtol=0)

    def test_opcheck_with_block_sparse_arguments(self):
        q, k, v, grad_out = random_inputs((1, 32, 2, 8), seed=8)
        layout = layout_of([[0, 1], [1], [2, 3], [0, 3]], 4)
        block = dict(block_size=8, block_pattern="custom",
                     block_window=512, global_tokens=64,
                     sparse_dilation_rates=[1, 2, 4], hierarchical_levels=[],
                     block_layout=layout)
        for causal in (False, True):
            args = ([t.clone().requires_grad_() for t in (q, k, v)] +
                    [[32], [1], causal, None, "block_sparse", None, None, 0])
            torch.library.opcheck(torch.ops.dilated_attention.forward.default,
                                  args, block)
        out, lse = torch.ops.dilated_attention.forward(
            q, k, v, [32], [1], False, None, "block_sparse", None, None, 0,
            **block)
        torch.library.opcheck(
            torch.ops.dilated_attention.backward.default,
            (grad_out, q, k, v, out, lse, [32], [1], False, None,
             "block_sparse", None, None, 0), block)
        torch.library.opcheck(
            torch.ops.dilated_attention.block_layout.default, (32, 2), block)

    def test_compiled_call_equals_eager(self):
        q, k, v, _ = random_inputs((1, 32, 2, 8), seed=9)
        layout = layout_of([[0, 1], [1], [2, 3], [0, 3]], 4)

        def attend(q, k, v):
            return da.dilated_attention(q, k, v, [32], [1], is_causal=True,
                                        impl="block_sparse", block_size=8,
                                        block_layout=layout)

        torch.testing.assert_close(torch.compile(attend, fullgraph=True)(
            q, k, v), attend(q, k, v))

    def test_refusals_name_the_argument_and_value(self):
        q, k, v, _ = random_inputs((1, 40, 2, 8), seed=10)
        eye = torch.eye(4, dtype=torch.bool)
        cases = [
            (ValueError, "block_pattern.*'strided'",
             dict(block_pattern="strided")),
            (ValueError, "block_layout is given exactly when",
             dict(block_pattern="local_window", block_layout=eye)),
            (ValueError, "block_layout is given exactly when",
             dict(block_pattern="custom")),
            (ValueError, "sequence length 32 must be a multiple of "
             "block_size 12", dict(block_size=12)),
            (ValueError, "window 4 is smaller than a block",
             dict(block_size=8, block_pattern="local_window",
                  block_window=4)),
            (ValueError, "block_size must be at least 1, got 0",
             dict(block_size=0)),
            (TypeError, "block_size must be an int, got 8.0",
             dict(block_size=8.0)),
            (TypeError, "block_layout must be bool or uint8",
             dict(block_size=8, block_layout=eye.float())),
            (ValueError, r"block_layout must be \[nb, nb\].*\(4, 3\)",
             dict(block_size=8, block_layout=eye[:, :3])),
            (ValueError, "custom_layout has 4 blocks per row but the "
             "sequence of 40 tokens has 5",
             dict(block_size=8, block_layout=eye)),
            (ValueError, r"sparse_dilation_rates\[1\] must be at least 1",
             dict(sparse_dilation_rates=[1, 0])),
        ]
        for error, message, arguments in cases:
            with self.subTest(arguments=arguments):
                length = 40 if "custom_layout" in message else 32
                with self.assertRaisesRegex(error, message):
                    da.dilated_attention(q[:, :length].contiguous(),
                                         k[:, :length].contiguous(),
                                         v[:, :length].contiguous(), [length],
                                         [1], impl="block_sparse",
                                         **arguments)


if __name__ == "__main__":
    unittest.main()
