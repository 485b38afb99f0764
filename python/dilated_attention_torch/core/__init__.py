"""The factory, as in the Python library's core package."""

from .factory import (create_adaptive_sparse_attention,
                      create_block_sparse_attention, create_dilated_attention,
                      create_multihead_dilated_attention, register_attention,
                      register_multihead_attention)

__all__ = [
    "create_adaptive_sparse_attention",
    "create_block_sparse_attention",
    "create_dilated_attention",
    "create_multihead_dilated_attention",
    "register_attention",
    "register_multihead_attention",
]
