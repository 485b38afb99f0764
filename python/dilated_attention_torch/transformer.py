"""DilatedTransformerEncoderLayer and DilatedTransformerDecoderLayer: the
Python library's MAGNETO-style layers (pre-LayerNorm, sub-LayerNorm in the
feed-forward block, residuals), with its parameter names."""

import torch.nn as nn
import torch.nn.functional as F

from .multihead_dilated_attention import MultiheadDilatedAttention

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def activation_function(activation):
    if callable(activation):
        return activation
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation should be relu/gelu, not {activation!r}")
    return _ACTIVATIONS[activation]


def _feed_forward_init(layer, gamma_init):
    for linear in (layer.linear1, layer.linear2):
        nn.init.xavier_normal_(linear.weight, gain=gamma_init)
        nn.init.zeros_(linear.bias)


class DilatedTransformerEncoderLayer(nn.Module):
    """x = x + dropout(self_attn(norm1(x)));
    x = x + dropout(linear2(norm3(dropout(act(linear1(norm2(x)))))))

    self_attn is a MultiheadDilatedAttention with its QK layer norms. Its
    attention dropout (the `dropout` argument, 0.1 by default as in the
    Python library) applies in training mode inside the attention kernels
    (dilated_attention's dropout_p); the residual dropouts are ordinary
    nn.Dropout.
    """

    def __init__(self, d_model, nhead, segment_lengths, dilation_rates,
                 dim_feedforward=2048, dropout=0.1, activation=F.relu,
                 layer_norm_eps=1e-5, gamma_init=1.0, device=None,
                 dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.activation = activation_function(activation)
        self.gamma_init = gamma_init
        self.dropout = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, **factory)
        self.self_attn = MultiheadDilatedAttention(
            d_model, nhead, dilation_rates, segment_lengths, dropout=dropout,
            layer_norm_eps=layer_norm_eps, gamma_init=gamma_init, **factory)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, **factory)
        self.linear1 = nn.Linear(d_model, dim_feedforward, **factory)
        self.norm3 = nn.LayerNorm(dim_feedforward, eps=layer_norm_eps,
                                  **factory)
        self.linear2 = nn.Linear(dim_feedforward, d_model, **factory)
        _feed_forward_init(self, gamma_init)

    def forward(self, src, is_causal=False, src_key_padding_mask=None):
        x = src
        y = self.norm1(x)
        y = self.self_attn(y, y, y, key_padding_mask=src_key_padding_mask,
                           is_causal=is_causal)
        x = x + self.dropout(y)
        y = self.dropout(self.activation(self.linear1(self.norm2(x))))
        return x + self.dropout(self.linear2(self.norm3(y)))


class DilatedTransformerDecoderLayer(nn.Module):
    """Self-attention (norm1, no attention layer norms), cross-attention on
    memory (norm2, with them), feed-forward (norm3, sub-LayerNorm norm4), each
    with a residual, as the Python library's layer. memory must have the
    target's length. Attention dropout as in the encoder layer."""

    def __init__(self, d_model, nhead, segment_lengths, dilation_rates,
                 dim_feedforward=2048, dropout=0.1, activation=F.relu,
                 layer_norm_eps=1e-5, gamma_init=1.0, device=None,
                 dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.activation = activation_function(activation)
        self.gamma_init = gamma_init
        self.dropout = nn.Dropout(dropout)
        attention = dict(dropout=dropout, layer_norm_eps=layer_norm_eps,
                         gamma_init=gamma_init, **factory)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, **factory)
        self.self_attn = MultiheadDilatedAttention(
            d_model, nhead, dilation_rates, segment_lengths, layer_norm=False,
            **attention)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, **factory)
        self.multihead_attn = MultiheadDilatedAttention(
            d_model, nhead, dilation_rates, segment_lengths, **attention)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps, **factory)
        self.linear1 = nn.Linear(d_model, dim_feedforward, **factory)
        self.norm4 = nn.LayerNorm(dim_feedforward, eps=layer_norm_eps,
                                  **factory)
        self.linear2 = nn.Linear(dim_feedforward, d_model, **factory)
        _feed_forward_init(self, gamma_init)

    def forward(self, tgt, memory, tgt_is_causal=False,
                memory_is_causal=False, tgt_key_padding_mask=None,
                memory_key_padding_mask=None):
        x = tgt
        y = self.norm1(x)
        y = self.self_attn(y, y, y, key_padding_mask=tgt_key_padding_mask,
                           is_causal=tgt_is_causal)
        x = x + self.dropout(y)
        y = self.norm2(x)
        y = self.multihead_attn(y, memory, memory,
                                key_padding_mask=memory_key_padding_mask,
                                is_causal=memory_is_causal)
        x = x + self.dropout(y)
        y = self.dropout(self.activation(self.linear1(self.norm3(x))))
        return x + self.dropout(self.linear2(self.norm4(y)))
