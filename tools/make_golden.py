#!/usr/bin/env python3
"""Writes the golden test files of dilated attention (tests/data/golden/).

Each file holds the inputs q, k, v, grad_out ([b, n, h, d], in the case's
dtype) and the expected out, grad_q, grad_k, grad_v ([b, n, h, d]) and lse
([b, h, n], -inf for rows no group selects or padded), all float64, computed
here in float64 from the stored inputs by an implementation of
docs/ARCHITECTURE.md section 1 written for this script (partial segments and
key padding included), with gradients by autograd. Optional layout inputs:
key_padding_mask (BOOL [b, n], True = padding) or cu_seqlens (I32 [batch + 1];
then q, k, v, grad_out and the expected tensors are [total, h, d] and lse is
[h, total], every sequence computed on its own). Its "__metadata__" gives
segment_lengths, dilation_rates, is_causal and, when the case sets one,
softmax_scale.

Setup (PyTorch from PyPI; the CPU is enough):
    python3 -m venv /tmp/golden-venv
    /tmp/golden-venv/bin/pip install torch
    /tmp/golden-venv/bin/python tools/make_golden.py

The PyPI package dilated-attention-pytorch is deliberately not used: it is an
older version with a different normalisation (docs/REFERENCE.md section 6).
The script is deterministic (fixed seeds) and is not part of the test command;
its outputs are committed.
"""

import argparse
import json
import math
import os
import struct

import torch
import torch.nn.functional as F

DEFAULT_OUTPUT = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "golden"))

SAFETENSORS_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int32: "I32",
    torch.bool: "BOOL",
}

