// File: problem_list.h
//
// The attention problems of one call: for every group, sequence and segment,
// the rows that attend to each other (docs/ARCHITECTURE.md section 1). It is
// what lets one kernel serve every sequence layout: fixed-length input with
// segments that divide the sequence, partial last segments, packed
// variable-length batches (each sequence segmented from its own position 0)
// and key padding (padded positions left out of their problem).
//
// A problem's rows are the positions first + j * step for j < length, or,
// when padding punches holes into a segment's selection, the listed
// positions rows[j]. Leaving padded positions out keeps the order of the
// rest, so the causal mask stays "row i attends rows j <= i" and the kernels'
// tile loops need no change; padding at the start or end of a selection only
// shortens the strided form.
//
//   const ProblemList problems(params);  // host-readable cu_seqlens and mask
//   for (const Problem& problem : problems.problems()) ...
//
// Host code only: it reads cu_seqlens and the mask, so for device tensors
// the caller builds it from host copies.

#ifndef KERNELS_PROBLEM_LIST_H_
#define KERNELS_PROBLEM_LIST_H_

#include <cstdint>
#include <vector>

#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {

struct Problem {
  const GroupParams* group;
  int64_t b;         // Sequence (batch entry) it belongs to.
  int64_t row_base;  // Row of the sequence's position 0 (packed), else 0.
  // The segment's positions [segment_begin, segment_end) in its sequence;
  // every one of them that is not a row of the problem is zeroed for the
  // group's heads.
  int64_t segment_begin;
  int64_t segment_end;
  int64_t first;
  int64_t step;
  int64_t length;
  // Position of row j when not null (length entries), else first + j * step.
  const int32_t* rows;

  // Returns the position (in its sequence) of row j.
  int64_t Position(int64_t j) const {
    return rows != nullptr ? rows[j] : first + j * step;
  }
};

class ProblemList {
 public:
  // REQUIRES: params validated by the front end; params.sequence.cu_seqlens
  // and key_padding_mask, when set, readable from the host.
  explicit ProblemList(const ForwardParams& params);

  // Positions [begin, end) of a sequence.
  struct Interval {
    int64_t begin;
    int64_t end;
  };

  // As above for a key padding mask whose unpadded positions form one
  // interval per sequence, unpadded[b] (what the host learns of a device
  // mask without copying it); params.sequence.key_padding_mask is not read.
  // REQUIRES: as above except for the mask; unpadded.size() == batch.
  ProblemList(const ForwardParams& params,
              const std::vector<Interval>& unpadded);

  ProblemList(const ProblemList&) = delete;
  ProblemList& operator=(const ProblemList&) = delete;

  // Returns the problems, group by group, then by sequence and segment.
  const std::vector<Problem>& problems() const { return problems_; }

  // Returns the largest length of a problem.
  int64_t max_length() const { return max_length_; }

 private:
  // The unpadded positions of one sequence when they form one interval
  // [begin, end) (padding only at the ends, or none), which lets every
  // problem of the sequence be trimmed by arithmetic; else `interval` is
  // false and problems are checked position by position.
  struct Unpadded {
    bool interval;
    int64_t begin;
    int64_t end;
  };
  static Unpadded FindUnpadded(const uint8_t* padded, int64_t n);

  void Build(const ForwardParams& params,
             const std::vector<Unpadded>& unpadded);

  void AddSegment(const ForwardParams& params, const GroupParams& group,
                  int64_t b, int64_t row_base, int64_t begin, int64_t end,
                  const Unpadded& unpadded);

  std::vector<Problem> problems_;
  // Row lists of the problems with holes, one after the other; problems_
  // point into it once every problem is added.
  std::vector<int32_t> rows_;
  // Where each problem's row list starts in rows_, or -1 (strided).
  std::vector<int64_t> row_offsets_;
  int64_t max_length_ = 0;
};

}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_PROBLEM_LIST_H_
