"""LongNet and LongNetLM with the Python library's signatures, defaults and
parameter names (encoder.layers.i, decoder.layers.i; token_embedding,
pos_embedding, long_net, norm, out)."""

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .transformer import (DilatedTransformerDecoderLayer,
                          DilatedTransformerEncoderLayer)

_SEGMENT_LENGTHS = (2048, 4096, 8192, 16384, 32768)
_DILATION_RATES = (1, 2, 4, 6, 12)


class _LayerStack(nn.Module):
    """`num_layers` copies of one initialised layer in `layers`, as
    nn.TransformerEncoder/Decoder hold them (so the state-dict names match);
    no final norm."""

    def __init__(self, layer, num_layers):
        super().__init__()
        self.layers = nn.ModuleList(
            [copy.deepcopy(layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = None


class LongNet(nn.Module):
    """An encoder stack over x, then a decoder stack over the original x with
    the encoder's output as memory; is_causal applies to every attention,
    cross-attention included, as in the Python library. The MAGNETO gains:
    encoder sqrt(ln(3 N_dec) ln(2 N_enc) / 3), decoder sqrt(ln(3 N_dec)).
    Every layer starts from the same initial weights (copies of one layer),
    as in the Python library."""

    def __init__(self, d_model=768, nhead=12, num_encoder_layers=12,
                 num_decoder_layers=12, dim_feedforward=3072,
                 segment_lengths=_SEGMENT_LENGTHS,
                 dilation_rates=_DILATION_RATES, dropout=0.0,
                 activation=F.relu, layer_norm_eps=1e-5, device=None,
                 dtype=None):
        super().__init__()
        encoder_gamma = math.sqrt(math.log(3 * num_decoder_layers) *
                                  math.log(2 * num_encoder_layers) / 3)
        decoder_gamma = math.sqrt(math.log(3 * num_decoder_layers))
        common = dict(d_model=d_model, nhead=nhead,
                      segment_lengths=list(segment_lengths),
                      dilation_rates=list(dilation_rates),
                      dim_feedforward=dim_feedforward, dropout=dropout,
                      activation=activation, layer_norm_eps=layer_norm_eps,
                      device=device, dtype=dtype)
        self.encoder = _LayerStack(
            DilatedTransformerEncoderLayer(gamma_init=encoder_gamma, **common),
            num_encoder_layers)
        self.decoder = _LayerStack(
            DilatedTransformerDecoderLayer(gamma_init=decoder_gamma, **common),
            num_decoder_layers)

    def forward(self, x, is_causal=True):
        memory = x
        for layer in self.encoder.layers:
            memory = layer(memory, is_causal=is_causal)
        tgt = x
        for layer in self.decoder.layers:
            tgt = layer(tgt, memory, tgt_is_causal=is_causal,
                        memory_is_causal=is_causal)
        return tgt


class XPOS(nn.Module):
    """torchscale's extrapolatable position embedding (xPos) over a model
    width `head_dim`: pairs of channels rotated by position-dependent angles
    and scaled by a per-pair base raised to the centred position /
    scale_base. The buffer `scale` is part of the state dict, as there."""

    def __init__(self, head_dim, scale_base=512):
        super().__init__()
        self.head_dim = head_dim
        self.scale_base = scale_base
        self.register_buffer(
            "scale",
            (torch.arange(0, head_dim, 2) + 0.4 * head_dim) / (1.4 * head_dim))

    def forward(self, x, offset=0, downscale=False):
        # The tables are built in float32 on the buffer's device whatever the
        # module's dtype (angles reach the sequence length, beyond float16's
        # range) and cast once; in float32 this is torchscale's arithmetic.
        device = self.scale.device
        length = x.shape[1]
        # Positions centred on zero: floor(-(length + offset) / 2) onwards.
        first = -(length + offset) // 2
        positions = torch.arange(first, first + length + offset,
                                 device=device, dtype=torch.float32)
        base = self.scale.to(torch.float32)
        scale = base ** (positions / self.scale_base)[:, None]
        pairs = scale.shape[1]
        frequencies = 1.0 / (10000 ** (
            torch.arange(0, pairs, device=device, dtype=torch.float32) / pairs))
        angles = torch.outer(
            torch.arange(0, scale.shape[0], device=device,
                         dtype=torch.float32), frequencies)
        sin, cos = angles.sin()[-length:], angles.cos()[-length:]
        scale = scale[-length:]
        if downscale:
            scale = 1 / scale
        # Each pair's factor applies to both of its channels.
        sin = (sin * scale).repeat_interleave(2, dim=-1).to(x.dtype)
        cos = (cos * scale).repeat_interleave(2, dim=-1).to(x.dtype)
        rotated = torch.stack((-x[..., 1::2], x[..., ::2]), dim=-1).flatten(-2)
        return x * cos + rotated * sin


class LongNetLM(nn.Module):
    """Token embedding, x + XPOS(x), LongNet, LayerNorm and a linear head:
    logits [batch, seq, num_tokens] for token ids [batch, seq]. As in the
    Python library, the head keeps nn.Linear's default initialisation."""

    def __init__(self, num_tokens, d_model=768, nhead=12,
                 num_encoder_layers=12, num_decoder_layers=12,
                 dim_feedforward=3072, segment_lengths=_SEGMENT_LENGTHS,
                 dilation_rates=_DILATION_RATES, dropout=0.0,
                 activation=F.relu, layer_norm_eps=1e-5, device=None,
                 dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.token_embedding = nn.Embedding(num_tokens, d_model, **factory)
        self.pos_embedding = XPOS(d_model).to(**factory)
        self.long_net = LongNet(
            d_model=d_model, nhead=nhead,
            num_encoder_layers=num_encoder_layers,
            num_decoder_layers=num_decoder_layers,
            dim_feedforward=dim_feedforward, segment_lengths=segment_lengths,
            dilation_rates=dilation_rates, dropout=dropout,
            activation=activation, layer_norm_eps=layer_norm_eps, **factory)
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps, **factory)
        self.out = nn.Linear(d_model, num_tokens, **factory)

    def forward(self, x, is_causal=True):
        x = self.token_embedding(x)
        x = x + self.pos_embedding(x)
        x = self.long_net(x, is_causal=is_causal)
        return self.out(self.norm(x))
