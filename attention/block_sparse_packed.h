// File: block_sparse_packed.h
//
// Packed variable-length input (cu_seqlens) for "block_sparse" on every
// device. A packed call is cut (on the host, from a host copy of cu_seqlens)
// into one fixed-length call per sequence: batch 1, the
// sequence's rows as the tensors' rows, lse offset to its first row. Every
// sequence thus gets the block layout of its own length from its own
// position 0, exactly as if it were called alone, and no block crosses a
// sequence boundary.
//
// A sequence's length must be a multiple of block_size (a partial last block
// would have to be padding of a token that is not there, or a block of
// another size; neither is what a layout of whole blocks says). Empty
// sequences are allowed and produce nothing.
//
//   DA_ASSIGN_OR_RETURN(std::vector<PackedSequence> sequences,
//                       SplitPackedForward(params, block_size));
//   for (const PackedSequence& s : sequences) RunFixedLength(s.params);

#ifndef ATTENTION_BLOCK_SPARSE_PACKED_H_
#define ATTENTION_BLOCK_SPARSE_PACKED_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/dilated_params.h"

namespace dilated {

template <typename Params>
struct PackedSequence {
  int64_t index;  // In cu_seqlens.
  Params params;  // Fixed-length, batch 1, seq_len = the sequence's length.
};

// Returns one fixed-length call per non-empty sequence of the packed call
// `params` (cu_seqlens in host memory), in order, or InvalidArgument naming
// the first sequence whose length is not a multiple of `block_size`.
// REQUIRES: kernels::IsPacked(params); cu_seqlens valid (the front end
// checks it).
absl::StatusOr<std::vector<PackedSequence<kernels::ForwardParams>>>
SplitPackedForward(const kernels::ForwardParams& params, int64_t block_size);

// As SplitPackedForward, with grad_out, grad_q, grad_k and grad_v offset as
// q is.
absl::StatusOr<std::vector<PackedSequence<kernels::BackwardParams>>>
SplitPackedBackward(const kernels::BackwardParams& params, int64_t block_size);

}  // namespace dilated

#endif  // ATTENTION_BLOCK_SPARSE_PACKED_H_
