"""create_dilated_attention and create_multihead_dilated_attention, with the
Python library's names and defaults."""

import inspect

from ..dilated_attention import DilatedAttention
from ..improved_dilated_attention import ImprovedDilatedAttention
from ..improved_multihead_dilated_attention import (
    ImprovedMultiheadDilatedAttention)
from ..multihead_dilated_attention import MultiheadDilatedAttention

_ATTENTION = {
    "standard": DilatedAttention,
    "improved": ImprovedDilatedAttention,
}
_MULTIHEAD = {
    "standard": MultiheadDilatedAttention,
    "improved": ImprovedMultiheadDilatedAttention,
}


_ATTENTION_ONLY_SETTINGS = ("enable_memory_pool", "lightweight_pool",
                            "enable_buffer_manager", "enable_profiling")


def _default(values, default):
    """`values`, or `default` when None (an empty list stays empty, and is
    refused by the attention)."""
    return default if values is None else values


def _resolve(attention_type, registry):
    """"auto" is "improved", the fused kernels (which pick the fastest
    backend of the tensors' device at each call)."""
    if attention_type == "auto":
        attention_type = "improved"
    if attention_type not in registry:
        raise ValueError(f"Unknown attention type '{attention_type}'. "
                         f"Available types: {['auto'] + list(registry)}")
    return registry[attention_type]


def _construct(cls, arguments):
    """cls(**arguments); an argument cls does not take is a TypeError naming
    it (the Python library passes some twice and fails instead)."""
    accepted = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in accepted.values())
    for name in arguments:
        if name not in accepted and not takes_any:
            raise TypeError(f"{cls.__name__} does not take the argument "
                            f"'{name}'")
    return cls(**arguments)


def create_dilated_attention(attention_type="auto", segment_lengths=None,
                             dilation_rates=None, **kwargs):
    """A dilated attention module by name: "auto", "standard" or "improved".

    segment_lengths and dilation_rates default to [2048, 4096, 8192] and
    [1, 2, 4]; "dropout" is accepted by both names. The Python library's
    memory-pool auto-configuration has nothing to configure here; pool flags
    are accepted and kept.
    """
    cls = _resolve(attention_type, _ATTENTION)
    arguments = dict(kwargs)
    arguments["segment_lengths"] = _default(segment_lengths, [2048, 4096, 8192])
    arguments["dilation_rates"] = _default(dilation_rates, [1, 2, 4])
    if cls is DilatedAttention and "dropout" in arguments:
        arguments["attention_dropout"] = arguments.pop("dropout")
    return _construct(cls, arguments)


def create_multihead_dilated_attention(attention_type="auto", embed_dim=768,
                                       num_heads=12, segment_lengths=None,
                                       dilation_rates=None, **kwargs):
    """A multihead dilated attention module by name: "auto", "standard" or
    "improved" (MultiheadDilatedAttention or
    ImprovedMultiheadDilatedAttention)."""
    cls = _resolve(attention_type, _MULTIHEAD)
    arguments = dict(kwargs)
    arguments.update(
        embed_dim=embed_dim, num_heads=num_heads,
        segment_lengths=_default(segment_lengths, [2048, 4096, 8192]),
        dilation_rates=_default(dilation_rates, [1, 2, 4]))
    # Settings the Python library routes to the inner attention's config,
    # where they change nothing here.
    for name in _ATTENTION_ONLY_SETTINGS:
        arguments.pop(name, None)
    if cls is MultiheadDilatedAttention:
        arguments.pop("use_tf32", None)
    return _construct(cls, arguments)
