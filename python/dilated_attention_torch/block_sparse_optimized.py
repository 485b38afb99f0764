"""BlockSparseOptimized: the Python library's batched block-sparse variant,
here the same kernels as BlockSparseRingDilatedAttention."""

from .block_sparse_ring_dilated_attention import (
    BlockSparseRingDilatedAttention)


class BlockSparseOptimized(BlockSparseRingDilatedAttention):
    """BlockSparseRingDilatedAttention with the Python library's extra
    arguments of this variant: enable_batched_ops and cache_size (of its
    pattern cache) are accepted and kept. The kernels already batch every
    block and build a layout's block lists once, so they change nothing.
    The Python library's causal path of this class fails (it writes into an
    expanded tensor); here causal attention works as in the base class."""

    def __init__(self, segment_lengths, dilation_rates, sparse_config=None,
                 enable_batched_ops=True, cache_size=100, **kwargs):
        super().__init__(segment_lengths, dilation_rates,
                         sparse_config=sparse_config, **kwargs)
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or (
                cache_size <= 0):
            raise ValueError(
                f"cache_size must be a positive int, got {cache_size!r}")
        self.enable_batched_ops = enable_batched_ops
        self.cache_size = cache_size
