"""RingMultiheadDilatedAttention: multihead dilated attention with a fused
qkv_proj around RingDilatedAttention (the factory's "ring" multihead)."""

from .improved_multihead_dilated_attention import (
    ImprovedMultiheadDilatedAttention)
from .ring_dilated_attention_v2_collective import RingDilatedAttention


class RingMultiheadDilatedAttention(ImprovedMultiheadDilatedAttention):
    """ImprovedMultiheadDilatedAttention (qkv_proj, out_proj, sub-layer norm
    q_ln; the same state-dict names and initialisation) whose attention is
    RingDilatedAttention: with one process the single-process result; across
    processes (communicator, or the initialised default torch.distributed
    process group) query, key and value are this rank's contiguous shard
    [batch, seq / P, embed_dim], and so is the output.

    The constructor takes the arguments of the Python library's class of
    this name (not exported by its current version, and unbuildable through
    its factory); block_size, use_checkpointing, use_flash_attention and
    compile_model are accepted and kept. Returns the output, or
    (output, None) with need_weights. key_padding_mask is honoured with one
    process; attn_mask is refused (the Python library warns and ignores
    both).
    """

    def __init__(self, embed_dim, num_heads, segment_lengths, dilation_rates,
                 dropout=0.0, bias=True, layer_norm=True, layer_norm_eps=1e-5,
                 gamma_init=1.0, block_size=1024, ring_size=None,
                 use_checkpointing=True, use_tf32=True,
                 use_flash_attention=True, compile_model=False, device=None,
                 dtype=None, communicator=None):
        self._ring = dict(ring_size=ring_size, communicator=communicator)
        super().__init__(embed_dim, num_heads, dilation_rates,
                         segment_lengths, dropout=dropout, bias=bias,
                         layer_norm=layer_norm, layer_norm_eps=layer_norm_eps,
                         gamma_init=gamma_init, device=device, dtype=dtype,
                         use_tf32=use_tf32)
        self.block_size = block_size
        self.use_checkpointing = use_checkpointing
        self.use_flash_attention = use_flash_attention
        self.compile_model = compile_model

    def _make_attention(self, segment_lengths, dilation_rates, dropout):
        return RingDilatedAttention(segment_lengths, dilation_rates,
                                    dropout=dropout, **self._ring)

    def forward(self, query, key=None, value=None, key_padding_mask=None,
                need_weights=False, attn_mask=None, is_causal=False,
                average_attn_weights=True):
        output, _ = super().forward(query, key, value,
                                    key_padding_mask=key_padding_mask,
                                    attn_mask=attn_mask, is_causal=is_causal)
        return (output, None) if need_weights else output
