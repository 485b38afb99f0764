"""DilatedAttention: the Python library's class, on this library's kernels."""

import torch.nn as nn

from . import _validation
from .ops import _check_lengths, dilated_attention

_ACCEPTED_CONFIG_KWARGS = ("use_tf32", "device", "dtype")


class DilatedAttention(nn.Module):
    """Dilated attention over [batch, seq, heads, head_dim] tensors.

    Same constructor and forward as dilated-attention-pytorch's
    DilatedAttention, computing what that library documents (and its
    "standard" class computes): heads in len(segment_lengths) groups, each
    attending inside its segments at its dilation rate, the output divided by
    the number of groups. It runs the library's fastest implementation of
    that function for the tensors' device ("auto"); the class attribute
    `implementation` names another ("standard", the direct algorithm,
    "improved"). Differences, all where the Python library is wrong or
    silent:

    - softmax_scale is honoured (the Python library ignores it outside one
      xformers path).
    - attention_mask is refused with NotImplementedError instead of being
      validated and ignored; key padding is available through
      dilated_attention(key_padding_mask=...) and the multihead modules.
    - seq need not be a multiple of the largest segment: a last, shorter
      segment is attended as it is (what padding and masking would give).
    - attention_dropout applies in training mode once, inside the kernels
      (FlashAttention's semantics: dropped probabilities, kept ones scaled
      by 1 / (1 - p); see dilated_attention), with a mask drawn from torch's
      default generator; the Python library applies dropout twice. In eval
      mode it does not apply.
    - use_tf32, device, dtype, enable_memory_pool, lightweight_pool,
      enable_profiling and op are accepted and change nothing: the module has
      no parameters, the kernels take their workspace from torch, and no
      process-wide TF32 flag is touched.
    """

    implementation = "auto"

    def __init__(self, segment_lengths, dilation_rates, softmax_scale=None,
                 attention_dropout=0.0, op=None, enable_memory_pool=False,
                 enable_profiling=False, lightweight_pool=True, **kwargs):
        super().__init__()
        for name in kwargs:
            if name not in _ACCEPTED_CONFIG_KWARGS:
                raise TypeError(f"{type(self).__name__}.__init__() got an "
                                f"unexpected keyword argument '{name}'")
        segment_lengths = list(segment_lengths)
        dilation_rates = list(dilation_rates)
        _check_lengths(segment_lengths, dilation_rates)
        _validation.check_dropout(attention_dropout)
        self.segment_lengths = segment_lengths
        self.dilation_rates = dilation_rates
        self.softmax_scale = softmax_scale
        self.dropout = attention_dropout
        self.op = op
        self.enable_memory_pool = enable_memory_pool
        self.enable_profiling = enable_profiling
        self.lightweight_pool = lightweight_pool
        self.num_groups = len(segment_lengths)

    def forward(self, query, key, value, is_causal=False, attention_mask=None,
                key_padding_mask=None):
        """Returns the attention of query over key and value, shaped like
        query. key_padding_mask (bool [batch, seq], True = padding) is an
        addition of ours."""
        _validation.check_attention_inputs(query, key, value)
        if attention_mask is not None:
            _validation.refuse_attention_mask("attention_mask")
        return dilated_attention(
            query, key, value, self.segment_lengths, self.dilation_rates,
            is_causal=is_causal, softmax_scale=self.softmax_scale,
            impl=self.implementation, key_padding_mask=key_padding_mask,
            communicator=self._communicator(),
            dropout_p=self.dropout if self.training else 0.0)

    def _communicator(self):
        """The communicator of a sequence-parallel subclass; None: one
        process."""
        return None

    def extra_repr(self):
        return (f"segment_lengths={self.segment_lengths}, "
                f"dilation_rates={self.dilation_rates}, "
                f"implementation={self.implementation!r}")
