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


def _layer_count(tensors, prefix):
    indices = {int(name[len(prefix):].split(".")[0]) for name in tensors
               if name.startswith(prefix)}
    return len(indices)


class ModelCheckpointTest(unittest.TestCase):
    """The transformer layers and LongNet from the Python library's state
    dicts (tools/make_model_goldens.py) against their float64 outputs."""

    CASES = ("encoder_layer_gelu", "encoder_layer_relu_causal",
             "encoder_layer_bf16", "decoder_layer_causal", "longnet_causal",
             "longnet_1x1_noncausal")

    def test_checkpoints_load_and_match(self):
        for name in self.CASES:
            with self.subTest(model=name):
                tensors, meta = safetensors_file.load(
                    model_file(name + ".safetensors"))
                expected, _ = safetensors_file.load(
                    model_file(name + ".expected.safetensors"))
                x = tensors.pop("input.x")
                memory = tensors.pop("input.memory", None)
                causal = meta["is_causal"] == "true"
                feed_forward = next(t for n, t in tensors.items()
                                    if n.endswith("linear1.weight"))
                common = dict(
                    d_model=x.shape[-1], nhead=int(meta["nhead"]),
                    segment_lengths=[int(s) for s in
                                     meta["segment_lengths"].split(",")],
                    dilation_rates=[int(r) for r in
                                    meta["dilation_rates"].split(",")],
                    dim_feedforward=feed_forward.shape[0], dropout=0.0,
                    activation=meta.get("activation", "relu"), dtype=x.dtype)
                if meta["model"] == "encoder_layer":
                    module = da.DilatedTransformerEncoderLayer(**common)
                    run = lambda: module(x, is_causal=causal)
                elif meta["model"] == "decoder_layer":
                    module = da.DilatedTransformerDecoderLayer(**common)
                    run = lambda: module(x, memory, tgt_is_causal=causal,
                                         memory_is_causal=causal)
                else:
                    module = da.LongNet(
                        num_encoder_layers=_layer_count(tensors,
                                                        "encoder.layers."),
                        num_decoder_layers=_layer_count(tensors,
                                                        "decoder.layers."),
                        **common)
                    run = lambda: module(x, is_causal=causal)
                module.load_state_dict(tensors, strict=True)
                with torch.no_grad():
                    result = run()
                # float32: rounding through two or four layers of width 32;
                # bfloat16 parameters and activations keep 8 significant bits.
                atol = 0.1 if x.dtype == torch.bfloat16 else 2e-4
                torch.testing.assert_close(result.double(), expected["y"],
                                           atol=atol, rtol=0)


class LongNetLMTest(unittest.TestCase):

    def test_xpos_rotates_and_scales_channel_pairs(self):
        # xPos written as complex multiplication: pair j at row t becomes
        # (x_2j + i x_2j+1) * exp(i t w_j) * zeta_j ** (p_t / 512), with
        # w_j = 10000 ** (-j / pairs), zeta_j = (2j + 0.4 d) / (1.4 d) and
        # p_t the centred position floor(-n / 2) + t.
        d, n = 8, 7
        xpos = da.long_net.XPOS(d)
        x = torch.randn(2, n, d, dtype=torch.float64)
        pairs = d // 2
        t = torch.arange(n, dtype=torch.float64)[:, None]
        j = torch.arange(pairs, dtype=torch.float64)[None, :]
        zeta = (2 * j + 0.4 * d) / (1.4 * d)
        position = (-n // 2) + t
        factor = torch.polar(zeta ** (position / 512),
                             t * 10000 ** (-j / pairs))
        expected = torch.view_as_real(
            torch.view_as_complex(x.reshape(2, n, pairs, 2)) * factor)
        # The module computes its tables in float32 (relative error ~1e-7).
        torch.testing.assert_close(xpos.double()(x), expected.reshape(2, n, d),
                                   atol=1e-5, rtol=1e-5)

    def test_names_and_shapes(self):
        torch.manual_seed(0)
        model = da.LongNetLM(num_tokens=50, d_model=32, nhead=4,
                             num_encoder_layers=1, num_decoder_layers=1,
                             dim_feedforward=48, segment_lengths=[8, 16],
                             dilation_rates=[1, 2])
        names = set(model.state_dict())
        for name in ("token_embedding.weight", "pos_embedding.scale",
                     "long_net.encoder.layers.0.self_attn.q_proj.weight",
                     "long_net.decoder.layers.0.multihead_attn.k_ln.weight",
                     "norm.weight", "out.weight", "out.bias"):
            self.assertIn(name, names)
        logits = model(torch.randint(0, 50, (2, 16)))
        self.assertEqual(logits.shape, (2, 16, 50))
        logits.sum().backward()
        self.assertGreater(model.token_embedding.weight.grad.abs().sum(), 0)

    def test_magneto_gains(self):
        model = da.LongNet(d_model=32, nhead=4, num_encoder_layers=2,
                           num_decoder_layers=2, dim_feedforward=48,
                           segment_lengths=[8, 16], dilation_rates=[1, 2])
        self.assertAlmostEqual(model.encoder.layers[0].gamma_init, 0.9099278,
                               places=6)
        self.assertAlmostEqual(model.decoder.layers[0].gamma_init, 1.3385662,
                               places=6)
        # Copies of one initialised layer, as in the Python library.
        torch.testing.assert_close(model.encoder.layers[0].linear1.weight,
                                   model.encoder.layers[1].linear1.weight)


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
        self.assertIsNone(weights)

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

    def test_empty_lengths_are_refused_not_replaced(self):
        with self.assertRaisesRegex(ValueError, "segment_lengths cannot be "
                                    "empty"):
            da.create_dilated_attention("standard", [], [1])
        multihead = da.create_multihead_dilated_attention(
            "standard", embed_dim=32, num_heads=4, segment_lengths=[8, 16],
            dilation_rates=[1, 2], use_tf32=True, enable_profiling=False)
        self.assertIsInstance(multihead, da.MultiheadDilatedAttention)

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
