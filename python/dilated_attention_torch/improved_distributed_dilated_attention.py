"""DistributedImprovedDilatedAttention and
DistributedImprovedMultiheadDilatedAttention: the Python library's
distributed classes on this library's "distributed" implementation."""

from .distributed import resolve_communicator
from .improved_dilated_attention import ImprovedDilatedAttention
from .multihead_dilated_attention import MultiheadDilatedAttention


def refuse_model_parallel(model_parallel):
    if model_parallel:
        raise NotImplementedError(
            "model_parallel=True: tensor model parallelism is not "
            "implemented; use sequence_parallel")


class DistributedImprovedDilatedAttention(ImprovedDilatedAttention):
    """Dilated attention, sequence parallel across processes when
    sequence_parallel is true.

    Constructor as in dilated-attention-pytorch. Without sequence_parallel,
    or with one process, it is ImprovedDilatedAttention (the documented
    dilated attention on the fused kernels). With sequence_parallel and
    several ranks (`communicator`, ours: mpi_communicator() or a
    torch.distributed ProcessGroup; None: the initialised default process
    group, see distributed.process_group_communicator), each rank passes its
    contiguous shard of q, k and v and gets the same rows of the exact
    result through the library's "distributed" implementation, forward and
    backward.

    The Python library takes the whole sequence on every rank, attends only
    within each rank's slice (no attention across ranks), all-gathers the
    slices, and runs under bfloat16 autocast whenever CUDA is available;
    none of that happens here. use_tf32, use_flash_attention, dtype and
    device are accepted and change nothing; model_parallel=True raises
    NotImplementedError, as does attention dropout in training mode.
    """

    def __init__(self, segment_lengths, dilation_rates, dropout=0.0,
                 use_tf32=True, sequence_parallel=False, model_parallel=False,
                 use_flash_attention=True, dtype=None, device=None,
                 communicator=None):
        super().__init__(segment_lengths, dilation_rates, dropout=dropout,
                         use_tf32=use_tf32)
        refuse_model_parallel(model_parallel)
        self.sequence_parallel = sequence_parallel
        self.model_parallel = model_parallel
        self.use_flash_attention = use_flash_attention
        self.dtype = dtype
        self.device = device
        self.communicator = communicator
        if sequence_parallel:
            self.implementation = "distributed"

    def _communicator(self):
        if not self.sequence_parallel:
            return None
        return resolve_communicator(self.communicator)


class DistributedImprovedMultiheadDilatedAttention(MultiheadDilatedAttention):
    """MultiheadDilatedAttention (q_proj, k_proj, v_proj, the QK layer norms
    q_ln and k_ln, out_proj; the same state-dict names) whose attention is
    DistributedImprovedDilatedAttention: with sequence_parallel and several
    ranks, query, key and value are this rank's contiguous shard
    [batch, seq / P, embed_dim] and so is the output. Returns the output, or
    (output, None) with need_weights.

    The Python library's class cannot be constructed (an abstract method is
    missing); this is its documented design. The DeepSpeed, checkpointing,
    offload, 8-bit optimiser, backend and compile settings are accepted and
    kept; they configure training outside the module and change nothing
    here. model_parallel=True raises NotImplementedError.
    """

    def __init__(self, embed_dim, num_heads, segment_lengths, dilation_rates,
                 dropout=0.0, bias=True, layer_norm=True, layer_norm_eps=1e-5,
                 gamma_init=1.0, device=None, dtype=None, use_tf32=True,
                 sequence_parallel=False, model_parallel=False,
                 use_deepspeed=True, use_gradient_checkpointing=False,
                 communication_backend="nccl", cpu_offload=False,
                 use_8bit_optimizer=False, use_flash_attention=True,
                 compile_model=False, communicator=None):
        refuse_model_parallel(model_parallel)
        self._distributed = dict(use_tf32=use_tf32,
                                 sequence_parallel=sequence_parallel,
                                 use_flash_attention=use_flash_attention,
                                 communicator=communicator)
        super().__init__(embed_dim, num_heads, dilation_rates,
                         segment_lengths, dropout=dropout, bias=bias,
                         layer_norm=layer_norm, layer_norm_eps=layer_norm_eps,
                         gamma_init=gamma_init, device=device, dtype=dtype)
        self.sequence_parallel = sequence_parallel
        self.model_parallel = model_parallel
        self.use_deepspeed = use_deepspeed
        self.use_gradient_checkpointing = use_gradient_checkpointing
        self.communication_backend = communication_backend
        self.cpu_offload = cpu_offload
        self.use_8bit_optimizer = use_8bit_optimizer
        self.compile_model = compile_model

    def _make_attention(self, segment_lengths, dilation_rates, dropout):
        return DistributedImprovedDilatedAttention(
            segment_lengths, dilation_rates, dropout=dropout,
            **self._distributed)
