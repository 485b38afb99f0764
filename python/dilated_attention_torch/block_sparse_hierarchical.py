"""BlockSparseHierarchical and HierarchicalConfig: the Python library's
multi-scale block pattern, on this library's "hierarchical" layout."""

import dataclasses

from .block_sparse_ring_dilated_attention import (
    PATTERN_TYPES, BlockSparseRingDilatedAttention, SparsePatternConfig)


def _default_levels():
    return [{"stride": 64, "window_size": 256, "block_size": 64},
            {"stride": 256, "window_size": 1024, "block_size": 128},
            {"stride": 1024, "window_size": -1, "block_size": 256}]


@dataclasses.dataclass
class HierarchicalConfig:
    """The levels, finest first, as the Python library's dicts: at a level,
    query blocks 0, s, 2s, ... with s = max(1, stride // block_size) attend
    to the key blocks within max(1, window_size // block_size) // 2 of them
    (window_size -1: to every block). A level's "block_size" is accepted and,
    as there, unused: the attention's block size applies to every level.
    None gives the Python library's three default levels."""
    level_configs: list = None

    def __post_init__(self):
        if self.level_configs is None:
            self.level_configs = _default_levels()

    @property
    def num_levels(self):
        return len(self.level_configs)


def _levels_of(config):
    """(stride, window) pairs of `config`, checked."""
    levels = []
    for i, level in enumerate(config.level_configs):
        if not isinstance(level, dict) or not {"stride", "window_size"} <= set(
                level):
            raise ValueError(f"level_configs[{i}] must be a dict with "
                             f"'stride' and 'window_size', got {level!r}")
        stride, window = level["stride"], level["window_size"]
        for name, value in (("stride", stride), ("window_size", window)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"level_configs[{i}]['{name}'] must be an "
                                 f"int, got {value!r}")
        if stride <= 0:
            raise ValueError(f"level_configs[{i}]['stride'] must be "
                             f"positive, got {stride}")
        levels.append((stride, window))
    if not levels:
        raise ValueError("level_configs cannot be empty")
    return levels


class BlockSparseHierarchical(BlockSparseRingDilatedAttention):
    """BlockSparseRingDilatedAttention over the union of the levels of a
    HierarchicalConfig (the library's "hierarchical" pattern), with one
    softmax per row as the base class (see its docstring for the
    differences from the Python library). sparse_config defaults to blocks of
    64 tokens. The Python library's empty-pattern fallback (the diagonal)
    does not arise: every level includes block 0."""

    pattern_types = PATTERN_TYPES + ("hierarchical",)

    def __init__(self, segment_lengths, dilation_rates,
                 hierarchical_config=None, sparse_config=None, **kwargs):
        if sparse_config is None:
            sparse_config = SparsePatternConfig(pattern_type="hierarchical",
                                                block_size=64)
        super().__init__(segment_lengths, dilation_rates,
                         sparse_config=sparse_config, **kwargs)
        self.sparse_config.pattern_type = "hierarchical"
        self.hierarchical_config = hierarchical_config or HierarchicalConfig()
        self.levels = _levels_of(self.hierarchical_config)

    def _block_arguments(self):
        return dict(block_size=self.block_size, block_pattern="hierarchical",
                    hierarchical_levels=self.levels)

    def get_pattern_stats(self, seq_len):
        """Active blocks and sparsity of the layout for seq_len tokens, and
        per level its stride, window and the share of positions that
        start a query block there, as the Python library reports them."""
        layout = self.get_layout(seq_len)[0]
        total = layout.numel()
        active = int(layout.sum())
        levels = [{"level": i, "stride": stride, "window_size": window,
                   "active_positions": len(range(0, seq_len, stride)),
                   "coverage": len(range(0, seq_len, stride)) / seq_len}
                  for i, (stride, window) in enumerate(self.levels)]
        sparsity = 1.0 - active / total
        return {"total_blocks": total, "active_blocks": active,
                "sparsity": sparsity, "levels": levels,
                "memory_reduction": sparsity}

    def visualize_pattern(self, seq_len=1024):
        """The layout for seq_len tokens as text: one line per query block,
        '#' where it attends to a key block."""
        layout = self.get_layout(seq_len)[0]
        stats = self.get_pattern_stats(seq_len)
        lines = ["Hierarchical Attention Pattern:"]
        lines += ["".join("#" if active else "." for active in row.tolist())
                  for row in layout]
        lines.append(f"Sparsity: {stats['sparsity']:.1%}")
        lines.append(f"Active blocks: {stats['active_blocks']}/"
                     f"{stats['total_blocks']}")
        return "\n".join(lines)


def create_hierarchical_attention(embed_dim, num_heads, segment_lengths=None,
                                  dilation_rates=None,
                                  hierarchical_config=None, **kwargs):
    """BlockSparseHierarchical (embed_dim and num_heads are accepted and
    unused, as in the Python library); segment_lengths and dilation_rates
    default to [2048, 4096, 8192] and [1, 2, 4]."""
    return BlockSparseHierarchical(
        [2048, 4096, 8192] if segment_lengths is None else segment_lengths,
        [1, 2, 4] if dilation_rates is None else dilation_rates,
        hierarchical_config=hierarchical_config, **kwargs)


def get_hierarchical_presets():
    """The Python library's presets: "standard" (the default levels),
    "fine_grained", "long_range" and "ultra_sparse"."""
    def levels(*triples):
        return HierarchicalConfig(level_configs=[
            {"stride": stride, "window_size": window, "block_size": block}
            for stride, window, block in triples])
    return {
        "standard": HierarchicalConfig(),
        "fine_grained": levels((1, 128, 32), (2, 512, 64), (8, 2048, 128),
                               (32, -1, 256)),
        "long_range": levels((1, 512, 128), (8, 4096, 256), (64, -1, 512)),
        "ultra_sparse": levels((1, 64, 16), (16, 1024, 128), (256, -1, 512)),
    }
