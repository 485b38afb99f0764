"""Attention dropout through the operators, the functional API and the
modules: the kernels' mask against a plain-Python Philox implementation of
the mask contract, the keep rate, determinism under torch.manual_seed,
gradcheck with a fixed seed, opcheck with the dropout arguments."""

import math
import unittest

import torch

import dilated_attention_torch as da
import oracle
import philox_reference

_OPS = torch.ops.dilated_attention
# float32 kernels against a float64 oracle on rows of at most 16 keys, with
# kept probabilities scaled by 1 / (1 - p) <= 1.5: a few float32 ulps of
# values of order 1; a wrong mask is off by a probability times |v|, ~1e-1.
FLOAT32_TOLERANCE = 1e-5
GRADIENT_TOLERANCE = 5e-5


def random_inputs(shape, seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) for _ in range(4)]


def forward(q, k, v, segs, rates, impl, p, seed, offset, causal=False):
    out, _ = _OPS.forward(q, k, v, segs, rates, causal, None, impl, None,
                          None, 0, dropout_p=p, seed=seed, offset=offset)
    return out


class PhiloxReferenceTest(unittest.TestCase):

    def test_known_answers(self):
        # Random123 tests/kat_vectors, the "philox4x32 10" lines.
        self.assertEqual(philox_reference.philox4x32_10((0, 0, 0, 0), (0, 0)),
                         (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8))
        self.assertEqual(
            philox_reference.philox4x32_10((0xffffffff,) * 4,
                                           (0xffffffff,) * 2),
            (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd))
        self.assertEqual(
            philox_reference.philox4x32_10(
                (0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344),
                (0xa4093822, 0x299f31d0)),
            (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1))


class OperatorTest(unittest.TestCase):

    def test_forward_and_backward_match_the_mask_contract(self):
        cases = [
            # (shape, segments, rates, causal); a negative seed is read as
            # its unsigned 64-bit value.
            ((2, 16, 3, 8), [8, 16], [1, 2], False, 12345, 7),
            ((1, 16, 4, 8), [4, 16], [1, 4], True, -98765, 0),
        ]
        p = 0.3
        for shape, segs, rates, causal, seed, offset in cases:
            factors = philox_reference.dropout_factors(
                shape[0], shape[2], shape[1], p, seed, offset)
            q, k, v, grad_out = random_inputs(shape, seed=3)
            reference = [t.double().requires_grad_() for t in (q, k, v)]
            expected = oracle.dilated_attention(
                *reference, segs, rates, is_causal=causal,
                dropout_factors=factors)
            expected.backward(grad_out.double())
            for impl in ("standard", "improved", "auto"):
                with self.subTest(shape=shape, impl=impl):
                    inputs = [t.clone().requires_grad_() for t in (q, k, v)]
                    out = forward(*inputs, segs, rates, impl, p, seed, offset,
                                  causal)
                    out.backward(grad_out)
                    torch.testing.assert_close(out.double(), expected,
                                               atol=FLOAT32_TOLERANCE, rtol=0)
                    for got, want in zip(inputs, reference):
                        torch.testing.assert_close(
                            got.grad.double(), want.grad,
                            atol=GRADIENT_TOLERANCE, rtol=0)

    def test_keep_rate(self):
        # q = k = 0 and v = 1: out = kept / (L (1 - p)) per row, so the
        # outputs count the kept probabilities. Over n = 2 * 4 * 128 * 128
        # of them the count is Binomial(n, 1 - p) with standard deviation
        # sqrt(n p (1 - p)) ~ 234 at p = 0.3; 6 of them bound a fluke at
        # about 1e-9.
        b, n, h, d, p = 2, 128, 4, 8, 0.3
        zeros = torch.zeros(b, n, h, d)
        out = forward(zeros, zeros, torch.ones(b, n, h, d), [n], [1],
                      "improved", p, 2024, 0)
        kept = torch.round(out[..., 0].double() * n * (1 - p)).sum().item()
        total = b * h * n * n
        self.assertLess(abs(kept - total * (1 - p)),
                        6 * math.sqrt(total * p * (1 - p)))

    def test_probability_outside_range_names_the_value(self):
        q, k, v, _ = random_inputs((1, 8, 1, 8), seed=4)
        with self.assertRaisesRegex(ValueError,
                                    r"dropout must be in \[0, 1\), got 1"):
            da.dilated_attention(q, k, v, [8], [1], dropout_p=1.0)

    def test_unsupported_implementation_is_refused(self):
        q, k, v, _ = random_inputs((1, 16, 2, 8), seed=5)
        with self.assertRaisesRegex(NotImplementedError, "'longnet'"):
            da.dilated_attention(q, k, v, [8, 16], [1, 2], impl="longnet",
                                 dropout_p=0.1)


