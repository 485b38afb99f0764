"""The functional API: dilated attention as a PyTorch operator.

``dilated_attention(q, k, v, segment_lengths, dilation_rates, ...)`` runs one
of the library's implementations on tensors of shape [batch, seq, heads,
head_dim] (or [total, heads, head_dim] with ``cu_seqlens``) and is
differentiable (to first order) with respect to q, k and v. The operators
behind it have fake kernels (meta tensors, torch.compile) and autograd
registered here.

The function is the one of LongNet's dilated attention as the Python library
dilated-attention-pytorch documents it: heads split into len(segment_lengths)
contiguous groups; group i attends inside segments of segment_lengths[i]
tokens, keeping every dilation_rates[i]-th token from offset i mod rate; the
output is divided by the number of groups and positions a group does not
select are zero for its heads.

Attention dropout (dropout_p > 0) follows FlashAttention: every attention
probability is dropped with probability dropout_p or kept and scaled by
1 / (1 - dropout_p) before it weighs v; the returned lse is that of the
undropped softmax. The mask is a pure function of a 64-bit seed and offset
(drawn from torch's default generator, so torch.manual_seed makes it
reproducible), the batch entry, the head and the query and key positions
(Philox4x32-10, kernels/dropout_rng.h): the same on every device and
implementation, and regenerated, not stored, by the backward pass.
"""

import torch

from . import _block_sparse_arguments
from . import _library  # noqa: F401  (registers the operators)

_OPS = torch.ops.dilated_attention


def _lse_shape(q):
    if q.dim() == 4:
        return (q.shape[0], q.shape[2], q.shape[1])
    if q.dim() == 3:
        return (q.shape[1], q.shape[0])
    return (0,)


# The output shapes depend on q, k and v only; the other arguments (lengths,
# implementation, block-sparse layout, ...) are passed through untouched.
@torch.library.register_fake("dilated_attention::forward")
def _forward_fake(q, k, v, *arguments, **keyword_arguments):
    out = q.new_empty(q.shape)
    lse = q.new_empty(_lse_shape(q), dtype=torch.float32)
    return out, lse


@torch.library.register_fake("dilated_attention::backward")
def _backward_fake(grad_out, q, k, v, out, lse, *arguments,
                   **keyword_arguments):
    return q.new_empty(q.shape), q.new_empty(k.shape), q.new_empty(v.shape)


@torch.library.register_fake("dilated_attention::block_layout")
def _block_layout_fake(seq_len, num_heads, block_size=128,
                       block_pattern="dilated_sparse", block_window=512,
                       global_tokens=64, sparse_dilation_rates=(1, 2, 4),
                       hierarchical_levels=(), block_layout=None):
    # A pattern's layout is shared by the heads; a custom one keeps its own.
    heads = 1
    if block_layout is not None and block_layout.dim() == 3:
        heads = block_layout.shape[0]
    blocks = seq_len // block_size
    return torch.empty((heads, blocks, blocks), dtype=torch.bool)


# Positions of forward's tensor arguments (q, k, v, the masks, the block
# layout): saved with save_for_backward; the others are kept on ctx. backward
# takes (grad_out, q, k, v, out, lse) and then forward's arguments after v.
_TENSOR_POSITIONS = tuple(
    i for i, argument in enumerate(_OPS.forward.default._schema.arguments)
    if str(argument.type) in ("Tensor", "Optional[Tensor]"))


def _setup_context(ctx, inputs, output):
    out, lse = output
    ctx.save_for_backward(out, lse, *(inputs[i] for i in _TENSOR_POSITIONS))
    ctx.arguments = [None if i in _TENSOR_POSITIONS else value
                     for i, value in enumerate(inputs)]
    # lse is a by-product for backward and for merging partial results; no
    # gradient flows through it.
    ctx.mark_non_differentiable(lse)


def _below_autograd(overload, *arguments):
    """overload(*arguments) dispatched below the Autograd key. The forward
    operator's autograd is a Python function (register_autograd below) that
    the dispatcher runs on every call, gradient or not (its cost:
    docs/PYTHON.md, "Per-call overhead"); callers that record the graph
    themselves, or need none, skip it. torch.compile traces the plain call
    (the guard is not traceable, and a compiled graph has no per-call
    dispatch to save)."""
    if torch.compiler.is_compiling():
        return overload(*arguments)
    with torch._C._AutoDispatchBelowAutograd():
        return overload(*arguments)


def _backward(ctx, grad_out, grad_lse):
    # Grad mode is on in a backward pass only with create_graph=True, which
    # asks for gradients that are themselves differentiable: the backward
    # operator has no gradient, and torch would treat its results as
    # constants, so the second-order terms would be silently wrong.
    if torch.is_grad_enabled():
        raise NotImplementedError(
            "dilated_attention has no second-order gradient: backward with "
            "create_graph=True is not supported")
    out, lse, *tensors = ctx.saved_tensors
    inputs = list(ctx.arguments)
    for position, tensor in zip(_TENSOR_POSITIONS, tensors):
        inputs[position] = tensor
    q, k, v, *arguments = inputs
    try:
        grad_q, grad_k, grad_v = _below_autograd(
            _OPS.backward.default, grad_out.contiguous(), q, k, v, out, lse,
            *arguments)
    except RuntimeError as error:
        raise _translate(error) from None
    return (grad_q, grad_k, grad_v) + (None,) * len(arguments)


