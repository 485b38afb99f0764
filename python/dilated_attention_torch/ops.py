"""The functional API: dilated attention as a PyTorch operator.

``dilated_attention(q, k, v, segment_lengths, dilation_rates, ...)`` runs one
of the library's implementations on tensors of shape [batch, seq, heads,
head_dim] (or [total, heads, head_dim] with ``cu_seqlens``) and is
differentiable with respect to q, k and v. The operators behind it have fake
kernels (meta tensors, torch.compile) and autograd registered here.

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

from . import _library  # noqa: F401  (registers the operators)

_OPS = torch.ops.dilated_attention


def _lse_shape(q):
    if q.dim() == 4:
        return (q.shape[0], q.shape[2], q.shape[1])
    if q.dim() == 3:
        return (q.shape[1], q.shape[0])
    return (0,)


@torch.library.register_fake("dilated_attention::forward")
def _forward_fake(q, k, v, segment_lengths, dilation_rates, is_causal,
                  softmax_scale, impl, key_padding_mask, cu_seqlens,
                  communicator=0, dropout_p=0.0, seed=0, offset=0):
    out = q.new_empty(q.shape)
    lse = q.new_empty(_lse_shape(q), dtype=torch.float32)
    return out, lse


@torch.library.register_fake("dilated_attention::backward")
def _backward_fake(grad_out, q, k, v, out, lse, segment_lengths,
                   dilation_rates, is_causal, softmax_scale, impl,
                   key_padding_mask, cu_seqlens, communicator=0,
                   dropout_p=0.0, seed=0, offset=0):
    return q.new_empty(q.shape), q.new_empty(k.shape), q.new_empty(v.shape)


# The trailing arguments of forward with their schema defaults, for calls
# that leave them out.
_TRAILING_DEFAULTS = (0, 0.0, 0, 0)  # communicator, dropout_p, seed, offset


def _with_defaults(inputs):
    inputs = tuple(inputs)
    missing = 10 + len(_TRAILING_DEFAULTS) - len(inputs)
    return inputs + _TRAILING_DEFAULTS[len(_TRAILING_DEFAULTS) - missing:]


def _setup_context(ctx, inputs, output):
    (q, k, v, segment_lengths, dilation_rates, is_causal, softmax_scale, impl,
     key_padding_mask, cu_seqlens, communicator, dropout_p, seed,
     offset) = _with_defaults(inputs)
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, key_padding_mask, cu_seqlens)
    # The backward pass regenerates the dropout mask from the same seed and
    # offset.
    ctx.arguments = (segment_lengths, dilation_rates, is_causal,
                     softmax_scale, impl, communicator, dropout_p, seed,
                     offset)
    # lse is a by-product for backward and for merging partial results; no
    # gradient flows through it.
    ctx.mark_non_differentiable(lse)


def _backward(ctx, grad_out, grad_lse):
    q, k, v, out, lse, key_padding_mask, cu_seqlens = ctx.saved_tensors
    (segment_lengths, dilation_rates, is_causal, softmax_scale, impl,
     communicator, dropout_p, seed, offset) = ctx.arguments
    try:
        grad_q, grad_k, grad_v = _OPS.backward(
            grad_out.contiguous(), q, k, v, out, lse, segment_lengths,
            dilation_rates, is_causal, softmax_scale, impl, key_padding_mask,
            cu_seqlens, communicator, dropout_p, seed, offset)
    except RuntimeError as error:
        raise _translate(error) from None
    return (grad_q, grad_k, grad_v) + (None,) * (len(ctx.arguments) + 2)


torch.library.register_autograd("dilated_attention::forward", _backward,
                                setup_context=_setup_context)


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
                      return_lse=False, communicator=None, dropout_p=0.0):
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
        communicator from mpi_communicator() (the processes launched by
        mpirun); q, k, v are then this rank's contiguous shard of the
        sequence (rank p holds rows p*n/P .. (p+1)*n/P - 1), and so is the
        output. Every rank makes the same calls.
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
      NotImplementedError: a call an implementation cannot run.
    """
    _check_lengths(segment_lengths, dilation_rates)
    if impl not in _IMPLEMENTATIONS:
        raise ValueError(f"impl: unknown implementation {impl!r}; "
                         f"registered: {list(_IMPLEMENTATIONS)}")
    dropout_p = float(dropout_p)
    seed, offset = _draw_dropout_stream() if dropout_p != 0.0 else (0, 0)
    try:
        out, lse = _OPS.forward(q, k, v, list(segment_lengths),
                                list(dilation_rates), bool(is_causal),
                                softmax_scale, impl, key_padding_mask,
                                cu_seqlens,
                                0 if communicator is None else
                                communicator.handle,
                                dropout_p, seed, offset)
    except RuntimeError as error:
        raise _translate(error) from None
    return (out, lse) if return_lse else out


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
