"""RingDilatedAttentionV2: the Python library's deprecated ring class, here
RingDilatedAttentionV2Collective under the old name and signature."""

import warnings

from . import _validation
from .ring_dilated_attention_v2_collective import (
    RingDilatedAttentionV2Collective)


class RingDilatedAttentionV2(RingDilatedAttentionV2Collective):
    """Deprecated, as in the Python library (a DeprecationWarning on
    construction): use RingDilatedAttention. It computes what
    RingDilatedAttentionV2Collective computes (the documented dilated
    attention, sequence parallel across processes; see its docstring). The
    Python library's class dilates keys and values only, leaves queries
    undilated, drops attention across chunks in its simulated mode and
    cannot run across processes at all (it calls a torch.distributed
    function that does not exist). attention_mask is refused with
    NotImplementedError (the Python library warns and ignores it)."""

    def __init__(self, segment_lengths, dilation_rates, dropout=0.0,
                 ring_size=None, device=None, dtype=None,
                 enable_memory_pool=False, enable_profiling=False,
                 lightweight_pool=True, use_pattern_cache=True,
                 communicator=None):
        warnings.warn("RingDilatedAttentionV2 is deprecated and will be "
                      "removed in v0.3.0; use RingDilatedAttention",
                      DeprecationWarning, stacklevel=2)
        super().__init__(segment_lengths, dilation_rates, dropout=dropout,
                         ring_size=ring_size, device=device, dtype=dtype,
                         enable_memory_pool=enable_memory_pool,
                         enable_profiling=enable_profiling,
                         lightweight_pool=lightweight_pool,
                         use_pattern_cache=use_pattern_cache,
                         communicator=communicator)

    def forward(self, query, key, value, is_causal=False,
                attention_mask=None):
        if attention_mask is not None:
            _validation.refuse_attention_mask("attention_mask")
        return super().forward(query, key, value, is_causal=is_causal)
