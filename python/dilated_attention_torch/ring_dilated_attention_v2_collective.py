"""RingDilatedAttentionV2Collective (exported as RingDilatedAttention too):
the Python library's ring class on this library's "ring" implementation."""

from . import _validation
from .dilated_attention import DilatedAttention
from .distributed import resolve_communicator


def check_ring_size(ring_size, communicator):
    """ring_size None or positive; with several ranks, at least their number
    (the Python library clamps a larger one to the number of ranks)."""
    if ring_size is None:
        return
    if isinstance(ring_size, bool) or not isinstance(ring_size, int) or (
            ring_size <= 0):
        raise ValueError(
            f"ring_size must be a positive int, got {ring_size!r}")
    if communicator is not None and ring_size < communicator.size:
        raise ValueError(
            f"ring_size ({ring_size}) is smaller than the number of ranks "
            f"({communicator.size}): a ring over part of the ranks is not "
            "supported")


class RingDilatedAttentionV2Collective(DilatedAttention):
    """Dilated attention with the sequence spread over a ring of processes.

    Constructor and forward(query, key, value, is_causal=False) as in
    dilated-attention-pytorch. It computes the documented dilated attention
    (the function of DilatedAttention) with the library's "ring"
    implementation: with one process (no communicator, or torch.distributed
    not initialised or of one rank) the result is the single-process one,
    whatever ring_size. Across processes, the ranks come from `communicator`
    (ours: mpi_communicator(), or a torch.distributed ProcessGroup) or, when
    it is None, from the initialised default process group
    (distributed.process_group_communicator says which groups map), and

    - each rank passes its contiguous shard of the sequence (rank p holds
      rows p*n/P .. (p+1)*n/P - 1 of q, k and v) and gets the same rows of
      the output, forward and backward. The Python library takes the whole
      sequence on every rank, all-gathers keys and values (memory O(n) per
      rank) and returns the whole output.

    Where the Python library is wrong this class is not: segment lengths are
    honoured, output rows are not permuted, causal rows on later ranks are
    not NaN, the softmax accumulates in float32 (no float16 overflow past
    65504 keys), and no attention is computed and discarded. dtype, device
    and the pool, profiling and pattern-cache settings are accepted and kept
    (the computation uses the inputs' dtype, as there). Attention dropout in
    training mode raises NotImplementedError.
    """

    implementation = "ring"

    def __init__(self, segment_lengths, dilation_rates, dropout=0.0,
                 ring_size=None, device=None, dtype=None,
                 enable_memory_pool=False, enable_profiling=False,
                 lightweight_pool=True, use_pattern_cache=True,
                 memory_pool_threshold_mb=16.0, communicator=None):
        super().__init__(segment_lengths, dilation_rates,
                         attention_dropout=dropout,
                         enable_memory_pool=enable_memory_pool,
                         enable_profiling=enable_profiling,
                         lightweight_pool=lightweight_pool)
        check_ring_size(ring_size, None)
        self.ring_size = ring_size
        self.device = device
        self.dtype = dtype
        self.use_pattern_cache = use_pattern_cache
        self.memory_pool_threshold_mb = memory_pool_threshold_mb
        self.communicator = communicator

    def _communicator(self):
        communicator = resolve_communicator(self.communicator)
        check_ring_size(self.ring_size, communicator)
        return communicator

    def forward(self, query, key, value, is_causal=False,
                key_padding_mask=None):
        """This rank's rows of the attention (all rows with one process),
        shaped like query. key_padding_mask (bool [batch, seq], True =
        padding; one process only) is ours."""
        return super().forward(query, key, value, is_causal=is_causal,
                               key_padding_mask=key_padding_mask)


RingDilatedAttention = RingDilatedAttentionV2Collective
