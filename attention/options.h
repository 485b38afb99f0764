// File: options.h
//
// ForwardOptions: everything about one call of Attention::Forward or
// Backward besides the tensors it computes with: the causal flag, the
// sequence layout (packed variable-length batches, key padding), the stream
// and the workspace allocator.

#ifndef ATTENTION_OPTIONS_H_
#define ATTENTION_OPTIONS_H_

#include <cstdint>
#include <optional>

#include "attention/tensor.h"
#include "memory/allocator.h"

namespace dilated {

struct ForwardOptions {
  // Each selected position attends only to selected positions at or before it.
  bool is_causal = false;
  // Training mode: with config.dropout = p > 0, attention dropout applies
  // (FlashAttention's semantics): every attention probability is dropped
  // with probability p or kept and scaled by 1 / (1 - p) before it weighs v,
  // and lse stays that of the undropped softmax. Implementations that cannot
  // apply it refuse with Unimplemented; it is never skipped. Without
  // training, dropout does not apply.
  bool training = false;
  // The random stream of the dropout mask (kernels/dropout_rng.h gives the
  // exact function): the mask of a call is a pure function of (dropout_seed,
  // dropout_offset, sequence, head, query position, key position), the same
  // on every device, instruction set, thread count and implementation.
  // Backward must be called with the values its Forward used (nothing of the
  // mask is stored). Calls that should draw independent masks take different
  // seeds, or offsets at least batch * num_heads apart. Ignored without
  // dropout.
  uint64_t dropout_seed = 0;
  uint64_t dropout_offset = 0;
  // Packed variable-length batch: int32 [batch + 1] row offsets (sequence i
  // is rows cu_seqlens[i] .. cu_seqlens[i + 1] - 1; FlashAttention's
  // convention), on the CPU or the tensors' device. q, k, v, out (and the
  // gradients) are then [total, heads, head_dim] and lse [heads, total]; every
  // sequence is segmented from its own position 0. Values on the host are
  // checked: cu_seqlens[0] == 0, non-decreasing, cu_seqlens[batch] == total.
  std::optional<TensorView> cu_seqlens;
  // Key padding: bool [batch, seq] on the tensors' device, true = padding
  // (PyTorch's convention), last axis contiguous. Positions keep their index;
  // padded keys get no weight, padded query rows get out = 0, lse = -inf and
  // zero gradients. Not together with cu_seqlens.
  std::optional<TensorView> key_padding_mask;
  // The cudaStream_t to run on for CUDA tensors (null: the default stream).
  // Must be null for CPU tensors.
  void* stream = nullptr;
  // Where workspace memory comes from (outputs are always the caller's). Its
  // space must be the tensors' device; it must outlive the call (and, on a
  // device, the work queued by it). Null: see
  // AttentionConfig::enable_memory_pool; without the pool, workspace comes
  // from memory::StreamOrderedAllocator of the device (direct host
  // allocation; stream-ordered device allocation on `stream`).
  memory::Allocator* workspace_allocator = nullptr;
};

}  // namespace dilated

#endif  // ATTENTION_OPTIONS_H_
