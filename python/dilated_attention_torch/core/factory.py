"""create_dilated_attention, create_multihead_dilated_attention,
create_block_sparse_attention, create_adaptive_sparse_attention and the
registries, with the Python library's names and defaults."""

import inspect

from ..block_sparse_ring_dilated_attention import (
    BlockSparseRingDilatedAttention, SparsePatternConfig)
from ..block_sparse_ring_multihead_dilated_attention import (
    BlockSparseRingMultiheadDilatedAttention)
from ..dilated_attention import DilatedAttention
from ..improved_distributed_dilated_attention import (
    DistributedImprovedDilatedAttention,
    DistributedImprovedMultiheadDilatedAttention)
from ..improved_dilated_attention import ImprovedDilatedAttention
from ..improved_multihead_dilated_attention import (
    ImprovedMultiheadDilatedAttention)
from ..multihead_dilated_attention import MultiheadDilatedAttention
from ..ring_dilated_attention_v2_collective import RingDilatedAttention
from ..ring_multihead_dilated_attention import RingMultiheadDilatedAttention

# name -> class, as the Python library registers them ("block_sparse", which
# its README advertises and its registry lacks, is an alias here).
_ATTENTION = {
    "standard": DilatedAttention,
    "improved": ImprovedDilatedAttention,
    "ring": RingDilatedAttention,
    "distributed": DistributedImprovedDilatedAttention,
    "improved_distributed": DistributedImprovedDilatedAttention,
    "block_sparse_ring": BlockSparseRingDilatedAttention,
    "block_sparse": BlockSparseRingDilatedAttention,
}
# "multihead_" + name -> class.
_MULTIHEAD = {
    "multihead_standard": MultiheadDilatedAttention,
    "multihead_improved": ImprovedMultiheadDilatedAttention,
    "multihead_ring": RingMultiheadDilatedAttention,
    "multihead_distributed": DistributedImprovedMultiheadDilatedAttention,
    "multihead_improved_distributed":
        DistributedImprovedMultiheadDilatedAttention,
    "multihead_block_sparse_ring": BlockSparseRingMultiheadDilatedAttention,
    "multihead_block_sparse": BlockSparseRingMultiheadDilatedAttention,
}

# Settings that change nothing here (no process-wide TF32 flag, workspace
# from torch): dropped for a class that does not take them.
_NO_OP_SETTINGS = ("use_tf32", "enable_memory_pool", "lightweight_pool",
                   "enable_buffer_manager", "enable_profiling")
_ATTENTION_ONLY_SETTINGS = ("enable_memory_pool", "lightweight_pool",
                            "enable_buffer_manager", "enable_profiling")


def register_attention(name, cls):
    """Makes create_dilated_attention(name) build cls (replacing any class
    of that name, as the Python library does)."""
    _ATTENTION[name] = cls


def register_multihead_attention(name, cls):
    """Makes create_multihead_dilated_attention build cls for the registry
    name `name` ("multihead_" + the type name, as in the Python library)."""
    _MULTIHEAD[name] = cls


def _default(values, default):
    """`values`, or `default` when None (an empty list stays empty, and is
    refused by the attention)."""
    return default if values is None else values


def _resolve(attention_type, registry, prefix=""):
    """"auto" is "improved", the fused kernels (which pick the fastest
    backend of the tensors' device at each call)."""
    if attention_type == "auto":
        attention_type = "improved"
    cls = registry.get(prefix + attention_type)
    if cls is None:
        names = [name[len(prefix):] for name in registry]
        raise ValueError(f"Unknown attention type '{attention_type}'. "
                         f"Available types: {['auto'] + names}")
    return cls


def _construct(cls, arguments):
    """cls(**arguments); a no-op setting cls does not take is dropped, any
    other argument cls does not take is a TypeError naming it (the Python
    library passes some twice and fails instead)."""
    accepted = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in accepted.values())
    for name in list(arguments):
        if name in accepted or takes_any:
            continue
        if name in _NO_OP_SETTINGS:
            del arguments[name]
            continue
        raise TypeError(f"{cls.__name__} does not take the argument "
                        f"'{name}'")
    return cls(**arguments)


def create_dilated_attention(attention_type="auto", segment_lengths=None,
                             dilation_rates=None, **kwargs):
    """A dilated attention module by name: "auto" (= "improved"),
    "standard", "improved", "ring", "distributed", "improved_distributed",
    "block_sparse_ring" (or "block_sparse").

    segment_lengths and dilation_rates default to [2048, 4096, 8192] and
    [1, 2, 4]; "dropout" is accepted by every name. The Python library's
    memory-pool auto-configuration has nothing to configure here; pool
    flags are accepted and kept where the class takes them.
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
    """A multihead dilated attention module by name: "auto" (= "improved"),
    "standard", "improved", "ring", "distributed", "improved_distributed",
    "block_sparse_ring" (or "block_sparse")."""
    cls = _resolve(attention_type, _MULTIHEAD, prefix="multihead_")
    arguments = dict(kwargs)
    arguments.update(
        embed_dim=embed_dim, num_heads=num_heads,
        segment_lengths=_default(segment_lengths, [2048, 4096, 8192]),
        dilation_rates=_default(dilation_rates, [1, 2, 4]))
    # Settings the Python library routes to the inner attention's config,
    # where they change nothing here.
    for name in _ATTENTION_ONLY_SETTINGS:
        arguments.pop(name, None)
    return _construct(cls, arguments)


def create_block_sparse_attention(sparsity_ratio=0.9,
                                  pattern_type="dilated_sparse",
                                  embed_dim=768, num_heads=12, **kwargs):
    """BlockSparseRingMultiheadDilatedAttention with a SparsePatternConfig
    of pattern_type, sparsity_ratio and block_size (kwargs, default 128);
    the other kwargs as create_multihead_dilated_attention takes them.
    sparsity_ratio does not change the layout (SparsePatternConfig)."""
    config = SparsePatternConfig(pattern_type=pattern_type,
                                 sparsity_ratio=sparsity_ratio,
                                 block_size=kwargs.pop("block_size", 128))
    return create_multihead_dilated_attention(
        "block_sparse_ring", embed_dim=embed_dim, num_heads=num_heads,
        sparse_config=config, **kwargs)


def create_adaptive_sparse_attention(embed_dim=768, num_heads=12,
                                     min_sparsity=0.1, max_sparsity=0.9,
                                     **kwargs):
    """Refused: learned (adaptive) block patterns are not implemented. The
    Python library builds a module whose pattern type "learned" fails at
    its first forward."""
    raise NotImplementedError(
        "create_adaptive_sparse_attention: learned (adaptive) block-sparse "
        "patterns are not implemented; use create_block_sparse_attention or "
        "a custom block_layout")
