"""The block-sparse arguments of the functional API, checked and turned into
the operators' trailing keyword arguments (block_size .. block_layout)."""

import torch

PATTERNS = ("local_window", "dilated_sparse", "global_local", "hierarchical",
            "custom")


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _check_layout(block_layout):
    if not isinstance(block_layout, torch.Tensor):
        raise TypeError("block_layout must be a bool tensor [nb, nb] or "
                        f"[heads, nb, nb], got {type(block_layout).__name__}")
    if block_layout.dtype not in (torch.bool, torch.uint8):
        raise TypeError(
            f"block_layout must be bool or uint8, got {block_layout.dtype}")
    if block_layout.dim() not in (2, 3) or (
            block_layout.shape[-1] != block_layout.shape[-2]):
        raise ValueError("block_layout must be [nb, nb] or [heads, nb, nb], "
                         f"got shape {tuple(block_layout.shape)}")


def operator_arguments(block_size=128, block_pattern=None, block_window=512,
                       global_tokens=64, sparse_dilation_rates=(1, 2, 4),
                       hierarchical_levels=None, block_layout=None):
    """The keyword arguments of the operators for these settings.

    block_pattern None means "custom" when block_layout is given, else
    "dilated_sparse". hierarchical_levels: (stride, window) pairs, None for
    the library's default levels. The layout goes to the operator as a
    contiguous CPU bool tensor (it is read on the host).

    Raises:
      TypeError, ValueError: naming the argument and its value.
    """
    _check_int("block_size", block_size, 1)
    _check_int("block_window", block_window, 1)
    _check_int("global_tokens", global_tokens, 0)
    if block_pattern is None:
        block_pattern = "dilated_sparse" if block_layout is None else "custom"
    if block_pattern not in PATTERNS:
        raise ValueError(f"block_pattern: unknown pattern {block_pattern!r}; "
                         f"known: {list(PATTERNS)}")
    if (block_pattern == "custom") != (block_layout is not None):
        raise ValueError("block_layout is given exactly when block_pattern is "
                         f"'custom'; got block_pattern {block_pattern!r} and "
                         f"{'a' if block_layout is not None else 'no'} "
                         "block_layout")
    rates = list(sparse_dilation_rates)
    if not rates:
        raise ValueError("sparse_dilation_rates cannot be empty")
    for i, rate in enumerate(rates):
        _check_int(f"sparse_dilation_rates[{i}]", rate, 1)
    levels = []
    for i, level in enumerate(hierarchical_levels or ()):
        if len(level) != 2:
            raise ValueError(f"hierarchical_levels[{i}] must be a (stride, "
                             f"window) pair, got {level!r}")
        _check_int(f"hierarchical_levels[{i}] stride", level[0], 1)
        if isinstance(level[1], bool) or not isinstance(level[1], int):
            raise TypeError(f"hierarchical_levels[{i}] window must be an int, "
                            f"got {level[1]!r}")
        levels += [level[0], level[1]]
    if block_layout is not None:
        _check_layout(block_layout)
        block_layout = block_layout.to(device="cpu",
                                       dtype=torch.bool).contiguous()
    return dict(block_size=block_size, block_pattern=block_pattern,
                block_window=block_window, global_tokens=global_tokens,
                sparse_dilation_rates=rates, hierarchical_levels=levels,
                block_layout=block_layout)
