"""The drop-in modules: names, signatures, checkpoints of the Python
library's classes, and refusals."""

import os
import unittest
import warnings

import torch

import dilated_attention_torch as da
import oracle
import safetensors_file

MODELS = ("tests", "data", "models")


def model_file(name):
    return os.path.join(os.environ["TEST_SRCDIR"], os.environ["TEST_WORKSPACE"],
                        *MODELS, name)


class CheckpointTest(unittest.TestCase):
    """State dicts in the Python library's names, with outputs its classes'
    function gives in float64 (tools/make_model_goldens.py), load and match."""

    CASES = {
        "multihead_fork": da.MultiheadDilatedAttention,
        "multihead_fork_cross_causal": da.MultiheadDilatedAttention,
        "multihead_fork_plain": da.MultiheadDilatedAttention,
        "multihead_f16": da.MultiheadDilatedAttention,
        "multihead_improved": da.ImprovedMultiheadDilatedAttention,
        "multihead_improved_cross": da.ImprovedMultiheadDilatedAttention,
    }

    def test_checkpoints_load_and_match(self):
        for name, cls in self.CASES.items():
            with self.subTest(model=name):
                tensors, meta = safetensors_file.load(
                    model_file(name + ".safetensors"))
                expected, _ = safetensors_file.load(
                    model_file(name + ".expected.safetensors"))
                x = tensors.pop("input.x")
                memory = tensors.pop("input.memory", None)
                dtype = x.dtype
                module = cls(
                    embed_dim=x.shape[-1], num_heads=int(meta["nhead"]),
                    dilation_rates=[int(r) for r in
                                    meta["dilation_rates"].split(",")],
                    segment_lengths=[int(s) for s in
                                     meta["segment_lengths"].split(",")],
                    bias=meta.get("bias", "true") == "true",
                    layer_norm=meta.get("layer_norm", "true") == "true",
                    dtype=dtype)
                module.load_state_dict(tensors, strict=True)
                result = module(x, memory, memory,
                                is_causal=meta["is_causal"] == "true")
                if isinstance(result, tuple):
                    result, weights = result
                    self.assertIsNone(weights)
                # float32: the projections' and norms' rounding on width 32;
                # float16 storage rounds to 11 significant bits.
                atol = 2e-3 if dtype == torch.float16 else 1e-4
                torch.testing.assert_close(result.double(), expected["y"],
                                           atol=atol, rtol=0)


