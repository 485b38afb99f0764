"""The factory, as in the Python library's core package."""

from .factory import create_dilated_attention, create_multihead_dilated_attention

__all__ = ["create_dilated_attention", "create_multihead_dilated_attention"]