# Every case stays small: a file must be < 100 KB and all of them < 1 MB.
CASES = [
    dict(
        name="f32_uneven_heads",
        why="h mod G != 0 (heads split 3 + 2), offset 1 in group 1",
        dtype=torch.float32, b=1, n=16, h=5, d=8,
        segment_lengths=[4, 8], dilation_rates=[1, 2], is_causal=False,
    ),
    dict(
        name="f32_offset_beyond_segment_causal",
        why="group 2 has offset 2 >= segment length 2 (its heads stay zero); causal; b > 1",
        dtype=torch.float32, b=2, n=16, h=4, d=8,
        segment_lengths=[8, 4, 2], dilation_rates=[1, 2, 4], is_causal=True,
    ),
    dict(
        name="f32_dilation_beyond_segment",
        why="rates larger than the segment: one position per segment, offset 1 in group 1",
        dtype=torch.float32, b=1, n=16, h=2, d=4,
        segment_lengths=[4, 8], dilation_rates=[8, 8], is_causal=True,
    ),
    dict(
        name="f32_custom_scale_b2",
        why="softmax_scale 0.3, segments 4 and 6 with rates 2 and 3, b = 2",
        dtype=torch.float32, b=2, n=12, h=3, d=12,
        segment_lengths=[4, 6], dilation_rates=[2, 3], is_causal=False,
        softmax_scale=0.3,
    ),
    dict(
        name="f32_single_dense_group",
        why="one group, rate 1: plain causal attention within segments of 8",
        dtype=torch.float32, b=1, n=16, h=2, d=8,
        segment_lengths=[8], dilation_rates=[1], is_causal=True,
    ),
    dict(
        name="f16_causal_b2",
        why="float16 storage, three groups over four heads (2 + 1 + 1), causal, b > 1",
        dtype=torch.float16, b=2, n=16, h=4, d=8,
        segment_lengths=[4, 8, 16], dilation_rates=[1, 2, 4], is_causal=True,
    ),
    dict(
        name="f16_custom_scale",
        why="float16 storage, softmax_scale 0.5, uneven heads (3 + 2)",
        dtype=torch.float16, b=1, n=16, h=5, d=8,
        segment_lengths=[8, 16], dilation_rates=[2, 4], is_causal=False,
        softmax_scale=0.5,
    ),
    dict(
        name="bf16_uneven_heads",
        why="bfloat16 storage, six heads over four groups (2 + 2 + 1 + 1), offsets 0, 1, 2, 3",
        dtype=torch.bfloat16, b=1, n=16, h=6, d=8,
        segment_lengths=[4, 8, 8, 16], dilation_rates=[1, 2, 4, 4], is_causal=False,
    ),
    dict(
        name="bf16_causal_custom_scale_b2",
        why="bfloat16 storage, causal, softmax_scale 0.2, b > 1",
        dtype=torch.bfloat16, b=2, n=8, h=3, d=8,
        segment_lengths=[4, 8], dilation_rates=[1, 2], is_causal=True,
        softmax_scale=0.2,
    ),
    dict(
        name="f32_partial_segments_causal",
        why="n = 13: every group's last segment is partial (5 of 8, 1 of 4, 13 of 16)",
        dtype=torch.float32, b=2, n=13, h=3, d=8,
        segment_lengths=[8, 4, 16], dilation_rates=[1, 2, 4], is_causal=True,
    ),
    dict(
        name="f16_partial_segments",
        why="float16 storage; n = 10 shorter than the segment of 16; offset 1 in group 1",
        dtype=torch.float16, b=1, n=10, h=4, d=8,
        segment_lengths=[4, 16], dilation_rates=[1, 2], is_causal=False,
    ),
    dict(
        name="f32_key_padding_mask",
        why="key_padding_mask with padding at the end, at the start and in holes",
        dtype=torch.float32, b=3, n=16, h=3, d=8,
        segment_lengths=[4, 8, 16], dilation_rates=[1, 2, 4], is_causal=False,
        padding=[[12, 13, 14, 15], [0, 1, 5, 6, 9], [2, 3, 4, 8, 10, 11, 15]],
    ),
    dict(
        name="bf16_key_padding_mask_causal",
        why="bfloat16 storage, causal, a mask with holes and partial segments (n = 14)",
        dtype=torch.bfloat16, b=2, n=14, h=2, d=8,
        segment_lengths=[8, 4], dilation_rates=[1, 2], is_causal=True,
        padding=[[1, 4, 9, 13], [0, 2, 3, 7, 8]],
    ),
    dict(
        name="f32_packed_causal",
        why="packed sequences of 7, 0, 1 and 20 rows (cu_seqlens), causal",
        dtype=torch.float32, h=3, d=8,
        segment_lengths=[4, 8], dilation_rates=[1, 2], is_causal=True,
        seq_lens=[7, 0, 1, 20],
    ),
    dict(
        name="f16_packed",
        why="float16 storage, packed sequences of 9 and 16 rows, segments longer than the first",
        dtype=torch.float16, h=2, d=8,
        segment_lengths=[16, 8], dilation_rates=[1, 4], is_causal=False,
        seq_lens=[9, 16],
    ),
]


def head_groups(num_heads, num_groups):
    """Returns the front-loaded head count of every group."""
    return [num_heads // num_groups + (1 if i < num_heads % num_groups else 0)
            for i in range(num_groups)]


