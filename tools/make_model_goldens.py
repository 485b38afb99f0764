#!/usr/bin/env python3
"""Writes the golden files of the models (tests/data/models/).

The modules below are written for this script from the description of the
reference library (docs/REFERENCE.md sections 6 to 8): the fork's
MultiheadDilatedAttention (QK-LayerNorm, q_ln reused as the sub-LayerNorm), the
upstream variant (one sub-LayerNorm "norm", optional per-group sum
normalisation), the fused-qkv module (with attention over the sequence, not the
reference's head-axis defect), the encoder and decoder layers and LongNet.
Their parameter names are the reference's state-dict names.

Every case writes two files:
  <case>.safetensors           the state dict (random values, not an
                               initialisation: every parameter matters) and
                               the inputs "input.x" (and "input.memory"), in
                               the case's dtype; "__metadata__" records the
                               configuration (the run_model flags).
  <case>.expected.safetensors  "y": the output, float64, computed in float64
                               from the stored (rounded) parameters and
                               inputs.

Setup (PyTorch from PyPI; the CPU is enough):
    python3 -m venv /tmp/models-venv
    /tmp/models-venv/bin/pip install torch safetensors numpy
    /tmp/models-venv/bin/python tools/make_model_goldens.py

Deterministic (fixed seeds); not part of the test command, its outputs are
committed.
"""

import argparse
import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

DEFAULT_OUTPUT = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
    "models"))


# ----------------------------------------------------------------------------
# Dilated attention over [b, n, h, d] (docs/ARCHITECTURE.md section 1).

def head_groups(num_heads, num_groups):
    """Front-loaded split of the heads: sizes and start of every group."""
    sizes = [num_heads // num_groups + (1 if i < num_heads % num_groups else 0)
             for i in range(num_groups)]
    starts = [sum(sizes[:i]) for i in range(num_groups)]
    return sizes, starts


