// File: flash_attention.h
//
// The fused strided flash-attention kernels on CUDA ("improved"): forward and
// backward over every group of a call, reading q, k, v (and grad_out) and
// writing out, lse (and the gradients) through the strided views of
// docs/ARCHITECTURE.md section 1. float16 and bfloat16 storage, float32
// accumulation; head_dim 32, 64 and 128 run on their own tile shapes, other
// multiples of 8 up to 256 on the next larger one.
//
// Two ways to lay the work out, chosen per call by the caller:
//   - closed form (`problems` null): fixed-length input whose segments all
//     divide seq_len, no key padding mask. The kernels derive every
//     (group, batch, segment, head, row block) from the block index.
//   - problem list (`problems` not null): anything else the contract allows
//     whose problems are strided (kernels/problem_list.h with rows == null):
//     partial last segments, packed variable-length input (cu_seqlens) and
//     key padding at the start or end of each problem's selection. The
//     caller builds the problems on the host (it reads cu_seqlens and the
//     mask) and hands device scratch for the table the launches read.
//
//   std::vector<FlashProblem> list = ...;  // empty for the closed form
//   FlashProblems problems{list.data(), count, table_scratch};
//   cudaError_t error = FlashForward(params, &problems, stream);
//
// Nothing here synchronizes the device or allocates memory: scratch comes
// from the caller. The problem table is uploaded with one cudaMemcpyAsync
// from pageable host memory per call, which returns once the source is
// staged (the host buffers may go when the call returns).

#ifndef KERNELS_CUDA_FLASH_ATTENTION_H_
#define KERNELS_CUDA_FLASH_ATTENTION_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/block_sparse_params.h"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

// Largest head_dim the fused kernels handle.
inline constexpr int64_t kFlashMaxHeadDim = 256;

// One strided attention problem (kernels/problem_list.h) as the kernels read
// it: rows j < length at positions first + j * step of a segment of `extent`
// positions; every other position of the segment is zeroed for the group's
// heads. The same POD on host and device.
struct FlashProblem {
  // Batch entry: multiplies the tensors' stride_b (0 when packed, where it is
  // the sequence index and only segment_row locates the rows).
  int64_t batch;
  // Row, on the tensors' row axis, of the segment's first position: the
  // sequence's first row (packed) plus the segment's start in the sequence.
  int64_t segment_row;
  int32_t group;  // Index into ForwardParams::groups.
  // Position of row 0 relative to the segment's first position (any value
  // when length == 0).
  int32_t first;
  int32_t step;    // Positions between consecutive rows (the dilation rate).
  int32_t length;  // Rows; 0 zeroes the whole segment.
  int32_t extent;  // Positions of the segment: min(segment_length, rest).
  // Position in its sequence of the segment's first position (segment_row
  // less the sequence's first row): what the dropout mask is drawn from.
  int64_t segment_position;
};

// The problems of a call on the problem-list path.
struct FlashProblems {
  const FlashProblem* problems;  // Host memory, `count` entries.
  int64_t count;
  // Device scratch of FlashProblemTableBytes(count) bytes, 8-byte aligned,
  // ordered on the call's stream; it must outlive the call's kernels.
  void* table;
};

// Returns the device scratch bytes the problem table of `count` problems
// takes: the problems and one prefix count per problem for each launch of a
// call (at most four in a backward pass).
size_t FlashProblemTableBytes(int64_t count);

// Returns true when `dtype` and `head_dim` have a fused kernel: float16 or
// bfloat16, head_dim a multiple of 8 in [8, 256]. The caller also guarantees
// 16-byte aligned data pointers and strides that are multiples of 8
// elements (every row access is a 16-byte vector).
bool FlashSupports(DataType dtype, int64_t head_dim);

// Writes params.out (every element: selected rows get (1 / G) * attention,
// the others zero) and, when not null, params.lse (-inf where not selected),
// on `stream`. `problems` is null for the closed form (see above). With
// params.dropout enabled the probabilities are multiplied by the factors of
// kernels/dropout_rng.h before they weigh v (lse stays undropped); such
// calls run on the mma.sync kernels, also where wgmma ones exist.
// REQUIRES: FlashSupports(params.dtype, params.head_dim), alignment above;
// key_seq_len == seq_len and key_position_offset == 0.
cudaError_t FlashForward(const ForwardParams& params,
                         const FlashProblems* problems, cudaStream_t stream);

// Returns whether every row of every tensor of a call (q, k, v, out and,
// with `backward` not null, grad_out and the gradients) starts on a 16-byte
// boundary: 16-byte aligned data pointers and strides that are multiples
// of 8 elements, as the fused kernels require.
bool FlashTensorsAligned(const ForwardParams& p,
                         const BackwardParams* backward);

// Returns whether FlashForward runs the warpgroup (wgmma) kernels on the
// current device: it runs this library's sm_90a code (compute capability 9.0)
// and DA_DISABLE_WGMMA=1 is not set in the environment (read once; for
// comparing against the mma.sync kernels). Otherwise every head_dim runs on
// mma.sync kernels.
bool WgmmaAvailable();

// Returns the scratch bytes FlashBackward needs: one float per (storage
// batch entry, head, row), laid out like the lse (a single batch entry when
// packed); where the one-kernel backward runs (fused_backward.h), also a
// float per element of grad_q and an int per row of it.
size_t FlashBackwardWorkspaceBytes(const BackwardParams& params);

// Writes grad_q, grad_k and grad_v (every element) on `stream`, recomputing
// the probabilities from forward.lse, and with dropout their factors (the
// same as FlashForward's). Deterministic: no atomics, or (the one-kernel
// backward, fused_backward.h) atomics in a fixed order.
// REQUIRES: as FlashForward (`problems` the call's, as there); forward.lse
// is not null; `workspace` holds
// FlashBackwardWorkspaceBytes(params) bytes, 4-byte aligned, on the device.
cudaError_t FlashBackward(const BackwardParams& params,
                          const FlashProblems* problems, void* workspace,
                          cudaStream_t stream);

// Block-sparse attention ("block_sparse", docs/BLOCK_SPARSE.md) on the fused
// kernels: each (batch entry, head) is one problem over the whole sequence,
// and each thread block visits only the tiles of the active blocks of its
// layout block (kernels/tile_walk.h), skipping those a causal mask leaves
// out. Rows without an active key get 0 and lse -inf. Block sizes must be a
// multiple of kFlashBlockSparseBlockMultiple (the largest tile), so that no
// tile straddles two layout blocks.
inline constexpr int64_t kFlashBlockSparseBlockMultiple = 128;

// Writes params.out and params.lse (when not null); `lists` point to device
// memory. params.groups are ignored (the call has one whole-sequence
// group). REQUIRES: FlashSupports(params.dtype, params.head_dim) and the
// alignment above; lists.block_size a multiple of
// kFlashBlockSparseBlockMultiple that divides seq_len; fixed-length input
// without key padding mask; no dropout.
cudaError_t FlashBlockSparseForward(const ForwardParams& params,
                                    const BlockLists& lists,
                                    cudaStream_t stream);

// Writes grad_q, grad_k and grad_v of FlashBlockSparseForward; `workspace`
// as for FlashBackward. REQUIRES: as FlashBlockSparseForward; forward.lse
// is not null.
cudaError_t FlashBlockSparseBackward(const BackwardParams& params,
                                     const BlockLists& lists, void* workspace,
                                     cudaStream_t stream);

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_FLASH_ATTENTION_H_