torch.library.register_autograd("dilated_attention::forward", _backward,
                                setup_context=_setup_context)


class _Attention(torch.autograd.Function):
    """The operator's forward with the same backward, as the functional API
    runs it when a gradient is needed. The operator's own autograd (above)
    serves direct callers; it binds the operator's long argument list to its
    schema on every call (torch._library.utils.fill_defaults, quadratic in
    the argument count: 68 us timed alone on a 2-core machine, plus the
    garbage collection its short-lived objects bring; docs/PYTHON.md)."""

    @staticmethod
    def forward(ctx, *inputs):
        # ctx in forward: a separate setup_context makes every call bind its
        # arguments to this signature with inspect.
        output = _below_autograd(_OPS.forward.default, *inputs)
        _setup_context(ctx, inputs, output)
        return output

    backward = staticmethod(_backward)


# The operator's arguments after v as (name, has a default, the default): the
# functional API passes them positionally (autograd.Function takes no
# keyword arguments). Read from the schema once: each read of a schema
# argument builds Python objects, 13 us for the list on every call.
_FORWARD_ARGUMENTS = tuple(
    (argument.name, argument.has_default_value(),
     argument.default_value if argument.has_default_value() else None)
    for argument in _OPS.forward.default._schema.arguments[3:])


def _run_forward(q, k, v, **named):
    """out, lse of the operator, through _Attention when q, k or v needs a
    gradient; `named`: the arguments after v by name, the schema's default
    for those left out."""
    arguments = [named.get(name, default) if optional else named[name]
                 for name, optional, default in _FORWARD_ARGUMENTS]
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or
                                    v.requires_grad):
        return _Attention.apply(q, k, v, *arguments)
    return _below_autograd(_OPS.forward.default, q, k, v, *arguments)


# Read once at import: the registry does not change after the libraries
# load, and a plain list keeps the check below out of torch.compile's graph.
_IMPLEMENTATIONS = tuple(_OPS.implementations())


def implementations():
    """The names of the library's implementations ("standard", "improved",
    "auto", ...)."""
    return list(_IMPLEMENTATIONS)


def _check_lengths(segment_lengths, dilation_rates):
    for name, values in (("segment_lengths", segment_lengths),
                         ("dilation_rates", dilation_rates)):
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise TypeError(f"{name} must be a sequence of ints, got "
                            f"{values!r}")
        if len(values) == 0:
            raise ValueError(f"{name} cannot be empty")
        for i, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name}[{i}] must be an int, got {value!r}")
            if value <= 0:
                raise ValueError(f"{name}[{i}] must be positive, got {value}")
    if len(segment_lengths) != len(dilation_rates):
        raise ValueError(
            "segment_lengths and dilation_rates must have the same length: "
            f"{len(segment_lengths)} != {len(dilation_rates)}")