class ModuleTest(unittest.TestCase):

    def test_dilated_attention_classes_compute_the_documented_function(self):
        q, k, v = (torch.randn(1, 32, 3, 8) for _ in range(3))
        expected = oracle.dilated_attention(q, k, v, [8, 16, 32], [1, 2, 4],
                                            is_causal=True)
        for module in (da.DilatedAttention([8, 16, 32], [1, 2, 4]),
                       da.ImprovedDilatedAttention([8, 16, 32], [1, 2, 4])):
            with self.subTest(cls=type(module).__name__):
                torch.testing.assert_close(
                    module(q, k, v, is_causal=True).double(), expected,
                    atol=1e-5, rtol=0)

    def test_state_dict_names(self):
        standard = da.MultiheadDilatedAttention(32, 4, [1, 2], [8, 16])
        self.assertEqual(
            sorted(standard.state_dict()),
            sorted(f"{m}.{p}" for m in ("q_proj", "k_proj", "v_proj",
                                        "out_proj", "q_ln", "k_ln")
                   for p in ("weight", "bias")))
        improved = da.ImprovedMultiheadDilatedAttention(32, 4, [1, 2], [8, 16])
        self.assertEqual(
            sorted(improved.state_dict()),
            sorted(f"{m}.{p}" for m in ("qkv_proj", "out_proj", "q_ln", "k_ln")
                   for p in ("weight", "bias")))

    def test_return_conventions(self):
        x = torch.randn(2, 16, 32)
        standard = da.MultiheadDilatedAttention(32, 4, [1, 2], [8, 16])
        self.assertIsInstance(standard(x), torch.Tensor)
        output, weights = standard(x, need_weights=True)
        self.assertEqual(output.shape, x.shape)
        self.assertIsNone(weights)
        improved = da.ImprovedMultiheadDilatedAttention(32, 4, [1, 2], [8, 16])
        output, weights = improved(x)
        self.assertEqual(output.shape, x.shape)

    def test_key_padding_mask_reaches_the_kernel(self):
        torch.manual_seed(0)
        module = da.MultiheadDilatedAttention(32, 4, [1, 2], [8, 16],
                                              layer_norm=False)
        x = torch.randn(1, 16, 32)
        mask = torch.zeros(1, 16, dtype=torch.bool)
        mask[0, 10:] = True
        changed = x.clone()
        changed[0, 10:] = torch.randn(6, 32)
        # Padded keys have no weight: what they hold cannot change the
        # unpadded rows.
        torch.testing.assert_close(
            module(x, key_padding_mask=mask)[0, :10],
            module(changed, key_padding_mask=mask)[0, :10])
        self.assertFalse(torch.allclose(module(x)[0, :10],
                                        module(changed)[0, :10]))

    def test_refusals(self):
        module = da.MultiheadDilatedAttention(32, 4, [1, 2], [8, 16])
        x = torch.randn(1, 16, 32)
        with self.assertRaisesRegex(NotImplementedError, "attn_mask"):
            module(x, attn_mask=torch.zeros(16, 16, dtype=torch.bool))
        with self.assertRaisesRegex(ValueError, "Expected 3D tensors"):
            module(x[0])
        with self.assertRaisesRegex(ValueError, r"embed_dim \(30\) must be "
                                    r"divisible by num_heads \(4\)"):
            da.MultiheadDilatedAttention(30, 4, [1, 2], [8, 16])
        with self.assertRaisesRegex(TypeError, "unexpected keyword argument "
                                    "'colour'"):
            da.DilatedAttention([8], [1], colour=1)
        with self.assertRaisesRegex(ValueError, "dropout must be between"):
            da.DilatedAttention([8], [1], attention_dropout=1.5)
        training = da.DilatedAttention([8], [1], attention_dropout=0.1)
        q = torch.randn(1, 8, 1, 8)
        with self.assertRaisesRegex(NotImplementedError, "dropout=0.1"):
            training(q, q, q)
        training.eval()
        self.assertEqual(training(q, q, q).shape, q.shape)

    def test_head_dim_warnings(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            da.MultiheadDilatedAttention(12, 2, [1], [8])
        self.assertTrue(any("divisible by 8" in str(w.message)
                            for w in caught))


class FactoryTest(unittest.TestCase):

    def test_names(self):
        self.assertIsInstance(da.create_dilated_attention("standard", [8], [1]),
                              da.DilatedAttention)
        auto = da.create_dilated_attention(segment_lengths=[8],
                                           dilation_rates=[1], dropout=0.0)
        self.assertIsInstance(auto, da.ImprovedDilatedAttention)
        standard = da.create_dilated_attention("standard", [8], [1],
                                               dropout=0.0)
        self.assertEqual(standard.dropout, 0.0)
        multihead = da.create_multihead_dilated_attention(
            "standard", embed_dim=32, num_heads=4, segment_lengths=[8, 16],
            dilation_rates=[1, 2], enable_memory_pool=True)
        self.assertIsInstance(multihead, da.MultiheadDilatedAttention)
        self.assertIsInstance(
            da.create_multihead_dilated_attention(embed_dim=32, num_heads=4),
            da.ImprovedMultiheadDilatedAttention)

    def test_unknown_type(self):
        with self.assertRaisesRegex(ValueError, "Unknown attention type "
                                    "'nope'. Available types"):
            da.create_dilated_attention("nope")

    def test_submodules_are_named_like_the_python_library(self):
        # The imports the Python library's users write.
        from dilated_attention_torch.core import create_dilated_attention
        from dilated_attention_torch.dilated_attention import DilatedAttention
        from dilated_attention_torch.improved_dilated_attention import (
            ImprovedDilatedAttention)
        from dilated_attention_torch.improved_multihead_dilated_attention import (
            ImprovedMultiheadDilatedAttention)
        from dilated_attention_torch.multihead_dilated_attention import (
            MultiheadDilatedAttention)
        self.assertIs(DilatedAttention, da.DilatedAttention)
        self.assertIs(ImprovedDilatedAttention, da.ImprovedDilatedAttention)
        self.assertIs(ImprovedMultiheadDilatedAttention,
                      da.ImprovedMultiheadDilatedAttention)
        self.assertIs(MultiheadDilatedAttention, da.MultiheadDilatedAttention)
        self.assertIs(create_dilated_attention, da.create_dilated_attention)


if __name__ == "__main__":
    unittest.main()
