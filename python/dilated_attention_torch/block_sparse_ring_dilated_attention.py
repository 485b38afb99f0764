"""BlockSparseRingDilatedAttention and SparsePatternConfig: the Python
library's block-sparse class on this library's "block_sparse" kernels."""

import dataclasses
import math

import torch
import torch.nn as nn

from . import _validation
from .ops import _check_lengths, block_layout, dilated_attention

PATTERN_TYPES = ("local_window", "dilated_sparse", "global_local")

# Keyword arguments the Python library's class takes and drops, and those it
# passes on to its ring base class; all are accepted and kept as attributes.
_DROPPED_KWARGS = ("use_adaptive_sparsity", "quality_threshold",
                   "enable_packed_comm", "enable_hardware_opt", "use_tf32")
_RING_KWARGS = {"dropout": 0.0, "ring_size": None, "device": None,
                "dtype": None, "enable_memory_pool": False,
                "enable_profiling": False, "lightweight_pool": True,
                "use_pattern_cache": True}


@dataclasses.dataclass
class SparsePatternConfig:
    """The block pattern, with the Python library's fields and defaults.

    pattern_type: "local_window" (key blocks within local_window_size tokens
    of the query block), "dilated_sparse" (the query block and the blocks at
    distances dilation_rates[:3], in blocks) or "global_local" (the local
    window plus the first global_tokens tokens, rounded up to whole blocks,
    which also attend to every block). sparsity_ratio is kept but, as in the
    Python library, does not change the layout: the pattern's parameters
    fix it.
    """
    pattern_type: str = "dilated_sparse"
    sparsity_ratio: float = 0.1
    block_size: int = 128
    local_window_size: int = 512
    global_tokens: int = 64


def sparse_config_of(sparse_config):
    """A SparsePatternConfig from one, a dict of its fields, or None (the
    defaults)."""
    if sparse_config is None:
        return SparsePatternConfig()
    if isinstance(sparse_config, SparsePatternConfig):
        return sparse_config
    if isinstance(sparse_config, dict):
        return SparsePatternConfig(**sparse_config)
    raise TypeError("sparse_config must be a SparsePatternConfig, a dict or "
                    f"None, got {type(sparse_config).__name__}")


def check_sparse_config(config, pattern_types=PATTERN_TYPES):
    if config.pattern_type not in pattern_types:
        raise ValueError(f"Unknown pattern type: {config.pattern_type!r}; "
                         f"known: {list(pattern_types)}")
    for name in ("block_size", "local_window_size"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"sparse_config.{name} must be a positive int, "
                             f"got {value!r}")
    if (isinstance(config.global_tokens, bool)
            or not isinstance(config.global_tokens, int)
            or config.global_tokens < 0):
        raise ValueError("sparse_config.global_tokens must be a non-negative "
                         f"int, got {config.global_tokens!r}")
    if not 0.0 < config.sparsity_ratio <= 1.0:
        raise ValueError("sparse_config.sparsity_ratio must be in (0, 1], "
                         f"got {config.sparsity_ratio}")