def dilated_attention(q, k, v, segment_lengths, dilation_rates,
                      is_causal=False, softmax_scale=None, impl="auto",
                      key_padding_mask=None, cu_seqlens=None,
                      return_lse=False, communicator=None, dropout_p=0.0,
                      block_size=128, block_pattern=None, block_window=512,
                      global_tokens=64, sparse_dilation_rates=(1, 2, 4),
                      hierarchical_levels=None, block_layout=None):
    """Dilated attention of q, k, v.

    Args:
      q, k, v: [batch, seq, heads, head_dim] (or [total, heads, head_dim]
        with cu_seqlens), float32, float16 or bfloat16, on one device; any
        strides with a contiguous last axis.
      segment_lengths, dilation_rates: one (segment, rate) pair per head
        group. seq need not be a multiple of the segments: a last, shorter
        segment is attended as it is.
      is_causal: every position attends only to selected positions at or
        before it.
      softmax_scale: defaults to 1 / sqrt(head_dim).
      impl: a name from implementations(); "auto" picks the fastest.
      key_padding_mask: bool [batch, seq], True = padding: padded keys get no
        weight, padded query rows get 0 (and no gradient).
      cu_seqlens: int32 [batch + 1] offsets of the packed sequences in q, k,
        v of shape [total, heads, head_dim] (FlashAttention's convention).
      return_lse: also return the float32 log-sum-exp of every row,
        [batch, heads, seq] ([heads, total] packed; -inf where a row has no
        key).
      communicator: for impl "ring" or "distributed" across processes, a
        communicator from distributed.mpi_communicator() (the processes
        launched by mpirun) or distributed.process_group_communicator(), or
        a torch.distributed ProcessGroup (distributed.resolve_communicator);
        q, k, v are then this rank's contiguous shard of the sequence (rank
        p holds rows p*n/P .. (p+1)*n/P - 1), and so is the output. Every
        rank makes the same calls.
      block_size, block_pattern, block_window, global_tokens,
        sparse_dilation_rates, hierarchical_levels, block_layout: the layout
        of impl "block_sparse" (docs/BLOCK_SPARSE.md; other implementations
        ignore them): blocks of block_size tokens; block_pattern
        "local_window" (key blocks within block_window tokens),
        "dilated_sparse" (block distances sparse_dilation_rates),
        "global_local" (the window plus global_tokens rounded up to blocks),
        "hierarchical" ((stride, window) token pairs, None for the default
        levels) or "custom": block_layout, bool [nb, nb] or
        [heads, nb, nb], True = query block i attends to key block j.
        block_pattern defaults to "custom" with a layout, else
        "dilated_sparse". One softmax per row over all its active blocks.
      dropout_p: attention dropout probability in [0, 1) (FlashAttention's
        semantics, see the module docstring); 0 runs without dropout. The
        mask's seed is drawn from torch's default CPU generator on every
        call that drops, so torch.manual_seed makes the call reproducible
        (under torch.compile the draw is compiled too: reproducible, but
        another seed than eager mode's);
        "standard", "improved" and "auto" apply it on the CPU, other
        implementations and devices raise NotImplementedError.

    Returns:
      out, shaped like q (and lse with return_lse).

    Raises:
      ValueError: a tensor or argument the library refuses; the message
        names it and its value.
      NotImplementedError: a call an implementation cannot run; in the
        backward pass, create_graph=True (no second-order gradient).
    """
    _check_lengths(segment_lengths, dilation_rates)
    if impl not in _IMPLEMENTATIONS:
        raise ValueError(f"impl: unknown implementation {impl!r}; "
                         f"registered: {list(_IMPLEMENTATIONS)}")
    dropout_p = float(dropout_p)
    seed, offset = _draw_dropout_stream() if dropout_p != 0.0 else (0, 0)
    # Other implementations ignore the layout: the operators' defaults keep
    # their calls cheap and their cache entries shared.
    block_sparse = {}
    if impl == "block_sparse":
        block_sparse = _block_sparse_arguments.operator_arguments(
            block_size, block_pattern, block_window, global_tokens,
            sparse_dilation_rates, hierarchical_levels, block_layout)
    try:
        out, lse = _run_forward(
            q, k, v, segment_lengths=list(segment_lengths),
            dilation_rates=list(dilation_rates), is_causal=bool(is_causal),
            softmax_scale=softmax_scale, impl=impl,
            key_padding_mask=key_padding_mask, cu_seqlens=cu_seqlens,
            communicator=_handle_of(communicator), dropout_p=dropout_p,
            seed=seed, offset=offset, **block_sparse)
    except RuntimeError as error:
        raise _translate(error) from None
    return (out, lse) if return_lse else out


def _handle_of(communicator):
    """The operators' communicator argument: 0 for None (one process)."""
    if communicator is None:
        return 0
    if not hasattr(communicator, "handle"):
        from . import distributed
        communicator = distributed.resolve_communicator(communicator)
    return communicator.handle


def block_layout(seq_len, num_heads, block_size=128, block_pattern=None,
                 block_window=512, global_tokens=64,
                 sparse_dilation_rates=(1, 2, 4), hierarchical_levels=None,
                 block_layout=None):
    """The blocks impl "block_sparse" attends to with these arguments (as
    dilated_attention takes them) on a sequence of seq_len tokens and
    num_heads heads: bool [1, nb, nb] (shared by the heads) or
    [num_heads, nb, nb], True = query block i attends to key block j.

    Raises:
      ValueError: an argument the library refuses (seq_len not a multiple of
        block_size, a window smaller than a block, ...), named with its value.
    """
    arguments = _block_sparse_arguments.operator_arguments(
        block_size, block_pattern, block_window, global_tokens,
        sparse_dilation_rates, hierarchical_levels, block_layout)
    try:
        return _OPS.block_layout(int(seq_len), int(num_heads), **arguments)
    except RuntimeError as error:
        raise _translate(error) from None


def _draw_dropout_stream():
    """A fresh (seed, offset) of the dropout mask from torch's default
    generator: a random 64-bit seed (as a signed int64, which the library
    reads as unsigned) and offset 0, so every call draws a new mask."""
    seed = torch.randint(-2**63, 2**63 - 1, (), dtype=torch.int64)
    return int(seed), 0


_ERROR_TYPES = {
    "INVALID_ARGUMENT": ValueError,
    "FAILED_PRECONDITION": ValueError,
    "OUT_OF_RANGE": ValueError,
    "UNIMPLEMENTED": NotImplementedError,
    "RESOURCE_EXHAUSTED": torch.OutOfMemoryError,
}


def _translate(error):
    """The Python exception for a library error ("CODE: message")."""
    message = str(error)
    code, _, text = message.partition(": ")
    error_type = _ERROR_TYPES.get(code)
    return error_type(text) if error_type is not None else error