def dilated_attention(q, k, v, segment_lengths, dilation_rates, is_causal,
                      normalize_group_sums=False):
    b, n, h, d = q.shape
    num_groups = len(segment_lengths)
    sizes, starts = head_groups(h, num_groups)
    out = torch.zeros_like(q)
    for i, (s, r) in enumerate(zip(segment_lengths, dilation_rates)):
        offset = i % r
        heads = slice(starts[i], starts[i] + sizes[i])
        if offset >= s or sizes[i] == 0:
            continue
        local = torch.arange(offset, s, r)
        length = local.numel()
        # [b, segments, length, g, d]: the gathered positions of every segment.
        positions = (torch.arange(n // s)[:, None] * s + local[None, :])
        qg = q[:, positions, heads]
        kg = k[:, positions, heads]
        vg = v[:, positions, heads]
        # Attention over the `length` axis, per (b, segment, head).
        scores = torch.einsum("bmlgd,bmjgd->bmglj", qg, kg) / math.sqrt(d)
        if is_causal:
            mask = torch.ones(length, length, dtype=torch.bool).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        group_out = torch.einsum("bmglj,bmjgd->bmlgd", weights, vg)
        if normalize_group_sums:
            group_out = group_out / group_out.sum(dim=(1, 2), keepdim=True)
        out[:, positions, heads] = group_out
    return out / num_groups


# ----------------------------------------------------------------------------
# Modules with the reference's parameter names.

class ForkMultihead(nn.Module):
    """MultiheadDilatedAttention of the fork (docs/REFERENCE.md §7.2)."""

    def __init__(self, e, h, segs, rates, bias=True, layer_norm=True, eps=1e-5):
        super().__init__()
        self.h, self.segs, self.rates, self.layer_norm = h, segs, rates, layer_norm
        self.q_proj = nn.Linear(e, e, bias=bias)
        self.k_proj = nn.Linear(e, e, bias=bias)
        self.v_proj = nn.Linear(e, e, bias=bias)
        self.out_proj = nn.Linear(e, e, bias=bias)
        if layer_norm:
            self.q_ln = nn.LayerNorm(e, eps=eps)
            self.k_ln = nn.LayerNorm(e, eps=eps)

    def forward(self, query, key, value, is_causal):
        b, n, e = query.shape
        q, k, v = self.q_proj(query), self.k_proj(key), self.v_proj(value)
        if self.layer_norm:
            q, k = self.q_ln(q), self.k_ln(k)
        split = lambda t: t.reshape(b, n, self.h, e // self.h)
        x = dilated_attention(split(q), split(k), split(v), self.segs,
                              self.rates, is_causal).reshape(b, n, e)
        if self.layer_norm:
            x = self.q_ln(x)
        return self.out_proj(x)


class UpstreamMultihead(nn.Module):
    """The upstream module (docs/REFERENCE.md section 6): one sub-LayerNorm
    "norm"."""

    def __init__(self, e, h, segs, rates, bias=True, layer_norm=True, eps=1e-5,
                 normalize_group_sums=False):
        super().__init__()
        self.h, self.segs, self.rates = h, segs, rates
        self.normalize_group_sums = normalize_group_sums
        self.q_proj = nn.Linear(e, e, bias=bias)
        self.k_proj = nn.Linear(e, e, bias=bias)
        self.v_proj = nn.Linear(e, e, bias=bias)
        self.norm = nn.LayerNorm(e, eps=eps) if layer_norm else None
        self.out_proj = nn.Linear(e, e, bias=bias)

    def forward(self, query, key, value, is_causal):
        b, n, e = query.shape
        split = lambda t: t.reshape(b, n, self.h, e // self.h)
        x = dilated_attention(split(self.q_proj(query)),
                              split(self.k_proj(key)),
                              split(self.v_proj(value)), self.segs, self.rates,
                              is_causal, self.normalize_group_sums)
        x = x.reshape(b, n, e)
        if self.norm is not None:
            x = self.norm(x)
        return self.out_proj(x)


class FusedMultihead(nn.Module):
    """ImprovedMultiheadDilatedAttention (docs/REFERENCE.md section 7.3),
    attention over the sequence."""

    def __init__(self, e, h, segs, rates, bias=True, layer_norm=True, eps=1e-5):
        super().__init__()
        self.e, self.h, self.segs, self.rates = e, h, segs, rates
        self.layer_norm = layer_norm
        self.qkv_proj = nn.Linear(e, 3 * e, bias=bias)
        self.out_proj = nn.Linear(e, e, bias=bias)
        if layer_norm:
            self.q_ln = nn.LayerNorm(e, eps=eps)
            self.k_ln = nn.LayerNorm(e, eps=eps)  # Present, never used.

    def forward(self, query, key, value, is_causal):
        b, n, e = query.shape
        qkv = self.qkv_proj(query)
        if key is query and value is query:
            q, k, v = qkv.chunk(3, dim=-1)
        else:
            q = qkv[..., :e]
            k = self.qkv_proj(key)[..., e:2 * e]
            v = self.qkv_proj(value)[..., 2 * e:]
        split = lambda t: t.reshape(b, n, self.h, e // self.h)
        x = dilated_attention(split(q), split(k), split(v), self.segs,
                              self.rates, is_causal).reshape(b, n, e)
        if self.layer_norm:
            x = self.q_ln(x)
        return self.out_proj(x)


ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class EncoderLayer(nn.Module):
    """DilatedTransformerEncoderLayer (docs/REFERENCE.md section 8)."""

    def __init__(self, e, h, segs, rates, ff, activation, eps=1e-5):
        super().__init__()
        self.activation = ACTIVATIONS[activation]
        self.norm1 = nn.LayerNorm(e, eps=eps)
        self.self_attn = ForkMultihead(e, h, segs, rates, layer_norm=True,
                                       eps=eps)
        self.norm2 = nn.LayerNorm(e, eps=eps)
        self.linear1 = nn.Linear(e, ff)
        self.norm3 = nn.LayerNorm(ff, eps=eps)
        self.linear2 = nn.Linear(ff, e)

    def forward(self, x, is_causal):
        y = self.norm1(x)
        x = x + self.self_attn(y, y, y, is_causal)
        y = self.linear2(self.norm3(self.activation(self.linear1(self.norm2(x)))))
        return x + y


class DecoderLayer(nn.Module):
    """DilatedTransformerDecoderLayer (docs/REFERENCE.md section 8):
    self-attention without, cross-attention with the attention LayerNorms."""

    def __init__(self, e, h, segs, rates, ff, activation, eps=1e-5):
        super().__init__()
        self.activation = ACTIVATIONS[activation]
        self.norm1 = nn.LayerNorm(e, eps=eps)
        self.self_attn = ForkMultihead(e, h, segs, rates, layer_norm=False,
                                       eps=eps)
        self.norm2 = nn.LayerNorm(e, eps=eps)
        self.multihead_attn = ForkMultihead(e, h, segs, rates, layer_norm=True,
                                            eps=eps)
        self.norm3 = nn.LayerNorm(e, eps=eps)
        self.linear1 = nn.Linear(e, ff)
        self.norm4 = nn.LayerNorm(ff, eps=eps)
        self.linear2 = nn.Linear(ff, e)

    def forward(self, x, memory, tgt_is_causal, memory_is_causal):
        y = self.norm1(x)
        x = x + self.self_attn(y, y, y, tgt_is_causal)
        y = self.norm2(x)
        x = x + self.multihead_attn(y, memory, memory, memory_is_causal)
        y = self.linear2(self.norm4(self.activation(self.linear1(self.norm3(x)))))
        return x + y


class Stack(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)


class LongNet(nn.Module):
    """LongNet (docs/REFERENCE.md section 8): encoder stack, then decoder
    stack on the original input with the encoder output as memory."""

    def __init__(self, e, h, n_enc, n_dec, ff, segs, rates, activation):
        super().__init__()
        self.encoder = Stack([EncoderLayer(e, h, segs, rates, ff, activation)
                              for _ in range(n_enc)])
        self.decoder = Stack([DecoderLayer(e, h, segs, rates, ff, activation)
                              for _ in range(n_dec)])

    def forward(self, x, is_causal):
        memory = x
        for layer in self.encoder.layers:
            memory = layer(memory, is_causal)
        tgt = x
        for layer in self.decoder.layers:
            tgt = layer(tgt, memory, is_causal, is_causal)
        return tgt


# ----------------------------------------------------------------------------
# Cases.

E, H, SEGS, RATES = 32, 4, [4, 8, 16], [1, 2, 4]  # heads split 2 + 1 + 1
B, N, FF = 2, 16, 48

CASES = [
    dict(name="multihead_fork", model="multihead", why="fork LayerNorms, self-attention",
         make=lambda: ForkMultihead(E, H, SEGS, RATES), is_causal=False),
    dict(name="multihead_fork_cross_causal", model="multihead",
         why="cross-attention (key = value = memory), causal",
         make=lambda: ForkMultihead(E, H, SEGS, RATES), is_causal=True,
         memory=True),
    dict(name="multihead_fork_plain", model="multihead",
         why="no bias, no LayerNorm",
         make=lambda: ForkMultihead(E, H, SEGS, RATES, bias=False,
                                    layer_norm=False),
         is_causal=True, flags=dict(bias=False, layer_norm=False)),
    dict(name="multihead_upstream", model="multihead",
         why="upstream variant: one sub-LayerNorm 'norm'",
         make=lambda: UpstreamMultihead(E, H, SEGS, RATES), is_causal=True,
         flags=dict(variant="upstream")),
    dict(name="multihead_upstream_group_sums", model="multihead",
         why="upstream variant with its per-group sum normalisation",
         make=lambda: UpstreamMultihead(E, H, SEGS, RATES,
                                        normalize_group_sums=True),
         is_causal=False, positive_values=True,
         flags=dict(variant="upstream", normalize_group_sums=True)),
    dict(name="multihead_improved", model="multihead_improved",
         why="fused qkv, self-attention",
         make=lambda: FusedMultihead(E, H, SEGS, RATES), is_causal=True),
    dict(name="multihead_improved_cross", model="multihead_improved",
         why="fused qkv, cross-attention",
         make=lambda: FusedMultihead(E, H, SEGS, RATES), is_causal=False,
         memory=True),
    dict(name="encoder_layer_relu_causal", model="encoder_layer",
         why="encoder layer, relu, causal",
         make=lambda: EncoderLayer(E, H, SEGS, RATES, FF, "relu"),
         is_causal=True),
    dict(name="encoder_layer_gelu", model="encoder_layer",
         why="encoder layer, gelu",
         make=lambda: EncoderLayer(E, H, SEGS, RATES, FF, "gelu"),
         is_causal=False, flags=dict(activation="gelu")),
    dict(name="decoder_layer_causal", model="decoder_layer",
         why="decoder layer with a memory, causal",
         make=lambda: DecoderLayer(E, H, SEGS, RATES, FF, "relu"),
         is_causal=True, memory=True),
    dict(name="longnet_causal", model="longnet",
         why="2 encoder + 2 decoder layers, causal",
         make=lambda: LongNet(E, H, 2, 2, FF, SEGS, RATES, "relu"),
         is_causal=True),
    dict(name="longnet_1x1_noncausal", model="longnet",
         why="1 encoder + 1 decoder layer, two groups, not causal",
         make=lambda: LongNet(E, H, 1, 1, FF, [8, 16], [1, 2], "relu"),
         is_causal=False, segs=[8, 16], rates=[1, 2]),
    dict(name="encoder_layer_bf16", model="encoder_layer",
         why="bfloat16 parameters and activations",
         make=lambda: EncoderLayer(E, H, SEGS, RATES, FF, "relu"),
         is_causal=True, dtype=torch.bfloat16),
    dict(name="multihead_f16", model="multihead",
         why="float16 parameters and activations",
         make=lambda: ForkMultihead(E, H, SEGS, RATES), is_causal=True,
         dtype=torch.float16),
]


def randomize(module, generator, positive_values):
    """Random parameters: weights ~ N(0, 1/fan_in), LayerNorm weights near 1,
    small biases (large enough that a loader that drops them fails)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            is_norm = "norm" in name or "_ln" in name
            if leaf == "weight" and not is_norm:
                p.copy_(torch.randn(p.shape, generator=generator,
                                    dtype=torch.float64) / math.sqrt(p.shape[1]))
            elif leaf == "weight":
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=generator,
                                              dtype=torch.float64))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=generator,
                                          dtype=torch.float64))
            if positive_values and name == "v_proj.bias":
                p.add_(3.0)  # Keeps every group sum far from zero.


def run_case(case, output_dir):
    dtype = case.get("dtype", torch.float32)
    generator = torch.Generator().manual_seed(
        sum(ord(c) for c in case["name"]))
    module = case["make"]().double()
    randomize(module, generator, case.get("positive_values", False))
    # Round the parameters and inputs to the stored dtype, then compute in
    # float64 from exactly what is stored.
    state = {k: v.to(dtype) for k, v in module.state_dict().items()}
    module.load_state_dict({k: v.double() for k, v in state.items()})
    x = torch.randn(B, N, E, generator=generator, dtype=torch.float64).to(dtype)
    tensors = dict(state)
    tensors["input.x"] = x
    memory = None
    if case.get("memory"):
        memory = torch.randn(B, N, E, generator=generator,
                             dtype=torch.float64).to(dtype)
        tensors["input.memory"] = memory
    module.eval()
    with torch.no_grad():
        xd = x.double()
        if case["model"] in ("multihead", "multihead_improved"):
            if memory is None:
                y = module(xd, xd, xd, case["is_causal"])
            else:
                md = memory.double()
                y = module(xd, md, md, case["is_causal"])
        elif case["model"] == "encoder_layer":
            y = module(xd, case["is_causal"])
        elif case["model"] == "decoder_layer":
            y = module(xd, memory.double(), case["is_causal"],
                       case["is_causal"])
        else:
            y = module(xd, case["is_causal"])
    segs = case.get("segs", SEGS)
    rates = case.get("rates", RATES)
    metadata = dict(
        why=case["why"], model=case["model"], nhead=str(H),
        segment_lengths=",".join(map(str, segs)),
        dilation_rates=",".join(map(str, rates)),
        is_causal=str(case["is_causal"]).lower(),
        dtype=str(dtype).replace("torch.", ""))
    for key, value in case.get("flags", {}).items():
        metadata[key] = str(value).lower() if isinstance(value, bool) else value
    base = os.path.join(output_dir, case["name"])
    save_file({k: v.contiguous() for k, v in tensors.items()},
              base + ".safetensors", metadata=metadata)
    save_file({"y": y.contiguous()}, base + ".expected.safetensors")
    return base


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    os.makedirs(args.output_dir, exist_ok=True)
    total = 0
    for case in CASES:
        base = run_case(case, args.output_dir)
        for suffix in (".safetensors", ".expected.safetensors"):
            total += os.path.getsize(base + suffix)
        print(f"{case['name']}: {case['why']}")
    print(f"{len(CASES)} cases, {total} bytes in {args.output_dir}")


if __name__ == "__main__":
    main()
