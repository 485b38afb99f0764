"""BlockSparseRingMultiheadDilatedAttention: the Python library's multihead
block-sparse module (parameters q_proj, k_proj, v_proj, out_proj) on this
library's "block_sparse" kernels."""

import torch.nn as nn

from . import _validation
from .block_sparse_ring_dilated_attention import (
    BlockSparseRingDilatedAttention)
from .multihead_dilated_attention import (check_key_padding_mask,
                                          check_projection_inputs)


class BlockSparseRingMultiheadDilatedAttention(nn.Module):
    """Multihead block-sparse attention with the Python library's signature,
    parameter names (so its state dicts load) and return convention.

    forward(query, key, value, key_padding_mask=None, need_weights=False,
    attn_mask=None, is_causal=False, average_attn_weights=True) projects
    with q_proj, k_proj and v_proj (nn.Linear with PyTorch's default
    initialisation, as there), splits the heads, runs
    BlockSparseRingDilatedAttention (one softmax per row over the active
    blocks; see its docstring), applies out_proj and then dropout to the
    output. batch_first=False takes and returns [seq, batch, embed_dim].
    Returns the output, or (output, weights) when need_weights, weights being
    the dict of BlockSparseRingDilatedAttention.block_attention_weights
    (average_attn_weights is accepted and changes nothing, as there).

    Differences: key_padding_mask (bool [batch, seq], True = padding) masks
    the padded keys (the Python library zeroes k and v there, which still
    gives them softmax weight); attn_mask is refused with
    NotImplementedError (the Python library warns and ignores it). device and
    dtype place the projections; the other keyword arguments go to the
    attention.
    """

    def __init__(self, embed_dim, num_heads, segment_lengths, dilation_rates,
                 dropout=0.0, bias=True, sparse_config=None, batch_first=True,
                 **kwargs):
        super().__init__()
        _validation.check_heads(embed_dim, num_heads)
        _validation.check_dropout(dropout)
        factory = {"device": kwargs.pop("device", None),
                   "dtype": kwargs.pop("dtype", None)}
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.batch_first = batch_first
        self.attention = BlockSparseRingDilatedAttention(
            segment_lengths, dilation_rates, sparse_config=sparse_config,
            **kwargs)
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query, key, value, key_padding_mask=None,
                need_weights=False, attn_mask=None, is_causal=False,
                average_attn_weights=True):
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1)
                                 for t in (query, key, value))
        check_projection_inputs(query, key, value, self.embed_dim)
        if attn_mask is not None:
            _validation.refuse_attention_mask("attn_mask")
        mask = check_key_padding_mask(key_padding_mask, query)
        batch, seq = query.shape[:2]
        heads = (batch, seq, self.num_heads, self.head_dim)
        q = self.q_proj(query).view(heads)
        k = self.k_proj(key).view(heads)
        v = self.v_proj(value).view(heads)
        result = self.attention(q, k, v, is_causal=is_causal,
                                return_attention_weights=need_weights,
                                key_padding_mask=mask)
        x, weights = result if need_weights else (result, None)
        x = self.dropout(self.out_proj(x.reshape(batch, seq, self.embed_dim)))
        if not self.batch_first:
            x = x.transpose(0, 1)
        return (x, weights) if need_weights else x