class BlockSparseRingDilatedAttention(nn.Module):
    """Block-sparse attention over [batch, seq, heads, head_dim] tensors.

    Constructor and forward as in dilated-attention-pytorch
    (sparse_config may also come as sparsity_config, and sparsity_ratio
    overrides the config's; the ring and pool settings are accepted and
    kept). The sequence is cut into blocks of sparse_config.block_size tokens
    and query block i attends to the key blocks of the pattern
    (SparsePatternConfig; dilated_sparse takes its block distances from
    dilation_rates); segment_lengths are validated and otherwise unused, as
    in the Python library. The kernels are the library's "block_sparse".

    Differences, where the Python library is wrong:

    - One softmax per query row over all keys of its active blocks. The
      Python library normalises every block separately and sums the blocks,
      so a row's weights add up to its number of active blocks.
    - global_local rounds global tokens up to whole blocks (its defaults
      give the Python library no global block at all) and global blocks
      attend to every block.
    - Unknown pattern types and bad sizes are refused at construction
      (ValueError) rather than at the first forward.
    - Attention dropout in training mode raises NotImplementedError (dropout
      0, or eval mode, runs).
    - One process: ring_size is kept and does not spread the sequence.

    block_layout (ours): a bool [nb, nb] or [heads, nb, nb] layout to use
    instead of the pattern (True = query block i attends to key block j).
    """

    # The pattern types this class builds (a subclass may add its own).
    pattern_types = PATTERN_TYPES

    def __init__(self, segment_lengths, dilation_rates, sparse_config=None,
                 block_layout=None, **kwargs):
        super().__init__()
        if "sparsity_config" in kwargs:
            if sparse_config is not None:
                raise TypeError("pass sparse_config or sparsity_config, not "
                                "both")
            sparse_config = kwargs.pop("sparsity_config")
        config = dataclasses.replace(sparse_config_of(sparse_config))
        if "sparsity_ratio" in kwargs:
            config.sparsity_ratio = kwargs.pop("sparsity_ratio")
        for name in _DROPPED_KWARGS:
            setattr(self, name, kwargs.pop(name, None))
        for name, default in _RING_KWARGS.items():
            setattr(self, name, kwargs.pop(name, default))
        if kwargs:
            name = next(iter(kwargs))
            raise TypeError(f"{type(self).__name__}.__init__() got an "
                            f"unexpected keyword argument '{name}'")
        segment_lengths = list(segment_lengths)
        dilation_rates = list(dilation_rates)
        _check_lengths(segment_lengths, dilation_rates)
        _validation.check_dropout(self.dropout)
        check_sparse_config(config, self.pattern_types)
        self.segment_lengths = segment_lengths
        self.dilation_rates = dilation_rates
        self.sparse_config = config
        self.block_size = config.block_size
        self.block_layout = block_layout

    def _block_arguments(self):
        """The block-sparse arguments of dilated_attention / block_layout."""
        config = self.sparse_config
        if self.block_layout is not None:
            return dict(block_size=config.block_size,
                        block_layout=self.block_layout)
        return dict(block_size=config.block_size,
                    block_pattern=config.pattern_type,
                    block_window=config.local_window_size,
                    global_tokens=config.global_tokens,
                    sparse_dilation_rates=self.dilation_rates[:3])

    def forward(self, query, key, value, is_causal=False,
                return_attention_weights=False, key_padding_mask=None):
        """Returns the output, shaped like query, or (output, weights) with
        return_attention_weights (block_attention_weights describes them).
        key_padding_mask (bool [batch, seq], True = padding) is ours."""
        _validation.check_attention_inputs(query, key, value)
        n = query.shape[1]
        if n % self.block_size != 0:
            raise ValueError(f"Sequence length {n} must be divisible by block "
                             f"size {self.block_size}")
        if self.training and self.dropout > 0:
            _validation.refuse_training_dropout(self.dropout)
        out, lse = dilated_attention(
            query, key, value, [n], [1], is_causal=is_causal,
            impl="block_sparse", key_padding_mask=key_padding_mask,
            return_lse=True, **self._block_arguments())
        if not return_attention_weights:
            return out
        return out, self.block_attention_weights(query, key, lse, is_causal,
                                                 key_padding_mask)

    def get_layout(self, seq_len, num_heads=1):
        """The layout forward uses: bool [1 or num_heads, nb, nb]."""
        return block_layout(seq_len, num_heads, **self._block_arguments())

    @torch.no_grad()
    def block_attention_weights(self, query, key, lse, is_causal=False,
                                key_padding_mask=None):
        """The attention probabilities of the active blocks, as the Python
        library's return_attention_weights gives them, but of the one
        softmax per row: {"block_indices": [(i, j), ...] (every block pair
        active for some head, ascending), "block_values": [[batch, heads,
        bs, bs] float32 on the CPU, one per pair], "block_size", "shape":
        (batch, heads, n, n), "num_blocks": (nb, nb)}. A head the pair is not
        active on, keys the causal mask or the padding leaves out and rows
        with no key have 0. Costs batch x heads x pairs x bs^2 floats."""
        b, n, h, d = query.shape
        bs = self.block_size
        nb = n // bs
        layout = self.get_layout(n, h)
        active = layout.any(dim=0)
        pairs = [tuple(pair) for pair in active.nonzero().tolist()]
        scale = 1.0 / math.sqrt(d)
        positions = torch.arange(bs, device=query.device)
        values = []
        for i, j in pairs:
            q_i = query[:, i * bs:(i + 1) * bs].float()
            k_j = key[:, j * bs:(j + 1) * bs].float()
            scores = torch.einsum("bphd,bkhd->bhpk", q_i, k_j) * scale
            row_lse = lse[:, :, i * bs:(i + 1) * bs, None]
            keep = layout[:, i, j].to(query.device)[None, :, None, None]
            keep = keep & torch.isfinite(row_lse)
            if is_causal:
                keep = keep & ((j * bs + positions)[None, :] <=
                               (i * bs + positions)[:, None])
            if key_padding_mask is not None:
                keep = keep & ~key_padding_mask[:, None, None,
                                                j * bs:(j + 1) * bs]
            probabilities = torch.where(keep, torch.exp(scores - row_lse),
                                        torch.zeros_like(scores))
            values.append(probabilities.cpu())
        return {"block_indices": pairs, "block_values": values,
                "block_size": bs, "shape": (b, h, n, n),
                "num_blocks": (nb, nb)}

    def extra_repr(self):
        return (f"sparse_config={self.sparse_config}, "
                f"custom_layout={self.block_layout is not None}")
