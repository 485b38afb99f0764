"""The operators and the functional API against the float64 oracle, the
golden files, torch.library.opcheck and torch.compile."""

import glob
import os
import unittest

import torch

import dilated_attention_torch as da
import oracle
import safetensors_file

# float32 kernels against a float64 oracle on rows of at most 32 keys: the
# error is a few float32 ulps of values of order 1; 1e-5 leaves room while
# any wrong mask, scale or group is orders of magnitude larger.
FLOAT32_TOLERANCE = 1e-5
# Gradients sum over more terms (dS, then dQ and dK over the keys).
GRADIENT_TOLERANCE = 5e-5

CASES = [
    # (name, shape [b, n, h, d], segments, rates, is_causal, scale)
    ("three_groups", (2, 32, 3, 8), [8, 16, 32], [1, 2, 4], False, None),
    ("causal", (1, 32, 4, 16), [8, 16], [1, 2], True, None),
    ("partial_segments", (1, 27, 2, 8), [8, 16], [1, 2], True, None),
    ("uneven_heads_scale", (1, 16, 5, 8), [4, 8], [1, 2], False, 0.3),
    ("offset_beyond_segment", (1, 16, 3, 8), [4, 8, 2], [1, 2, 4], False,
     None),
]


def random_inputs(shape, seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) for _ in range(4)]


class FunctionalTest(unittest.TestCase):

    def test_forward_and_backward_match_the_oracle(self):
        for impl in ("standard", "improved", "auto"):
            for name, shape, segs, rates, causal, scale in CASES:
                with self.subTest(impl=impl, case=name):
                    q, k, v, grad_out = random_inputs(shape, seed=len(name))
                    inputs = [t.clone().requires_grad_() for t in (q, k, v)]
                    out = da.dilated_attention(*inputs, segs, rates,
                                               is_causal=causal,
                                               softmax_scale=scale, impl=impl)
                    out.backward(grad_out)
                    reference = [t.double().requires_grad_() for t in (q, k, v)]
                    expected = oracle.dilated_attention(
                        *reference, segs, rates, is_causal=causal,
                        softmax_scale=scale)
                    expected.backward(grad_out.double())
                    torch.testing.assert_close(out.double(), expected,
                                               atol=FLOAT32_TOLERANCE, rtol=0)
                    for got, want in zip(inputs, reference):
                        torch.testing.assert_close(
                            got.grad.double(), want.grad,
                            atol=GRADIENT_TOLERANCE, rtol=0)

    def test_strided_inputs_need_no_copy(self):
        # Heads sliced out of a wider tensor: strides that are not contiguous.
        q, k, v, _ = random_inputs((1, 32, 6, 8), seed=3)
        views = [t[:, :, 1:5] for t in (q, k, v)]
        self.assertFalse(views[0].is_contiguous())
        out = da.dilated_attention(*views, [8, 16], [1, 2], impl="improved")
        expected = oracle.dilated_attention(*views, [8, 16], [1, 2])
        torch.testing.assert_close(out.double(), expected,
                                   atol=FLOAT32_TOLERANCE, rtol=0)

    def test_key_padding_mask_is_honoured(self):
        q, k, v, _ = random_inputs((2, 16, 2, 8), seed=4)
        mask = torch.zeros(2, 16, dtype=torch.bool)
        mask[0, 12:] = True
        mask[1, :3] = True
        out = da.dilated_attention(q, k, v, [8, 16], [1, 2],
                                   key_padding_mask=mask)
        expected = oracle.dilated_attention(q, k, v, [8, 16], [1, 2],
                                            key_padding_mask=mask)
        torch.testing.assert_close(out.double(), expected,
                                   atol=FLOAT32_TOLERANCE, rtol=0)
        self.assertEqual(out[0, 12:].abs().max().item(), 0.0)

    def test_packed_sequences_equal_each_sequence_alone(self):
        lengths = [9, 16]
        q, k, v, _ = random_inputs((sum(lengths), 2, 8), seed=5)
        cu_seqlens = torch.tensor([0, 9, 25], dtype=torch.int32)
        out, lse = da.dilated_attention(q, k, v, [8, 16], [1, 2],
                                        cu_seqlens=cu_seqlens,
                                        return_lse=True)
        self.assertEqual(tuple(lse.shape), (2, 25))
        for begin, end in ((0, 9), (9, 25)):
            alone = da.dilated_attention(
                *(t[None, begin:end] for t in (q, k, v)), [8, 16], [1, 2])
            torch.testing.assert_close(out[begin:end], alone[0])

    def test_lse_matches_the_scores(self):
        q, k, v, _ = random_inputs((1, 8, 1, 4), seed=6)
        _, lse = da.dilated_attention(q, k, v, [8], [1], return_lse=True)
        scores = torch.einsum("pd,kd->pk", q[0, :, 0], k[0, :, 0]) / 2.0
        torch.testing.assert_close(lse[0, 0], torch.logsumexp(scores, -1))

    def test_refusals_name_the_value(self):
        q, k, v, _ = random_inputs((1, 16, 2, 8), seed=7)
        with self.assertRaisesRegex(ValueError, "unknown implementation 'x'"):
            da.dilated_attention(q, k, v, [8], [1], impl="x")
        with self.assertRaisesRegex(ValueError, r"segment_lengths\[1\] must be "
                                    "positive, got 0"):
            da.dilated_attention(q, k, v, [8, 0], [1, 1])
        with self.assertRaisesRegex(ValueError, "same length: 2 != 1"):
            da.dilated_attention(q, k, v, [8, 16], [1])
        with self.assertRaisesRegex(ValueError, "num_heads 2"):
            da.dilated_attention(q, k, v, [2, 4, 8], [1, 1, 1])
        with self.assertRaisesRegex(ValueError, "q: dtype Double is not "
                                    "supported"):
            da.dilated_attention(q.double(), k.double(), v.double(), [8], [1])


