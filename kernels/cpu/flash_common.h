// File: flash_common.h
//
// What the fused forward and backward kernels share: the addressing of one
// problem's rows on one head as a (strided or listed) view of the tensors
// (docs/ARCHITECTURE.md section 1), the list of work units of a call, and the
// zeroing of rows that no group selects.

#ifndef KERNELS_CPU_FLASH_COMMON_H_
#define KERNELS_CPU_FLASH_COMMON_H_

#include <immintrin.h>

#include <cstdint>
#include <vector>

#include "kernels/dilated_params.h"
#include "kernels/problem_list.h"

namespace dilated {
namespace kernels {
namespace cpu {

inline constexpr float kLog2e = 1.4426950408889634f;
inline constexpr float kLn2 = 0.6931471805599453f;

// One attention problem (problem_list.h) on one head of its group.
struct Segment {
  const Problem* problem;
  int64_t head;
};

// Returns the element offset of row j of `s` in `t` (position and head; the
// batch included).
inline int64_t RowOffset(const TensorParams& t, const Segment& s, int64_t j) {
  const Problem& p = *s.problem;
  return p.b * t.stride_b + (p.row_base + p.Position(j)) * t.stride_n +
         s.head * t.stride_h;
}

// Returns the address of row j of `s` in `t`.
inline char* SegmentRow(const TensorParams& t, DataType dtype, const Segment& s,
                        int64_t j) {
  const int64_t element_size = dtype == DataType::kFloat32 ? 4 : 2;
  return static_cast<char*>(t.data) + RowOffset(t, s, j) * element_size;
}

// Rows a loop asks for ahead of the one it reads or writes: strided rows are
// not followed by the hardware prefetchers, and 8 rows (32 lines at
// head_dim 64) in flight hide most of the memory latency.
inline constexpr int64_t kRowsAhead = 8;

// Asks for row j of problem s in t to be brought into L1 (kHint
// _MM_HINT_T0) or L2 (_MM_HINT_T1).
//
// Always inlined: a prefetch does not change what a program computes, so GCC
// may find a function that only prefetches free of side effects ("const")
// and delete its calls; GCC 12 at -O2 deleted every call of this one while
// it was an ordinary template.
template <int kHint>
__attribute__((always_inline)) inline void PrefetchRow(const TensorParams& t,
                                                       DataType dtype,
                                                       int64_t head_dim,
                                                       const Segment& s,
                                                       int64_t j) {
  static_assert(kHint == _MM_HINT_T0 || kHint == _MM_HINT_T1,
                "PrefetchRow takes _MM_HINT_T0 or _MM_HINT_T1");
  constexpr int kLocality = kHint == _MM_HINT_T0 ? 3 : 2;
  const int64_t bytes = head_dim * (dtype == DataType::kFloat32 ? 4 : 2);
  const char* row = SegmentRow(t, dtype, s, j);
  for (int64_t offset = 0; offset < bytes; offset += 64) {
    __builtin_prefetch(row + offset, /*rw=*/0, kLocality);
  }
}

// Returns the log-sum-exp row of the sequence and head of `s`, indexed by
// position in the sequence, or null without lse.
inline float* LseRow(const ForwardParams& p, const Segment& s) {
  if (p.lse == nullptr) return nullptr;
  return p.lse + s.problem->b * p.lse_stride_b + s.head * p.lse_stride_h +
         s.problem->row_base;
}

// Cuts per-thread scratch out of a workspace, 64-byte aligned pieces one
// after the other. With a null base it only counts, so that one layout
// function gives both the size of a thread's workspace and its pieces.
class Carver {
 public:
  explicit Carver(float* base) : base_(base) {}

  // Returns the next `floats` floats (null when counting).
  float* Take(int64_t floats) {
    float* piece = base_ == nullptr ? nullptr : base_ + used_;
    used_ += (floats + 15) / 16 * 16;
    return piece;
  }

  // Returns the floats taken so far, alignment padding included.
  int64_t used() const { return used_; }

 private:
  float* base_;
  int64_t used_ = 0;
};

// The work of one call, cut into units of (problem, head, block) with
// ceil(length / block_rows) blocks per problem (at least one, so a problem
// without rows still owns a unit that zeroes its segment). Within a problem,
// blocks are listed from the last to the first: under a causal mask the last
// blocks cost most, and a dynamic schedule should start them first.
class WorkList {
 public:
  // `block_rows` is the rows per block; 0 means one block per problem.
  WorkList(const ProblemList& problems, int64_t block_rows);

  // Returns the number of units.
  int64_t size() const { return begin_.back(); }

  // Returns the problem of unit `index` and stores its block in *block.
  Segment Decode(int64_t index, int64_t* block) const;

 private:
  const ProblemList& problems_;
  std::vector<int64_t> begin_;   // First unit of each problem, plus the total.
  std::vector<int64_t> blocks_;  // Blocks of each problem.
};

// Zeroes the rows of `t` (and sets `lse_row`, when not null, to -inf) at the
// positions of the segment of `s` that are not rows of its problem and lie
// after rows j_begin .. j_end - 1, up to the next row or the end of the
// segment; when j_begin == 0 also the positions before row 0. With
// length == 0 (j_begin = j_end = 0) that is the whole segment.
void ZeroUnselected(const TensorParams& t, DataType dtype, int64_t head_dim,
                    const Segment& s, int64_t j_begin, int64_t j_end,
                    float* lse_row);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_FLASH_COMMON_H_
