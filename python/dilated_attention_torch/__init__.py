"""dilated_attention_torch: dilated attention (LongNet) for PyTorch on the
C++ library's CPU and CUDA kernels.

A drop-in for dilated-attention-pytorch's core classes:

    import dilated_attention_torch as dilated_attention_pytorch

and a functional API, ``dilated_attention(q, k, v, segment_lengths,
dilation_rates, ...)``, differentiable, usable under torch.compile.
"""

from .block_sparse_hierarchical import (BlockSparseHierarchical,
                                        HierarchicalConfig,
                                        create_hierarchical_attention,
                                        get_hierarchical_presets)
from .block_sparse_optimized import BlockSparseOptimized
from .block_sparse_ring_dilated_attention import (
    BlockSparseRingDilatedAttention, SparsePatternConfig)
from .block_sparse_ring_multihead_dilated_attention import (
    BlockSparseRingMultiheadDilatedAttention)
from .block_sparse_torch_sparse import BlockSparseTorchSparse
from .core import (create_adaptive_sparse_attention,
                   create_block_sparse_attention, create_dilated_attention,
                   create_multihead_dilated_attention)
from .dilated_attention import DilatedAttention
from .improved_dilated_attention import ImprovedDilatedAttention
from .improved_distributed_dilated_attention import (
    DistributedImprovedDilatedAttention,
    DistributedImprovedMultiheadDilatedAttention)
from .improved_multihead_dilated_attention import (
    ImprovedMultiheadDilatedAttention)
from .long_net import LongNet, LongNetLM
from .multihead_dilated_attention import MultiheadDilatedAttention
from .ops import block_layout, dilated_attention, implementations
from .ring_dilated_attention_production import (
    RingAttentionConfig, RingDilatedAttentionProduction,
    create_production_ring_attention)
from .ring_dilated_attention_v2 import RingDilatedAttentionV2
from .ring_dilated_attention_v2_collective import (
    RingDilatedAttention, RingDilatedAttentionV2Collective)
from .ring_multihead_dilated_attention import RingMultiheadDilatedAttention
from .transformer import (DilatedTransformerDecoderLayer,
                          DilatedTransformerEncoderLayer)

__all__ = [
    "BlockSparseHierarchical",
    "BlockSparseOptimized",
    "BlockSparseRingDilatedAttention",
    "BlockSparseRingMultiheadDilatedAttention",
    "BlockSparseTorchSparse",
    "DilatedAttention",
    "DilatedTransformerDecoderLayer",
    "DilatedTransformerEncoderLayer",
    "DistributedImprovedDilatedAttention",
    "DistributedImprovedMultiheadDilatedAttention",
    "ImprovedDilatedAttention",
    "HierarchicalConfig",
    "ImprovedMultiheadDilatedAttention",
    "LongNet",
    "LongNetLM",
    "MultiheadDilatedAttention",
    "RingAttentionConfig",
    "RingDilatedAttention",
    "RingDilatedAttentionProduction",
    "RingDilatedAttentionV2",
    "RingDilatedAttentionV2Collective",
    "RingMultiheadDilatedAttention",
    "SparsePatternConfig",
    "block_layout",
    "create_adaptive_sparse_attention",
    "create_block_sparse_attention",
    "create_dilated_attention",
    "create_hierarchical_attention",
    "create_multihead_dilated_attention",
    "create_production_ring_attention",
    "dilated_attention",
    "get_hierarchical_presets",
    "implementations",
]
