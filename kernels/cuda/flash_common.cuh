// File: flash_common.cuh
//
// What the flash kernels share: the launch arguments (the POD params plus
// per-group prefix counts of thread blocks), the decoding of a block index
// into a (group, batch, segment, head, row block) work item, the strided
// addressing of docs/ARCHITECTURE.md section 1, the asynchronous tile loader
// and the zeroing of the rows a group does not select.
//
// A group's selected rows form a strided view: row j of (batch b, segment m,
// head a) lives at position m * s + o + j * r, so it is
//   data + b * stride_b + (m * s + o) * stride_n + a * stride_h
//        + j * (r * stride_n)
// and every kernel reads and writes through that view directly (no gather,
// no scatter, no temporaries).

#ifndef KERNELS_CUDA_FLASH_COMMON_CUH_
#define KERNELS_CUDA_FLASH_COMMON_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/device_primitives.cuh"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

inline constexpr float kLog2e = 1.4426950408889634f;
inline constexpr float kLn2 = 0.6931471805599453f;

// Forward launch arguments, passed by value (well under the 4 KiB limit).
struct FlashForwardArgs {
  ForwardParams params;
  // Thread blocks [block_begin[i], block_begin[i + 1]) work on group i.
  int64_t block_begin[kMaxGroups + 1];
};

// Backward launch arguments.
struct FlashBackwardArgs {
  BackwardParams params;
  int64_t block_begin[kMaxGroups + 1];
  // [batch, heads, seq] rowsum(grad_out * out) of every selected row, laid
  // out like params.forward.lse (stride_b = heads * seq, stride_h = seq).
  float* delta;
};

// Returns the number of row blocks of `rows_per_block` rows that a
// (batch, segment, head) sequence of group `g` needs: at least one, so that
// groups selecting nothing still get a block that zeroes their rows.
__host__ __device__ inline int64_t RowBlocks(const GroupParams& g,
                                             int rows_per_block) {
  return g.positions == 0 ? 1
                          : (g.positions + rows_per_block - 1) / rows_per_block;
}

// Returns the thread blocks group `g` needs: one per (batch, segment, head,
// row block).
__host__ __device__ inline int64_t GroupBlocks(const ForwardParams& p,
                                               const GroupParams& g,
                                               int rows_per_block) {
  return p.batch * (p.seq_len / g.segment_length) * g.num_heads *
         RowBlocks(g, rows_per_block);
}

// Fills block_begin with the prefix counts of GroupBlocks and returns the
// total.
inline int64_t FillBlockBegin(const ForwardParams& p, int rows_per_block,
                              int64_t* block_begin) {
  int64_t total = 0;
  for (int i = 0; i < p.num_groups; ++i) {
    block_begin[i] = total;
    total += GroupBlocks(p, p.groups[i], rows_per_block);
  }
  block_begin[p.num_groups] = total;
  return total;
}

struct WorkItem {
  int group;
  int64_t batch;
  int64_t segment;
  int64_t head;  // Absolute head index.
  int block;     // Row block within the sequence.
  int num_blocks;
};

// Decodes thread block `index`. Row blocks vary fastest, so consecutive
// blocks share the keys and values of one sequence in L2; with
// `heavy_last_first`, the last row block (the most work under a causal mask)
// comes first.
__device__ __forceinline__ WorkItem DecodeWork(const int64_t* block_begin,
                                               const ForwardParams& p,
                                               int64_t index,
                                               int rows_per_block,
                                               bool heavy_last_first) {
  WorkItem w;
  int gi = 0;
  while (gi + 1 < p.num_groups && index >= block_begin[gi + 1]) ++gi;
  const GroupParams& g = p.groups[gi];
  int64_t rest = index - block_begin[gi];
  w.group = gi;
  w.num_blocks = static_cast<int>(RowBlocks(g, rows_per_block));
  const int block = static_cast<int>(rest % w.num_blocks);
  w.block = heavy_last_first ? w.num_blocks - 1 - block : block;
  rest /= w.num_blocks;
  w.head = g.head_begin + rest % g.num_heads;
  rest /= g.num_heads;
  const int64_t segments = p.seq_len / g.segment_length;
  w.segment = rest % segments;
  w.batch = rest / segments;
  return w;
}

// Returns the element at position m * s (the segment start) of the work
// item's head.
template <typename T>
__device__ __forceinline__ T* SegmentStart(const TensorParams& t,
                                           const WorkItem& w,
                                           const GroupParams& g) {
  return static_cast<T*>(t.data) + w.batch * t.stride_b +
         w.segment * g.segment_length * t.stride_n + w.head * t.stride_h;
}

