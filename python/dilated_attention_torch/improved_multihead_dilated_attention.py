"""ImprovedMultiheadDilatedAttention: the Python library's fused-projection
multihead module (qkv_proj, out_proj, q_ln, k_ln), on this library's fused
kernels."""

import torch.nn as nn

from .improved_dilated_attention import ImprovedDilatedAttention
from .multihead_dilated_attention import MultiheadDilatedAttention


class ImprovedMultiheadDilatedAttention(MultiheadDilatedAttention):
    """Multihead dilated attention with one fused projection qkv_proj
    (Linear(E, 3E)), as the Python library's class.

    Self-attention (key and value omitted or the same tensor as query) runs
    one product; otherwise the K and V thirds of qkv_proj project key and
    value. No QK layer norm; q_ln is the sub-layer norm before out_proj. The
    inner attention is ImprovedDilatedAttention, which here computes the
    documented dilated attention (the Python library's computes attention
    across heads). Returns (output, None) always, as the Python library does.
    key_padding_mask is honoured and attn_mask refused where the Python
    library warns and ignores both.
    """

    def __init__(self, embed_dim, num_heads, dilation_rates, segment_lengths,
                 dropout=0.0, bias=True, layer_norm=True, layer_norm_eps=1e-5,
                 gamma_init=1.0, device=None, dtype=None, use_tf32=True,
                 op=None):
        self.use_tf32 = use_tf32
        super().__init__(embed_dim, num_heads, dilation_rates,
                         segment_lengths, dropout=dropout, bias=bias,
                         layer_norm=layer_norm, layer_norm_eps=layer_norm_eps,
                         gamma_init=gamma_init, device=device, dtype=dtype,
                         op=op)

    def _make_attention(self, segment_lengths, dilation_rates, dropout):
        return ImprovedDilatedAttention(segment_lengths, dilation_rates,
                                        dropout=dropout)

    def _make_projections(self, bias, factory):
        e = self.embed_dim
        self.qkv_proj = nn.Linear(e, 3 * e, bias=bias, **factory)

    def _reset_parameters(self):
        e = self.embed_dim
        weight = self.qkv_proj.weight
        # Q and K with gain 1, V with gamma_init, each on its E x E slice.
        nn.init.xavier_normal_(weight[:e], gain=1.0)
        nn.init.xavier_normal_(weight[e:2 * e], gain=1.0)
        nn.init.xavier_normal_(weight[2 * e:], gain=self.gamma_init)
        nn.init.xavier_normal_(self.out_proj.weight, gain=self.gamma_init)
        for linear in (self.qkv_proj, self.out_proj):
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)

    def _project(self, query, key, value):
        e = self.embed_dim
        if key is query and value is query:
            return self.qkv_proj(query).split(e, dim=-1)
        weight, bias = self.qkv_proj.weight, self.qkv_proj.bias
        thirds = [None] * 3 if bias is None else bias.split(e)
        return tuple(
            nn.functional.linear(x, w, b)
            for x, w, b in zip((query, key, value), weight.split(e), thirds))

    def forward(self, query, key=None, value=None, key_padding_mask=None,
                need_weights=False, attn_mask=None, is_causal=False,
                average_attn_weights=True):
        output = super().forward(query, key, value,
                                 key_padding_mask=key_padding_mask,
                                 attn_mask=attn_mask, is_causal=is_causal)
        return output, None
