"""ImprovedDilatedAttention: the fused kernels behind the Python library's
"improved" class name, computing the function it documents."""

from .dilated_attention import DilatedAttention


class ImprovedDilatedAttention(DilatedAttention):
    """The same function as DilatedAttention, on the fused strided kernels.

    The Python library's ImprovedDilatedAttention computes something else
    (attention across the heads of a group at each position, with no mixing
    along the sequence) although its documentation promises DilatedAttention's
    function; this class computes the documented function, so the two classes
    agree here. Constructor as in the Python library; use_tf32 is accepted
    and changes nothing.
    """

    implementation = "improved"

    def __init__(self, segment_lengths, dilation_rates, dropout=0.0,
                 use_tf32=True, enable_memory_pool=False,
                 enable_profiling=False, lightweight_pool=True, **kwargs):
        super().__init__(segment_lengths, dilation_rates,
                         attention_dropout=dropout,
                         enable_memory_pool=enable_memory_pool,
                         enable_profiling=enable_profiling,
                         lightweight_pool=lightweight_pool, **kwargs)
        self.use_tf32 = use_tf32
