#!/usr/bin/env python3
"""Writes the golden files of block_sparse and longnet (tests/data/golden_sparse/).

Each file holds the inputs q, k, v, grad_out ([b, n, h, d], in the case's
dtype) and the expected out, grad_q, grad_k, grad_v ([b, n, h, d]) and lse
([b, h, n]), all float64, computed here in float64 from the stored inputs by
implementations of docs/BLOCK_SPARSE.md and docs/LONGNET_MIXING.md written for
this script, with gradients by autograd. Optional layout inputs as in
tools/make_golden.py: key_padding_mask (BOOL [b, n], True = padding) or
cu_seqlens (I32 [batch + 1]; then the tensors are [total, h, d], lse is
[h, total] and every sequence is computed on its own). A custom block layout is
the tensor block_layout (BOOL [heads, nb, nb]).

"__metadata__" gives "function" (block_sparse or longnet), is_causal, and
softmax_scale when the case sets one; for block_sparse block_size, pattern and
the pattern's parameters (window, global_tokens, sparse_dilation_rates as
"1,2,4", hierarchical_levels as "stride:window,..."); for longnet
segment_lengths and dilation_rates.

Both functions are written as one masked softmax per row over an explicit
token mask: block_sparse from the layout expanded to tokens, longnet over the
keys of every branch concatenated (a key two branches select counts twice).
longnet is cross-checked against the merge of separately computed branches by
their lse (the paper's formula). Deterministic (fixed seeds); needs PyTorch
only (CPU), not NumPy:
    python3 tools/make_golden_sparse.py
"""

import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import write_safetensors  # noqa: E402

DEFAULT_OUTPUT = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
    "golden_sparse"))


def custom_layout(heads, num_blocks, seed):
    """A [heads, nb, nb] layout of density about 1/2 from `seed`, with query
    block 1 of head 0 empty (a row with no key)."""
    generator = torch.Generator().manual_seed(seed)
    layout = torch.rand(heads, num_blocks, num_blocks,
                        generator=generator) < 0.5
    layout[0, 1, :] = False
    return layout


# Every file stays under 64 KB; all of them under 300 KB.
CASES = [
    dict(
        name="f32_block_sparse_local_window_causal_b2",
        why="local_window 12 at block 4 (one block each side), causal, b = 2",
        function="block_sparse", dtype=torch.float32, b=2, n=24, h=2, d=8,
        is_causal=True, block_size=4, pattern="local_window", window=12,
    ),
    dict(
        name="f16_block_sparse_dilated_sparse_padding",
        why="float16, dilated_sparse with rates 1, 3, 5 (and a fourth, unused), "
            "softmax_scale 0.4, key padding with a fully padded block",
        function="block_sparse", dtype=torch.float16, b=2, n=32, h=2, d=8,
        is_causal=False, block_size=4, pattern="dilated_sparse",
        sparse_dilation_rates=[1, 3, 5, 2], softmax_scale=0.4,
        padding=[[0, 1, 2, 3, 17, 30], [5, 31]],
    ),
    dict(
        name="bf16_block_sparse_global_local_causal",
        why="bfloat16, global_local: 6 global tokens round up to 2 blocks, window 8",
        function="block_sparse", dtype=torch.bfloat16, b=1, n=40, h=2, d=8,
        is_causal=True, block_size=4, pattern="global_local", window=8,
        global_tokens=6,
    ),
    dict(
        name="f32_block_sparse_hierarchical",
        why="hierarchical levels (16, 16) and (32, -1) at block 8, head_dim 6",
        function="block_sparse", dtype=torch.float32, b=1, n=64, h=1, d=6,
        is_causal=False, block_size=8, pattern="hierarchical",
        hierarchical_levels=[(16, 16), (32, -1)],
    ),
    dict(
        name="f32_block_sparse_custom_per_head_causal",
        why="custom [2, 6, 6] layout at block 5 with an empty query block",
        function="block_sparse", dtype=torch.float32, b=1, n=30, h=2, d=8,
        is_causal=True, block_size=5, pattern="custom",
        layout=custom_layout(2, 6, 3),
    ),
    dict(
        name="f32_block_sparse_packed",
        why="packed sequences of 8, 0, 20 and 4 rows, each its own layout",
        function="block_sparse", dtype=torch.float32, h=2, d=8,
        is_causal=False, block_size=4, pattern="local_window", window=12,
        seq_lens=[8, 0, 20, 4],
    ),
    dict(
        name="f32_longnet_partial_causal_b2",
        why="n = 13: partial segments of 4 and 8 with rates 1, 2; causal; b = 2",
        function="longnet", dtype=torch.float32, b=2, n=13, h=3, d=8,
        is_causal=True, segment_lengths=[4, 8], dilation_rates=[1, 2],
    ),
    dict(
        name="f16_longnet_key_padding",
        why="float16, three branches on four heads, key padding with holes",
        function="longnet", dtype=torch.float16, b=2, n=16, h=4, d=8,
        is_causal=False, segment_lengths=[4, 8, 16], dilation_rates=[1, 2, 4],
        padding=[[12, 13, 14, 15], [0, 3, 5, 6, 9]],
    ),
    dict(
        name="bf16_longnet_fewer_heads_than_rate",
        why="bfloat16, two heads under rate 4 (offsets 0 and 1), softmax_scale 0.3",
        function="longnet", dtype=torch.bfloat16, b=1, n=16, h=2, d=8,
        is_causal=False, segment_lengths=[8, 16], dilation_rates=[2, 4],
        softmax_scale=0.3,
    ),
    dict(
        name="f32_longnet_packed_causal",
        why="packed sequences of 7 and 12 rows, causal",
        function="longnet", dtype=torch.float32, h=3, d=8,
        is_causal=True, segment_lengths=[4, 8], dilation_rates=[1, 2],
        seq_lens=[7, 12],
    ),
]