class FunctionalTest(unittest.TestCase):

    def test_manual_seed_makes_calls_reproducible(self):
        q, k, v, _ = random_inputs((1, 32, 2, 8), seed=6)
        torch.manual_seed(0)
        first = da.dilated_attention(q, k, v, [16, 32], [1, 2], dropout_p=0.2)
        second = da.dilated_attention(q, k, v, [16, 32], [1, 2],
                                      dropout_p=0.2)
        torch.manual_seed(0)
        again = da.dilated_attention(q, k, v, [16, 32], [1, 2], dropout_p=0.2)
        self.assertTrue(torch.equal(first, again))
        self.assertFalse(torch.equal(first, second))

    def test_manual_seed_makes_compiled_calls_reproducible(self):
        # Under torch.compile the seed is drawn inside the graph (inductor's
        # own lowering of the draw, seeded from torch's generator), so it
        # differs from eager's but is fixed by torch.manual_seed as well.
        q, k, v, grad_out = random_inputs((1, 32, 2, 8), seed=13)

        def loss(q, k, v):
            out = da.dilated_attention(q, k, v, [16, 32], [1, 2],
                                       dropout_p=0.2)
            return (out * grad_out).sum()

        compiled = torch.compile(loss, fullgraph=True)
        runs = []
        for _ in range(2):
            torch.manual_seed(3)
            inputs = [t.clone().requires_grad_() for t in (q, k, v)]
            value = compiled(*inputs)
            value.backward()
            runs.append([value.detach()] + [t.grad for t in inputs])
        for first, second in zip(*runs):
            self.assertTrue(torch.equal(first, second))
        undropped = (da.dilated_attention(q, k, v, [16, 32], [1, 2]) *
                     grad_out).sum()
        self.assertFalse(torch.equal(runs[0][0], undropped))

    def test_zero_probability_is_the_undropped_attention(self):
        q, k, v, _ = random_inputs((1, 32, 2, 8), seed=7)
        self.assertTrue(torch.equal(
            da.dilated_attention(q, k, v, [16, 32], [1, 2], dropout_p=0.0),
            da.dilated_attention(q, k, v, [16, 32], [1, 2])))


class GradcheckTest(unittest.TestCase):
    """gradcheck with a fixed seed and offset: the mask is fixed, so the
    function is smooth. float32 as in ops_test: central differences with
    eps 1e-2 are accurate to about 1e-3, hence the tolerances."""

    def test_gradcheck_float32(self):
        generator = torch.Generator().manual_seed(12)
        for impl in ("standard", "improved"):
            with self.subTest(impl=impl):
                inputs = [torch.randn(1, 16, 2, 4, generator=generator,
                                      requires_grad=True) for _ in range(3)]
                self.assertTrue(torch.autograd.gradcheck(
                    lambda q, k, v: forward(q, k, v, [8, 16], [1, 2], impl,
                                            0.25, 99, 5),
                    inputs, eps=1e-2, atol=5e-3, rtol=5e-3, nondet_tol=1e-6))


class OpcheckTest(unittest.TestCase):

    def test_operators_with_dropout_arguments(self):
        q, k, v, grad_out = random_inputs((1, 16, 2, 8), seed=8)
        args = ([t.clone().requires_grad_() for t in (q, k, v)] +
                [[8, 16], [1, 2], False, None, "improved", None, None, 0])
        dropout = {"dropout_p": 0.2, "seed": 42, "offset": 3}
        torch.library.opcheck(_OPS.forward.default, args, dropout)
        out, lse = _OPS.forward(q, k, v, [8, 16], [1, 2], False, None,
                                "improved", None, None, 0, **dropout)
        torch.library.opcheck(
            _OPS.backward.default,
            (grad_out, q, k, v, out, lse, [8, 16], [1, 2], False, None,
             "improved", None, None, 0), dropout)


class ModulesTest(unittest.TestCase):

    def test_training_applies_dropout_and_eval_does_not(self):
        module = da.DilatedAttention([8, 16], [1, 2], attention_dropout=0.3)
        q, k, v, _ = random_inputs((1, 16, 2, 8), seed=9)
        module.eval()
        plain = module(q, k, v)
        module.train()
        torch.manual_seed(1)
        dropped = module(q, k, v)
        torch.manual_seed(1)
        self.assertTrue(torch.equal(dropped, module(q, k, v)))
        self.assertFalse(torch.equal(dropped, plain))
        self.assertTrue(torch.equal(
            da.DilatedAttention([8, 16], [1, 2], attention_dropout=0.0)(
                q, k, v), plain))

    def test_multihead_and_layers_train_with_dropout(self):
        torch.manual_seed(2)
        for module in (
                da.MultiheadDilatedAttention(32, 4, [1, 2], [8, 16],
                                             dropout=0.2),
                da.ImprovedMultiheadDilatedAttention(32, 4, [1, 2], [8, 16],
                                                     dropout=0.2),
                da.DilatedTransformerEncoderLayer(32, 4, [8, 16], [1, 2],
                                                  dim_feedforward=64,
                                                  dropout=0.2)):
            with self.subTest(module=type(module).__name__):
                module.train()
                x = torch.randn(2, 16, 32, requires_grad=True)
                if isinstance(module, da.DilatedTransformerEncoderLayer):
                    y = module(x)
                else:
                    y = module(x, x, x)
                    y = y[0] if isinstance(y, tuple) else y
                y.sum().backward()
                self.assertTrue(torch.isfinite(x.grad).all())
                module.eval()
                with torch.no_grad():
                    if isinstance(module, da.DilatedTransformerEncoderLayer):
                        self.assertTrue(torch.equal(module(x), module(x)))
                    else:
                        first = module(x, x, x)
                        second = module(x, x, x)
                        first = first[0] if isinstance(first, tuple) else first
                        second = (second[0] if isinstance(second, tuple)
                                  else second)
                        self.assertTrue(torch.equal(first, second))


if __name__ == "__main__":
    unittest.main()