class GradcheckTest(unittest.TestCase):
    """torch.autograd.gradcheck: the backward operator against finite
    differences of the forward one. The kernels have no float64 path, so
    this runs in float32: central differences with eps 1e-2 on inputs of
    order 1 are accurate to about 1e-3 (truncation) plus float32 rounding
    of the outputs divided by eps (~1e-5), hence the tolerances."""

    def test_gradcheck_float32(self):
        generator = torch.Generator().manual_seed(11)
        for impl in ("standard", "improved"):
            for causal in (False, True):
                with self.subTest(impl=impl, causal=causal):
                    inputs = [torch.randn(1, 16, 2, 4, generator=generator,
                                          requires_grad=True)
                              for _ in range(3)]
                    self.assertTrue(torch.autograd.gradcheck(
                        lambda q, k, v: da.dilated_attention(
                            q, k, v, [8, 16], [1, 2], is_causal=causal,
                            impl=impl),
                        inputs, eps=1e-2, atol=5e-3, rtol=5e-3,
                        nondet_tol=1e-6))


class OtherFunctionsTest(unittest.TestCase):
    """The library's other registered functions through the same operator:
    "longnet" (every branch on every head, merged by the branch LSEs) and
    "block_sparse" (its default pattern; the operator carries no layout)."""

    def test_longnet_gradients_match_finite_differences(self):
        self.assertIn("longnet", da.implementations())
        generator = torch.Generator().manual_seed(12)
        inputs = [torch.randn(1, 16, 2, 4, generator=generator,
                              requires_grad=True) for _ in range(3)]
        # Tolerances as in GradcheckTest (float32 central differences).
        self.assertTrue(torch.autograd.gradcheck(
            lambda q, k, v: da.dilated_attention(q, k, v, [8, 16], [1, 2],
                                                 impl="longnet"),
            inputs, eps=1e-2, atol=5e-3, rtol=5e-3, nondet_tol=1e-6))

    def test_longnet_with_one_branch_is_dense_segment_attention(self):
        # One branch of rate 1: plain attention inside segments, which
        # "improved" computes with one group too.
        q, k, v, _ = random_inputs((1, 32, 2, 8), seed=13)
        torch.testing.assert_close(
            da.dilated_attention(q, k, v, [16], [1], impl="longnet"),
            da.dilated_attention(q, k, v, [16], [1], impl="improved"),
            atol=FLOAT32_TOLERANCE, rtol=0)

    def test_block_sparse_default_pattern(self):
        q, k, v, _ = random_inputs((1, 256, 2, 16), seed=14)
        out = da.dilated_attention(q, k, v, [256], [1], impl="block_sparse")
        self.assertEqual(out.shape, q.shape)
        self.assertTrue(torch.isfinite(out).all())
        with self.assertRaisesRegex(ValueError, "block"):
            da.dilated_attention(q[:, :200], k[:, :200], v[:, :200], [200],
                                 [1], impl="block_sparse")


class GoldenFileTest(unittest.TestCase):
    """The library's golden files: inputs and float64 expected outputs."""

    def test_every_golden_file(self):
        directory = os.path.join(os.environ["TEST_SRCDIR"],
                                 os.environ["TEST_WORKSPACE"],
                                 "tests/data/golden")
        paths = sorted(glob.glob(os.path.join(directory, "*.safetensors")))
        self.assertGreater(len(paths), 10)
        for path in paths:
            with self.subTest(golden=os.path.basename(path)):
                tensors, meta = safetensors_file.load(path)
                segs = [int(x) for x in meta["segment_lengths"].split(",")]
                rates = [int(x) for x in meta["dilation_rates"].split(",")]
                scale = meta.get("softmax_scale")
                inputs = [tensors[name].clone().requires_grad_()
                          for name in ("q", "k", "v")]
                out, lse = da.dilated_attention(
                    *inputs, segs, rates,
                    is_causal=meta["is_causal"] == "true",
                    softmax_scale=float(scale) if scale else None,
                    key_padding_mask=tensors.get("key_padding_mask"),
                    cu_seqlens=tensors.get("cu_seqlens"), return_lse=True)
                out.backward(tensors["grad_out"])
                # Storage precision bounds the error: float16/bfloat16
                # outputs are rounded to 11/8 significant bits; gradients
                # sum more rounded terms.
                atol = {torch.float32: 1e-5, torch.float16: 2e-3,
                        torch.bfloat16: 1.6e-2}[tensors["q"].dtype]
                torch.testing.assert_close(out.double(), tensors["out"],
                                           atol=atol, rtol=0)
                # lse is float32 whatever the storage: -inf where a row has
                # no key, matching exactly.
                torch.testing.assert_close(lse.double(), tensors["lse"],
                                           atol=1e-4, rtol=0)
                for name, tensor in zip(("grad_q", "grad_k", "grad_v"),
                                        inputs):
                    torch.testing.assert_close(
                        tensor.grad.double(), tensors[name], atol=4 * atol,
                        rtol=0, msg=lambda m, name=name: f"{name}: {m}")


