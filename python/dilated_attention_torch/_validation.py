"""Checks shared by the modules, with the Python library's messages."""

import warnings


def check_dropout(p):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout must be between 0.0 and 1.0, got {p}")


def check_attention_inputs(query, key, value):
    """q, k, v: 4-D [batch, seq, heads, head_dim] of one shape, device and
    dtype."""
    for name, tensor in (("query", query), ("key", key), ("value", value)):
        if tensor.dim() != 4:
            raise ValueError(f"{name} expected 4D tensor, got {tensor.dim()}D. "
                             f"Shape: {tuple(tensor.shape)}")
    for name, tensor in (("key", key), ("value", value)):
        for dim in range(4):
            if tensor.shape[dim] != query.shape[dim]:
                raise ValueError(
                    f"Shape mismatch at dimension {dim}: query has size "
                    f"{query.shape[dim]}, {name} has size {tensor.shape[dim]}")
        if tensor.device != query.device:
            raise ValueError(f"Device mismatch: query on {query.device}, "
                             f"{name} on {tensor.device}")
        if tensor.dtype != query.dtype:
            raise ValueError(f"Dtype mismatch: query has {query.dtype}, "
                             f"{name} has {tensor.dtype}")


def check_heads(embed_dim, num_heads):
    if embed_dim <= 0:
        raise ValueError(f"embed_dim must be positive, got {embed_dim}")
    if num_heads <= 0:
        raise ValueError(f"num_heads must be positive, got {num_heads}")
    if embed_dim % num_heads != 0:
        raise ValueError(f"embed_dim ({embed_dim}) must be divisible by "
                         f"num_heads ({num_heads})")


def check_multihead(embed_dim, num_heads, layer_norm_eps, gamma_init):
    check_heads(embed_dim, num_heads)
    if layer_norm_eps <= 0:
        raise ValueError(
            f"layer_norm_eps must be positive, got {layer_norm_eps}")
    if gamma_init <= 0:
        raise ValueError(f"gamma_init must be positive, got {gamma_init}")
    head_dim = embed_dim // num_heads
    if head_dim % 8 != 0:
        warnings.warn(f"head_dim ({head_dim}) should be divisible by 8 for "
                      "optimal performance on modern GPUs")
    if head_dim > 128:
        warnings.warn(f"head_dim ({head_dim}) > 128 may result in suboptimal "
                      "performance. Consider using more heads with smaller "
                      "dimensions.")


def refuse_attention_mask(name):
    """Arbitrary masks are refused, never ignored."""
    raise NotImplementedError(
        f"{name}: arbitrary attention masks are not supported (the Python "
        "library validates them and then ignores them); use key_padding_mask "
        "(bool [batch, seq], True = padding) or is_causal")

