"""MultiheadDilatedAttention: the Python library's multihead module
(parameter names q_proj, k_proj, v_proj, out_proj, q_ln, k_ln), on this
library's kernels."""

import torch
import torch.nn as nn

from . import _validation
from .dilated_attention import DilatedAttention


def check_projection_inputs(query, key, value, embed_dim):
    shapes = (f"query={tuple(query.shape)}, key={tuple(key.shape)}, "
              f"value={tuple(value.shape)}")
    if query.dim() != 3 or key.dim() != 3 or value.dim() != 3:
        raise ValueError("Expected 3D tensors (batch, seq_len, embed_dim), "
                         f"got shapes: {shapes}")
    if not (query.shape[:2] == key.shape[:2] == value.shape[:2]):
        raise ValueError("Batch size and sequence length must match for "
                         f"query, key, value. Got {shapes}")
    for tensor in (query, key, value):
        if tensor.shape[-1] != embed_dim:
            raise ValueError(f"Input embedding dimension ({tensor.shape[-1]}) "
                             f"doesn't match expected ({embed_dim})")


def check_key_padding_mask(mask, query):
    if mask is None:
        return None
    if mask.dim() != 2:
        raise ValueError("key_padding_mask must be 2D [batch, seq_len], got "
                         f"{mask.dim()}D")
    if tuple(mask.shape) != tuple(query.shape[:2]):
        raise ValueError(f"key_padding_mask has shape {tuple(mask.shape)}, "
                         f"expected {tuple(query.shape[:2])}")
    if mask.dtype != torch.bool:
        raise ValueError("key_padding_mask must be bool (True = padding), got "
                         f"{mask.dtype}")
    return mask.to(query.device).contiguous()


class MultiheadDilatedAttention(nn.Module):
    """Multihead dilated attention with the Python library's signature,
    parameters and return convention.

    forward(query, key=None, value=None, key_padding_mask=None, ...) projects
    with q_proj, k_proj and v_proj, applies the QK layer norms (q_ln, k_ln)
    when layer_norm, splits the heads, runs DilatedAttention, applies q_ln
    again as the sub-layer norm (as the Python library does) and out_proj.
    It returns the output tensor, or (output, None) when need_weights is
    true (attention weights are never materialised).

    Where the Python library validates masks and then ignores them, this
    module honours key_padding_mask (bool [batch, seq], True = padding) and
    refuses attn_mask with NotImplementedError. device=None means torch's
    default device, as for any torch module (the Python library picks CUDA
    when it is available).
    """

    def __init__(self, embed_dim, num_heads, dilation_rates, segment_lengths,
                 dropout=0.0, bias=True, layer_norm=True, layer_norm_eps=1e-5,
                 gamma_init=1.0, device=None, dtype=None, op=None):
        super().__init__()
        _validation.check_multihead(embed_dim, num_heads, layer_norm_eps,
                                    gamma_init)
        factory = {"device": device, "dtype": dtype}
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.layer_norm = layer_norm
        self.gamma_init = gamma_init
        self.dropout = dropout
        self.op = op
        self.attention = self._make_attention(segment_lengths, dilation_rates,
                                              dropout)
        if num_heads < self.attention.num_groups:
            raise ValueError(f"num_heads ({num_heads}) must be >= num_groups "
                             f"({self.attention.num_groups})")
        self._make_projections(bias, factory)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        if layer_norm:
            self.q_ln = nn.LayerNorm(embed_dim, eps=layer_norm_eps, **factory)
            self.k_ln = nn.LayerNorm(embed_dim, eps=layer_norm_eps, **factory)
        self._reset_parameters()

    def _make_attention(self, segment_lengths, dilation_rates, dropout):
        return DilatedAttention(segment_lengths, dilation_rates,
                                attention_dropout=dropout)

    def _make_projections(self, bias, factory):
        e = self.embed_dim
        self.q_proj = nn.Linear(e, e, bias=bias, **factory)
        self.k_proj = nn.Linear(e, e, bias=bias, **factory)
        self.v_proj = nn.Linear(e, e, bias=bias, **factory)

    def _reset_parameters(self):
        for linear in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_normal_(linear.weight, gain=self.gamma_init)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)

    def _project(self, query, key, value):
        q, k, v = self.q_proj(query), self.k_proj(key), self.v_proj(value)
        if self.layer_norm:
            q, k = self.q_ln(q), self.k_ln(k)
        return q, k, v

    def forward(self, query, key=None, value=None, key_padding_mask=None,
                need_weights=False, attn_mask=None, is_causal=False,
                average_attn_weights=True):
        key = query if key is None else key
        value = query if value is None else value
        check_projection_inputs(query, key, value, self.embed_dim)
        if attn_mask is not None:
            _validation.refuse_attention_mask("attn_mask")
        mask = check_key_padding_mask(key_padding_mask, query)
        batch, seq = query.shape[:2]
        heads = (batch, seq, self.num_heads, self.head_dim)
        q, k, v = self._project(query, key, value)
        x = self.attention(q.view(heads), k.view(heads), v.view(heads),
                           is_causal=is_causal, key_padding_mask=mask)
        x = x.reshape(batch, seq, self.embed_dim)
        if self.layer_norm:
            x = self.q_ln(x)
        x = self.out_proj(x)
        return (x, None) if need_weights else x