class OpcheckTest(unittest.TestCase):

    def test_forward_operator(self):
        q, k, v, _ = random_inputs((1, 16, 2, 8), seed=8)
        for causal in (False, True):
            args = ([t.clone().requires_grad_() for t in (q, k, v)] +
                    [[8, 16], [1, 2], causal, None, "improved", None, None])
            torch.library.opcheck(torch.ops.dilated_attention.forward.default,
                                  args)

    def test_backward_operator(self):
        q, k, v, grad_out = random_inputs((1, 16, 2, 8), seed=9)
        out, lse = torch.ops.dilated_attention.forward(
            q, k, v, [8, 16], [1, 2], False, None, "improved", None, None)
        torch.library.opcheck(
            torch.ops.dilated_attention.backward.default,
            (grad_out, q, k, v, out, lse, [8, 16], [1, 2], False, None,
             "improved", None, None))


class OperatorAutogradTest(unittest.TestCase):
    """The functional API runs its own autograd.Function; the operator's
    registered autograd serves direct callers. Both run the same kernels."""

    def test_direct_operator_call_gives_the_functional_gradients(self):
        q, k, v, grad_out = random_inputs((1, 16, 3, 8), seed=12)
        functional = [t.clone().requires_grad_() for t in (q, k, v)]
        direct = [t.clone().requires_grad_() for t in (q, k, v)]
        out = da.dilated_attention(*functional, [8, 16], [1, 2],
                                   is_causal=True, impl="improved")
        out.backward(grad_out)
        direct_out, lse = torch.ops.dilated_attention.forward(
            *direct, [8, 16], [1, 2], True, None, "improved", None, None)
        self.assertFalse(lse.requires_grad)
        direct_out.backward(grad_out)
        torch.testing.assert_close(direct_out, out, atol=0, rtol=0)
        for name, a, b in zip("qkv", functional, direct):
            self.assertIsNotNone(b.grad, name)
            torch.testing.assert_close(b.grad, a.grad, atol=0, rtol=0,
                                       msg=lambda m, name=name: f"{name}: {m}")

    def test_lse_carries_no_gradient(self):
        q, k, v, _ = random_inputs((1, 16, 2, 8), seed=13)
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        out, lse = da.dilated_attention(*leaves, [16], [1], return_lse=True)
        self.assertTrue(out.requires_grad)
        self.assertFalse(lse.requires_grad)

    def test_no_graph_without_a_gradient(self):
        q, k, v, _ = random_inputs((1, 16, 2, 8), seed=14)
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        with torch.no_grad():
            self.assertFalse(da.dilated_attention(*leaves, [16], [1])
                             .requires_grad)
        with torch.inference_mode():
            out = da.dilated_attention(q, k, v, [16], [1])
        self.assertTrue(out.is_inference())
        torch.testing.assert_close(
            out, da.dilated_attention(*leaves, [16], [1]).detach(),
            atol=0, rtol=0)

    def test_second_order_gradients_are_refused(self):
        # Without the refusal torch would differentiate through the backward
        # operator as if its results were constants (only a warning).
        q, k, v, _ = random_inputs((1, 16, 2, 8), seed=15)
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        for out in (da.dilated_attention(*leaves, [16], [1]),
                    torch.ops.dilated_attention.forward(
                        *leaves, [16], [1], False, None, "auto", None,
                        None)[0]):
            with self.assertRaisesRegex(NotImplementedError, "second-order"):
                torch.autograd.grad(out.sum(), leaves[0], create_graph=True)


class CompileTest(unittest.TestCase):

    def test_compiled_forward_and_backward_equal_eager(self):
        q, k, v, grad_out = random_inputs((1, 32, 2, 8), seed=10)

        def loss(q, k, v):
            out = da.dilated_attention(q, k, v, [8, 16], [1, 2],
                                       is_causal=True)
            return (out * grad_out).sum()

        compiled = torch.compile(loss, fullgraph=True)
        eager_inputs = [t.clone().requires_grad_() for t in (q, k, v)]
        compiled_inputs = [t.clone().requires_grad_() for t in (q, k, v)]
        torch.testing.assert_close(compiled(*compiled_inputs),
                                   loss(*eager_inputs))
        loss(*eager_inputs).backward()
        compiled(*compiled_inputs).backward()
        for eager, compiled_input in zip(eager_inputs, compiled_inputs):
            torch.testing.assert_close(compiled_input.grad, eager.grad)


if __name__ == "__main__":
    unittest.main()
