"""An independent dense implementation of dilated attention in float64,
written from its definition with masks and plain softmax (no kernels, no
segments as views), for the package's tests to compare against."""

import math

import torch


def head_groups(num_heads, num_groups):
    """Front-loaded partition: group i has h // G heads, plus one for the
    first h % G groups."""
    sizes = [num_heads // num_groups + (1 if i < num_heads % num_groups else 0)
             for i in range(num_groups)]
    starts = [sum(sizes[:i]) for i in range(num_groups)]
    return list(zip(starts, sizes))


def selected(seq, segment, rate, offset):
    """bool [seq]: positions m*segment + offset + j*rate inside their
    (possibly partial) segment m."""
    positions = torch.arange(seq)
    return ((positions % segment) >= offset) & (
        ((positions % segment) - offset) % rate == 0)


def dilated_attention(q, k, v, segment_lengths, dilation_rates,
                      is_causal=False, softmax_scale=None,
                      key_padding_mask=None, dropout_factors=None):
    """out [b, n, h, d] in float64 for q, k, v [b, n, h, d]. dropout_factors
    ([b, h, n, n], query by key) multiply the probabilities before they
    weigh v (attention dropout)."""
    q, k, v = (t.to(torch.float64) for t in (q, k, v))
    b, n, h, d = q.shape
    scale = softmax_scale if softmax_scale is not None else 1 / math.sqrt(d)
    groups = len(segment_lengths)
    out = torch.zeros_like(q)
    positions = torch.arange(n)
    for i, (start, size) in enumerate(head_groups(h, groups)):
        segment, rate = segment_lengths[i], dilation_rates[i]
        keep = selected(n, segment, rate, i % rate)
        same_segment = (positions[:, None] // segment) == (
            positions[None, :] // segment)
        allowed = same_segment & keep[None, :] & keep[:, None]
        if is_causal:
            allowed = allowed & (positions[None, :] <= positions[:, None])
        allowed = allowed[None].expand(b, n, n)
        if key_padding_mask is not None:
            allowed = allowed & ~key_padding_mask[:, None, :]
            allowed = allowed & ~key_padding_mask[:, :, None]
        heads = slice(start, start + size)
        scores = torch.einsum("bphd,bkhd->bhpk", q[:, :, heads],
                              k[:, :, heads]) * scale
        # A large finite fill instead of -inf keeps rows without any allowed
        # key finite (and their gradients defined); they are zeroed after.
        mask = allowed[:, None]
        weights = torch.softmax(scores.masked_fill(~mask, -1e300), dim=-1)
        weights = weights * mask
        if dropout_factors is not None:
            weights = weights * dropout_factors[:, heads]
        out[:, :, heads] = torch.einsum("bhpk,bkhd->bphd", weights,
                                        v[:, :, heads]) / groups
    return out


def expand_block_layout(layout, block_size):
    """bool [heads or 1, n, n] token mask of a block layout [nb, nb] or
    [heads, nb, nb]: token p may attend to token p' when their blocks do."""
    if layout.dim() == 2:
        layout = layout[None]
    ones = torch.ones(block_size, block_size, dtype=torch.bool)
    return torch.stack([torch.kron(head.to(torch.int64),
                                   ones.to(torch.int64)).bool()
                        for head in layout])


def masked_attention(q, k, v, allowed, is_causal=False, softmax_scale=None):
    """out [b, n, h, d] in float64: one softmax per row over the keys
    `allowed` ([heads or 1, n, n]) lets it see (and p' <= p when causal);
    rows without any key are 0."""
    q, k, v = (t.to(torch.float64) for t in (q, k, v))
    n, d = q.shape[1], q.shape[3]
    scale = softmax_scale if softmax_scale is not None else 1 / math.sqrt(d)
    if is_causal:
        positions = torch.arange(n)
        allowed = allowed & (positions[None, :] <= positions[:, None])
    mask = allowed[None]  # [1, heads or 1, n, n]
    scores = torch.einsum("bphd,bkhd->bhpk", q, k) * scale
    # As in dilated_attention: a finite fill keeps empty rows defined.
    weights = torch.softmax(scores.masked_fill(~mask, -1e300), dim=-1) * mask
    return torch.einsum("bhpk,bkhd->bphd", weights, v)