def masked_attention(q, k, v, allowed, scale):
    """Softmax attention of q [b, n, h, d] over k, v [b, m, h, d] where
    allowed [b, h, n, m] is True; rows with no allowed key give out = 0 and
    lse = -inf. Returns out [b, n, h, d] and lse [b, h, n]; differentiable."""
    scores = scale * torch.einsum("bnhd,bmhd->bhnm", q, k)
    has_key = allowed.any(dim=-1, keepdim=True)
    safe = scores.masked_fill(~allowed, -math.inf).masked_fill(~has_key, 0.0)
    weights = torch.softmax(safe, dim=-1) * has_key
    out = torch.einsum("bhnm,bmhd->bnhd", weights, v)
    lse = torch.logsumexp(safe, dim=-1).masked_fill(~has_key[..., 0],
                                                    -math.inf)
    return out, lse.detach()


def padding_allowed(padding_mask, b, n):
    """[b, 1, n, n]: neither the query nor the key is padding."""
    if padding_mask is None:
        return torch.ones(b, 1, n, n, dtype=torch.bool)
    real = ~padding_mask
    return (real[:, :, None] & real[:, None, :])[:, None]


def causal_allowed(n, is_causal):
    if not is_causal:
        return torch.ones(n, n, dtype=torch.bool)
    return torch.ones(n, n, dtype=torch.bool).tril()