// Returns the element of selected row 0 (position m * s + o).
template <typename T>
__device__ __forceinline__ T* SelectedRow0(const TensorParams& t,
                                           const WorkItem& w,
                                           const GroupParams& g) {
  return SegmentStart<T>(t, w, g) + g.offset * t.stride_n;
}

// Returns the distance in elements between selected rows j and j + 1.
__device__ __forceinline__ int64_t RowStep(const TensorParams& t,
                                           const GroupParams& g) {
  return g.dilation_rate * t.stride_n;
}

// Returns the [batch, heads, seq] float row entry at the segment start.
__device__ __forceinline__ float* SegmentStart(float* base, int64_t stride_b,
                                               int64_t stride_h,
                                               const WorkItem& w,
                                               const GroupParams& g) {
  return base + w.batch * stride_b + w.head * stride_h +
         w.segment * g.segment_length;
}

// Starts cp.async copies of selected rows [first, first + kRows) into a
// shared tile of kRows x (kHeadDim + 8) elements (the 8-element pad keeps
// ldmatrix free of bank conflicts). Rows >= limit and 16-byte chunks >=
// `chunks` are zero-filled. All kThreads threads of the block must call it.
template <int kRows, int kHeadDim, int kThreads, typename T>
__device__ __forceinline__ void LoadRows(T* smem, const T* rows, int64_t step,
                                         int first, int limit, int chunks,
                                         int tid) {
  constexpr int kChunks = kHeadDim / 8;
  constexpr int kStride = kHeadDim + 8;
  static_assert(kThreads % kChunks == 0, "a thread keeps one column chunk");
  constexpr int kRowsPerPass = kThreads / kChunks;
  static_assert(kRows % kRowsPerPass == 0, "uneven tile copy");
  const int c = tid % kChunks;
  const int r0 = tid / kChunks;
  // One running source pointer (advanced by a whole pass of rows) keeps the
  // compiler from holding a 64-bit address per pass in registers.
  const T* src = rows + (first + r0) * step + c * 8;
  const int64_t pass_step = kRowsPerPass * step;
  const uint32_t dst = SharedAddress(smem + r0 * kStride + c * 8);
  const bool column_valid = c < chunks;
#pragma unroll
  for (int pass = 0; pass < kRows / kRowsPerPass; ++pass) {
    const bool valid = column_valid && first + r0 + pass * kRowsPerPass < limit;
    CpAsync16(dst + pass * kRowsPerPass * kStride * sizeof(T),
              valid ? src : rows, valid);
    src += pass_step;
  }
}

// Writes zeros to the rows of one (batch, segment, head) that the group does
// not select and that belong to the row block [j_begin, j_end): the rows
// between selected row j and j + 1 for j in the block (up to the segment
// end), and, for the first block, the rows before the offset. A group that
// selects nothing (positions == 0) zeroes its whole segment through its one
// block. When `lse` (the segment start of a [.., seq] float row) is not null,
// the same rows get -inf there. Every thread of the block calls it.
template <typename T>
__device__ void ZeroUnselectedRows(T* segment_start, int64_t stride_n,
                                   const GroupParams& g, int j_begin, int j_end,
                                   int chunks, float* lse, int tid,
                                   int num_threads) {
  const int s = static_cast<int>(g.segment_length);
  const int o = static_cast<int>(g.offset);
  const int r = static_cast<int>(g.dilation_rate);
  const int lead = g.positions == 0 ? s : (j_begin == 0 ? o : 0);
  const int gaps = r - 1;
  const int rows = lead + (j_end - j_begin) * gaps;
  if (rows == 0) return;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  const int64_t items = static_cast<int64_t>(rows) * chunks;
  for (int64_t i = tid; i < items; i += num_threads) {
    const int row = static_cast<int>(i / chunks);
    const int c = static_cast<int>(i % chunks);
    int pos;
    if (row < lead) {
      pos = row;
    } else {
      const int k = row - lead;
      pos = o + (j_begin + k / gaps) * r + 1 + k % gaps;
      if (pos >= s) continue;
    }
    *reinterpret_cast<uint4*>(segment_start + pos * stride_n + c * 8) = zero;
  }
  if (lse == nullptr) return;
  const float minus_inf = -__int_as_float(0x7f800000);
  for (int row = tid; row < rows; row += num_threads) {
    int pos;
    if (row < lead) {
      pos = row;
    } else {
      const int k = row - lead;
      pos = o + (j_begin + k / gaps) * r + 1 + k % gaps;
      if (pos >= s) continue;
    }
    lse[pos] = minus_inf;
  }
}

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_FLASH_COMMON_CUH_
