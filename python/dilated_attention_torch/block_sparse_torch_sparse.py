"""BlockSparseTorchSparse: the Python library's "sparse backend" variant,
here the same kernels as BlockSparseRingDilatedAttention."""

from .block_sparse_ring_dilated_attention import (
    BlockSparseRingDilatedAttention)


class BlockSparseTorchSparse(BlockSparseRingDilatedAttention):
    """BlockSparseRingDilatedAttention with the Python library's extra
    arguments of this variant: use_sparse_backend and sparse_threshold are
    accepted and kept. The Python library uses no torch.sparse kernel
    either; the kernels here never touch an inactive block, whatever the
    sparsity, so the threshold changes nothing."""

    def __init__(self, segment_lengths, dilation_rates, sparse_config=None,
                 use_sparse_backend=True, sparse_threshold=0.8, **kwargs):
        super().__init__(segment_lengths, dilation_rates,
                         sparse_config=sparse_config, **kwargs)
        if not 0.0 <= sparse_threshold <= 1.0:
            raise ValueError("sparse_threshold must be between 0 and 1, got "
                             f"{sparse_threshold}")
        self.use_sparse_backend = use_sparse_backend
        self.sparse_threshold = sparse_threshold