def block_layout(case, n, h):
    """[heads, nb, nb] layout of the case's pattern for n tokens
    (docs/BLOCK_SPARSE.md's table)."""
    bs = case["block_size"]
    nb = n // bs
    layout = torch.zeros(1, nb, nb, dtype=torch.bool)

    def activate(i, j):
        if 0 <= i < nb and 0 <= j < nb:
            layout[0, i, j] = True

    def window(radius):
        for i in range(nb):
            for j in range(i - radius, i + radius + 1):
                activate(i, j)

    pattern = case["pattern"]
    if pattern == "local_window":
        window(case["window"] // bs // 2)
    elif pattern == "dilated_sparse":
        for i in range(nb):
            activate(i, i)
            for r in case["sparse_dilation_rates"][:3]:
                activate(i, i - r)
                activate(i, i + r)
    elif pattern == "global_local":
        window(case["window"] // bs // 2)
        global_blocks = -(-case["global_tokens"] // bs)
        for g in range(min(global_blocks, nb)):
            layout[0, :, g] = True
            layout[0, g, :] = True
    elif pattern == "hierarchical":
        for stride, width in case["hierarchical_levels"]:
            step = max(1, stride // bs)
            half = max(1, width // bs) // 2
            for p in range(0, nb, step):
                if width < 0:
                    layout[0, p, :] = True
                else:
                    for t in range(p - half, p + half + 1):
                        activate(p, t)
    elif pattern == "custom":
        layout = case["layout"]
    else:
        raise ValueError(pattern)
    return layout.expand(h, nb, nb) if layout.shape[0] == 1 else layout


def block_sparse(q, k, v, case, padding_mask=None):
    b, n, h, d = q.shape
    bs = case["block_size"]
    layout = block_layout(case, n, h)
    tokens = layout.repeat_interleave(bs, dim=1).repeat_interleave(bs, dim=2)
    allowed = (tokens[None] & causal_allowed(n, case["is_causal"]) &
               padding_allowed(padding_mask, b, n))
    return masked_attention(q, k, v, allowed, scale_of(case, d))


def branch_selection(n, h, segment_length, rate):
    """[h, n, n]: key p' is in query p's set P(p) of the branch, per head
    (head a uses offset a // ceil(h / rate); partial segments included)."""
    positions = torch.arange(n)
    within = positions % segment_length
    segment = positions // segment_length
    per_head = []
    for a in range(h):
        offset = a // -(-h // rate)
        selected = (within >= offset) & ((within - offset) % rate == 0)
        same = segment[:, None] == segment[None, :]
        per_head.append(selected[:, None] & selected[None, :] & same)
    return torch.stack(per_head)


def longnet_allowed(case, b, n, h, padding_mask):
    """[branches, b, h, n, n] allowed keys of every branch."""
    common = (causal_allowed(n, case["is_causal"]) &
              padding_allowed(padding_mask, b, n))
    return torch.stack([
        branch_selection(n, h, s, r)[None] & common
        for s, r in zip(case["segment_lengths"], case["dilation_rates"])])


def longnet(q, k, v, case, padding_mask=None):
    """One softmax over the keys of every branch concatenated."""
    b, n, h, d = q.shape
    allowed = longnet_allowed(case, b, n, h, padding_mask)
    branches = allowed.shape[0]
    union = torch.cat(list(allowed), dim=-1)  # [b, h, n, branches * n]
    return masked_attention(q, torch.cat([k] * branches, dim=1),
                            torch.cat([v] * branches, dim=1), union,
                            scale_of(case, d))


def longnet_by_merge(q, k, v, case, padding_mask=None):
    """The paper's formula: branches alone, merged with weights exp(lse_i) /
    sum_j exp(lse_j)."""
    b, n, h, d = q.shape
    outs, lses = [], []
    for allowed in longnet_allowed(case, b, n, h, padding_mask):
        out, lse = masked_attention(q, k, v, allowed, scale_of(case, d))
        outs.append(out)
        lses.append(lse)
    lse = torch.logsumexp(torch.stack(lses), dim=0)
    merged = torch.zeros_like(q)
    for out, branch_lse in zip(outs, lses):
        weight = torch.exp(branch_lse - lse).nan_to_num(0.0)
        merged += weight.transpose(1, 2)[..., None] * out
    return merged, lse


def scale_of(case, d):
    scale = case.get("softmax_scale")
    return scale if scale is not None else 1.0 / math.sqrt(d)


FUNCTIONS = {"block_sparse": block_sparse, "longnet": longnet}


def run(function, q, k, v, case, padding_mask):
    """`function` on [b, n, h, d] tensors, or on every packed sequence of
    [total, h, d] tensors alone (out [total, h, d], lse [h, total])."""
    seq_lens = case.get("seq_lens")
    if seq_lens is None:
        return function(q, k, v, case, padding_mask)
    outs, lses = [], []
    begin = 0
    for length in seq_lens:
        rows = slice(begin, begin + length)
        begin += length
        out, lse = function(q[None, rows], k[None, rows], v[None, rows], case)
        outs.append(out[0])
        lses.append(lse[0])
    return torch.cat(outs, dim=0), torch.cat(lses, dim=1)


def metadata_of(case):
    metadata = {
        "function": case["function"],
        "is_causal": "true" if case["is_causal"] else "false",
        "description": case["why"],
        "generator": "tools/make_golden_sparse.py",
    }
    if case.get("softmax_scale") is not None:
        metadata["softmax_scale"] = repr(case["softmax_scale"])
    if case["function"] == "longnet":
        metadata["segment_lengths"] = ",".join(map(str, case["segment_lengths"]))
        metadata["dilation_rates"] = ",".join(map(str, case["dilation_rates"]))
        return metadata
    metadata["block_size"] = str(case["block_size"])
    metadata["pattern"] = case["pattern"]
    for key in ("window", "global_tokens"):
        if key in case:
            metadata[key] = str(case[key])
    if "sparse_dilation_rates" in case:
        metadata["sparse_dilation_rates"] = ",".join(
            map(str, case["sparse_dilation_rates"]))
    if "hierarchical_levels" in case:
        metadata["hierarchical_levels"] = ",".join(
            f"{s}:{w}" for s, w in case["hierarchical_levels"])
    return metadata


def make_case(case, seed):
    generator = torch.Generator().manual_seed(seed)
    seq_lens = case.get("seq_lens")
    if seq_lens is not None:
        shape = (sum(seq_lens), case["h"], case["d"])
    else:
        shape = (case["b"], case["n"], case["h"], case["d"])
    inputs = {name: torch.randn(shape, generator=generator).to(case["dtype"])
              for name in ("q", "k", "v", "grad_out")}
    layout = {}
    padding_mask = None
    if "padding" in case:
        padding_mask = torch.zeros(case["b"], case["n"], dtype=torch.bool)
        for batch, positions in enumerate(case["padding"]):
            padding_mask[batch, positions] = True
        layout["key_padding_mask"] = padding_mask
    if seq_lens is not None:
        layout["cu_seqlens"] = torch.tensor(
            [0] + [sum(seq_lens[:i + 1]) for i in range(len(seq_lens))],
            dtype=torch.int32)
    if case.get("pattern") == "custom":
        layout["block_layout"] = case["layout"]

    q, k, v = (inputs[name].to(torch.float64).requires_grad_()
               for name in ("q", "k", "v"))
    function = FUNCTIONS[case["function"]]
    out, lse = run(function, q, k, v, case, padding_mask)
    grad_q, grad_k, grad_v = torch.autograd.grad(
        out, (q, k, v), grad_outputs=inputs["grad_out"].to(torch.float64))
    for name, grad in (("grad_q", grad_q), ("grad_k", grad_k),
                       ("grad_v", grad_v)):
        if not torch.isfinite(grad).all():
            raise RuntimeError(f"{case['name']}: {name} is not finite")
    if case["function"] == "longnet":
        with torch.no_grad():
            merged_out, merged_lse = run(longnet_by_merge, q, k, v, case,
                                         padding_mask)
        disagreement = max(
            (merged_out - out).abs().max().item(),
            (merged_lse - lse).nan_to_num(0.0).abs().max().item())
        if disagreement > 1e-12 or not torch.equal(merged_lse.isinf(),
                                                   lse.isinf()):
            raise RuntimeError(f"{case['name']}: union softmax and branch "
                               f"merge differ by {disagreement}")
    if lse.isinf().all():
        raise RuntimeError(f"{case['name']}: no row has a key")

    tensors = dict(inputs)
    tensors.update(layout)
    tensors.update(out=out.detach(), lse=lse, grad_q=grad_q, grad_k=grad_k,
                   grad_v=grad_v)
    return tensors, metadata_of(case)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    os.makedirs(args.output_dir, exist_ok=True)
    total = 0
    for seed, case in enumerate(CASES):
        tensors, metadata = make_case(case, 100 + seed)
        path = os.path.join(args.output_dir, case["name"] + ".safetensors")
        write_safetensors(path, tensors, metadata)
        size = os.path.getsize(path)
        if size >= 64 * 1024:
            raise RuntimeError(f"{path} is {size} bytes, over 64 KB")
        total += size
        print(f"{path}: {size} bytes")
    if total >= 300 * 1024:
        raise RuntimeError(f"golden files total {total} bytes, over 300 KB")
    print(f"total: {total} bytes")


if __name__ == "__main__":
    main()
