"""RingDilatedAttentionProduction, its RingAttentionConfig and
create_production_ring_attention: the Python library's "production" ring
class, on this library's "ring" implementation."""

import dataclasses
from typing import List, Optional

from . import _validation
from .ring_dilated_attention_v2_collective import (
    RingDilatedAttentionV2Collective)


@dataclasses.dataclass
class RingAttentionConfig:
    """The Python library's fields, defaults and checks (AssertionError with
    its messages)."""
    segment_lengths: List[int]
    dilation_rates: List[int]
    dropout: float = 0.0
    ring_size: Optional[int] = None
    use_gradient_checkpointing: bool = True
    use_memory_pool: bool = True
    memory_pool_size: int = 10
    enable_error_recovery: bool = True
    mixed_precision: bool = True
    log_memory_usage: bool = False
    attention_scale: Optional[float] = None

    def __post_init__(self):
        assert len(self.segment_lengths) == len(self.dilation_rates), (
            "segment_lengths and dilation_rates must have same length")
        assert all(s > 0 for s in self.segment_lengths), (
            "All segment lengths must be positive")
        assert all(r > 0 for r in self.dilation_rates), (
            "All dilation rates must be positive")


class RingDilatedAttentionProduction(RingDilatedAttentionV2Collective):
    """RingDilatedAttentionV2Collective configured by a RingAttentionConfig
    (see its docstring: the documented dilated attention, sequence parallel
    across processes), with config.attention_scale as the softmax scale.

    Differences, where the Python library is wrong: the output has the
    input's dtype (the Python library casts float32 inputs to float16 under
    mixed_precision and returns float16); groups are front-loaded and the
    output is divided by their number, as DilatedAttention's (its production
    class back-loads, skips groups longer than the sequence and writes
    duplicated indices back in undefined order); it runs across processes
    (the Python library's falls back to one). Gradient checkpointing, the
    memory pool and error recovery have nothing to do here (the kernels
    recompute in backward and take workspace from torch); their settings are
    kept. attention_mask is refused with NotImplementedError.
    """

    def __init__(self, config, communicator=None):
        if not isinstance(config, RingAttentionConfig):
            raise TypeError("config must be a RingAttentionConfig, got "
                            f"{type(config).__name__}")
        super().__init__(config.segment_lengths, config.dilation_rates,
                         dropout=config.dropout, ring_size=config.ring_size,
                         communicator=communicator)
        self.config = config
        self.softmax_scale = config.attention_scale
        self._forward_count = 0

    def forward(self, query, key, value, is_causal=False,
                attention_mask=None):
        if attention_mask is not None:
            _validation.refuse_attention_mask("attention_mask")
        self._forward_count += 1
        return super().forward(query, key, value, is_causal=is_causal)

    def get_memory_stats(self):
        """Calls made; this class holds no buffers or caches of its own."""
        return {"forward_count": self._forward_count, "error_count": 0,
                "cached_indices": 0, "cached_masks": 0}

    def clear_caches(self):
        """Nothing to clear: no caches are held here."""


def create_production_ring_attention(segment_lengths, dilation_rates,
                                     **kwargs):
    """RingDilatedAttentionProduction of RingAttentionConfig(segment_lengths,
    dilation_rates, **kwargs)."""
    return RingDilatedAttentionProduction(
        RingAttentionConfig(segment_lengths=segment_lengths,
                            dilation_rates=dilation_rates, **kwargs))