def dilated_attention(q, k, v, segment_lengths, dilation_rates, is_causal,
                      softmax_scale=None, padding_mask=None):
    """docs/ARCHITECTURE.md section 1 on [b, n, h, d] tensors, differentiable.

    The sequence is zero-padded to a multiple of each segment length; group i
    gathers positions m*s + o + j*r of every segment by strided slicing and
    runs attention per head over them with a boolean mask that allows key j
    for query i when the key is a real, unpadded position (and j <= i when
    causal). Rows without an allowed key (padded or past the end) get zero.
    The result is scattered back, cut to n and divided by the number of
    groups G. padding_mask is [b, n] bool, True = padding.
    """
    b, n, h, d = q.shape
    num_groups = len(segment_lengths)
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(d)
    if padding_mask is None:
        padding_mask = torch.zeros(b, n, dtype=torch.bool)
    outputs = []
    lses = []
    head_begin = 0
    for i, (s, r, g) in enumerate(
            zip(segment_lengths, dilation_rates, head_groups(h, num_groups))):
        offset = i % r
        heads = slice(head_begin, head_begin + g)
        head_begin += g
        segments = -(-n // s)
        extent = segments * s
        group_out = torch.zeros(b, segments, s, g, d, dtype=q.dtype)
        group_lse = torch.full((b, segments, s, g), -math.inf, dtype=q.dtype)
        if offset < s:
            def gather(t):
                # [b, n, g, d] -> [b, n'/s, L, g, d] -> [b, n'/s, g, L, d]
                t = F.pad(t[:, :, heads], (0, 0, 0, 0, 0, extent - n))
                return t.reshape(b, segments, s, g, d)[:, :, offset::r] \
                    .transpose(2, 3)

            absent = F.pad(padding_mask, (0, extent - n), value=True)
            absent = absent.reshape(b, segments, s)[:, :, offset::r]
            length = absent.shape[-1]
            # [b, n'/s, 1, L(query), L(key)]: key allowed for the query.
            allowed = ~absent[:, :, None, None, :]
            if is_causal:
                allowed = allowed & torch.ones(
                    length, length, dtype=torch.bool).tril()
            scores = scale * gather(q) @ gather(k).transpose(-1, -2)
            scores = scores.masked_fill(~allowed, -math.inf)
            has_key = allowed.any(dim=-1, keepdim=True) & \
                ~absent[:, :, None, :, None]
            safe = scores.masked_fill(~has_key, 0.0)
            weights = torch.softmax(safe, dim=-1) * has_key
            attended = weights @ gather(v)
            group_out[:, :, offset::r] = attended.transpose(2, 3)
            with torch.no_grad():
                row_lse = torch.logsumexp(safe, dim=-1).masked_fill(
                    ~has_key[..., 0], -math.inf)
                group_lse[:, :, offset::r] = row_lse.transpose(2, 3)
        outputs.append(group_out.reshape(b, extent, g, d)[:, :n])
        lses.append(group_lse.reshape(b, extent, g)[:, :n])
    # lse: [b, n, h] -> [b, h, n].
    return (torch.cat(outputs, dim=2) / num_groups,
            torch.cat(lses, dim=2).transpose(1, 2).contiguous())


def naive_dilated_attention(q, k, v, segment_lengths, dilation_rates,
                            is_causal, softmax_scale=None, padding_mask=None):
    """The same function with explicit loops over positions (a cross-check)."""
    b, n, h, d = q.shape
    num_groups = len(segment_lengths)
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(d)
    padded = (lambda batch, x: False) if padding_mask is None else \
        (lambda batch, x: bool(padding_mask[batch, x]))
    out = torch.zeros_like(q)
    lse = torch.full((b, h, n), -math.inf, dtype=q.dtype)
    head_begin = 0
    for i, (s, r, g) in enumerate(
            zip(segment_lengths, dilation_rates, head_groups(h, num_groups))):
        offset = i % r
        for m in range(-(-n // s)):
            positions = list(range(m * s + offset, min((m + 1) * s, n), r))
            for batch in range(b):
                for a in range(head_begin, head_begin + g):
                    for p in positions:
                        if padded(batch, p):
                            continue
                        keys = [x for x in positions
                                if (x <= p or not is_causal)
                                and not padded(batch, x)]
                        scores = torch.stack(
                            [scale * torch.dot(q[batch, p, a], k[batch, x, a])
                             for x in keys])
                        weights = torch.softmax(scores, dim=0)
                        lse[batch, a, p] = torch.logsumexp(scores, dim=0)
                        for w, x in zip(weights, keys):
                            out[batch, p, a] += w * v[batch, x, a]
        head_begin += g
    return out / num_groups, lse


def packed_attention(attention, q, k, v, seq_lens, **config):
    """Runs `attention` on every sequence of packed [total, h, d] tensors on
    its own; returns out [total, h, d] and lse [h, total]."""
    outs, lses = [], []
    begin = 0
    for length in seq_lens:
        rows = slice(begin, begin + length)
        begin += length
        out, lse = attention(q[None, rows], k[None, rows], v[None, rows],
                             **config)
        outs.append(out[0])
        lses.append(lse[0])
    return torch.cat(outs, dim=0), torch.cat(lses, dim=1)


def tensor_bytes(t):
    """Returns the little-endian bytes of a contiguous tensor (no NumPy)."""
    return bytes(t.contiguous().view(torch.uint8).flatten().tolist())


def write_safetensors(path, tensors, metadata):
    """Writes `tensors` (name -> tensor) in the safetensors format."""
    header = {"__metadata__": metadata}
    chunks = []
    offset = 0
    # Widest dtypes first, so each tensor is aligned to its element size.
    order = sorted(tensors, key=lambda name: -tensors[name].element_size())
    for name in order:
        t = tensors[name]
        data = tensor_bytes(t)
        header[name] = {
            "dtype": SAFETENSORS_DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in chunks:
            f.write(data)


def make_case(case, seed):
    generator = torch.Generator().manual_seed(seed)
    seq_lens = case.get("seq_lens")
    if seq_lens is not None:
        shape = (sum(seq_lens), case["h"], case["d"])
    else:
        shape = (case["b"], case["n"], case["h"], case["d"])
    inputs = {name: torch.randn(shape, generator=generator).to(case["dtype"])
              for name in ("q", "k", "v", "grad_out")}
    config = dict(segment_lengths=case["segment_lengths"],
                  dilation_rates=case["dilation_rates"],
                  is_causal=case["is_causal"],
                  softmax_scale=case.get("softmax_scale"))
    layout = {}
    if "padding" in case:
        mask = torch.zeros(case["b"], case["n"], dtype=torch.bool)
        for batch, positions in enumerate(case["padding"]):
            mask[batch, positions] = True
        config["padding_mask"] = mask
        layout["key_padding_mask"] = mask
    if seq_lens is not None:
        layout["cu_seqlens"] = torch.tensor(
            [0] + [sum(seq_lens[:i + 1]) for i in range(len(seq_lens))],
            dtype=torch.int32)

    def run(attention, q, k, v):
        if seq_lens is None:
            return attention(q, k, v, **config)
        return packed_attention(attention, q, k, v, seq_lens, **config)

    q, k, v = (inputs[name].to(torch.float64).requires_grad_()
               for name in ("q", "k", "v"))
    out, lse = run(dilated_attention, q, k, v)
    grad_q, grad_k, grad_v = torch.autograd.grad(
        out, (q, k, v), grad_outputs=inputs["grad_out"].to(torch.float64))
    for name, grad in (("grad_q", grad_q), ("grad_k", grad_k),
                       ("grad_v", grad_v)):
        if not torch.isfinite(grad).all():
            raise RuntimeError(f"{case['name']}: {name} is not finite")

    with torch.no_grad():
        naive_out, naive_lse = run(naive_dilated_attention, q, k, v)
    disagreement = max((naive_out - out).abs().max().item(),
                       (naive_lse - lse).nan_to_num(0.0).abs().max().item())
    same_rows = torch.equal(naive_lse.isinf(), lse.isinf())
    if disagreement > 1e-12 or not same_rows:
        raise RuntimeError(f"{case['name']}: vectorised and loop versions "
                           f"differ by {disagreement} (same rows selected: "
                           f"{same_rows})")

    tensors = dict(inputs)
    tensors.update(layout)
    tensors.update(out=out.detach(), lse=lse, grad_q=grad_q, grad_k=grad_k,
                   grad_v=grad_v)
    metadata = {
        "segment_lengths": ",".join(map(str, case["segment_lengths"])),
        "dilation_rates": ",".join(map(str, case["dilation_rates"])),
        "is_causal": "true" if case["is_causal"] else "false",
        "description": case["why"],
        "generator": "tools/make_golden.py",
    }
    if case.get("softmax_scale") is not None:
        metadata["softmax_scale"] = repr(case["softmax_scale"])
    return tensors, metadata


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    os.makedirs(args.output_dir, exist_ok=True)
    total = 0
    for seed, case in enumerate(CASES):
        tensors, metadata = make_case(case, seed)
        path = os.path.join(args.output_dir, case["name"] + ".safetensors")
        write_safetensors(path, tensors, metadata)
        size = os.path.getsize(path)
        if size >= 100 * 1024:
            raise RuntimeError(f"{path} is {size} bytes, over 100 KB")
        total += size
        print(f"{path}: {size} bytes")
    if total >= 1024 * 1024:
        raise RuntimeError(f"golden files total {total} bytes, over 1 MB")
    print(f"total: {total} bytes")


if __name__ == "__main__":
    main()
