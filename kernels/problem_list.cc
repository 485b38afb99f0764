#include "kernels/problem_list.h"

#include <algorithm>

namespace dilated {
namespace kernels {
namespace {

// Returns the first j >= 0 with first + j * step >= position.
int64_t FirstRowAtOrAfter(int64_t first, int64_t step, int64_t position) {
  return position <= first ? 0 : (position - first + step - 1) / step;
}

}  // namespace

ProblemList::Unpadded ProblemList::FindUnpadded(const uint8_t* padded,
                                                int64_t n) {
  const uint8_t* end = padded + n;
  const uint8_t* first = std::find(padded, end, 0);
  if (first == end) return Unpadded{true, 0, 0};
  const uint8_t* last = end;
  while (last[-1] != 0) --last;
  const bool interval = std::count(first, last, 0) == last - first;
  return Unpadded{interval, first - padded, last - padded};
}

ProblemList::ProblemList(const ForwardParams& p) {
  const uint8_t* mask = p.sequence.key_padding_mask;
  std::vector<Unpadded> unpadded(p.batch, Unpadded{true, 0, p.seq_len});
  if (mask != nullptr) {
    for (int64_t b = 0; b < p.batch; ++b) {
      unpadded[b] =
          FindUnpadded(mask + b * p.sequence.mask_stride_b, p.seq_len);
    }
  }
  Build(p, unpadded);
}

ProblemList::ProblemList(const ForwardParams& p,
                         const std::vector<Interval>& intervals) {
  std::vector<Unpadded> unpadded;
  unpadded.reserve(intervals.size());
  for (const Interval& interval : intervals) {
    unpadded.push_back(Unpadded{true, interval.begin, interval.end});
  }
  Build(p, unpadded);
}

void ProblemList::Build(const ForwardParams& p,
                        const std::vector<Unpadded>& unpadded) {
  const int32_t* cu = p.sequence.cu_seqlens;
  for (int gi = 0; gi < p.num_groups; ++gi) {
    const GroupParams& g = p.groups[gi];
    if (g.num_heads == 0) continue;
    for (int64_t b = 0; b < p.batch; ++b) {
      const int64_t row_base = cu != nullptr ? cu[b] : 0;
      const int64_t n = cu != nullptr ? cu[b + 1] - cu[b] : p.seq_len;
      for (int64_t begin = 0; begin < n; begin += g.segment_length) {
        AddSegment(p, g, b, row_base, begin,
                   std::min(n, begin + g.segment_length), unpadded[b]);
      }
    }
  }
  // rows_ has stopped growing: point the problems into it.
  for (size_t i = 0; i < problems_.size(); ++i) {
    if (row_offsets_[i] >= 0)
      problems_[i].rows = rows_.data() + row_offsets_[i];
  }
}

void ProblemList::AddSegment(const ForwardParams& p, const GroupParams& g,
                             int64_t b, int64_t row_base, int64_t begin,
                             int64_t end, const Unpadded& unpadded) {
  Problem problem;
  problem.group = &g;
  problem.b = b;
  problem.row_base = row_base;
  problem.segment_begin = begin;
  problem.segment_end = end;
  problem.first = begin + g.offset;
  problem.step = g.dilation_rate;
  problem.length = SegmentPositions(g, end - begin);
  problem.rows = nullptr;
  int64_t row_offset = -1;
  const uint8_t* mask = p.sequence.key_padding_mask;
  if (problem.length > 0 && unpadded.interval) {
    // Keep the rows inside the sequence's unpadded interval.
    const int64_t lo = std::min(
        problem.length,
        FirstRowAtOrAfter(problem.first, problem.step, unpadded.begin));
    const int64_t hi = std::max(
        lo,
        std::min(problem.length,
                 FirstRowAtOrAfter(problem.first, problem.step, unpadded.end)));
    problem.first += lo * problem.step;
    problem.length = hi - lo;
  } else if (mask != nullptr && problem.length > 0) {
    const uint8_t* padded = mask + b * p.sequence.mask_stride_b;
    // Padding at either end of the selection shortens the strided form;
    // padding between kept rows needs a row list.
    int64_t lo = 0;
    int64_t hi = problem.length;
    while (lo < hi && padded[problem.Position(lo)] != 0) ++lo;
    while (hi > lo && padded[problem.Position(hi - 1)] != 0) --hi;
    int64_t kept = 0;
    for (int64_t j = lo; j < hi; ++j) kept += padded[problem.Position(j)] == 0;
    if (kept == hi - lo) {
      problem.first += lo * problem.step;
      problem.length = hi - lo;
    } else {
      row_offset = static_cast<int64_t>(rows_.size());
      for (int64_t j = lo; j < hi; ++j) {
        const int64_t position = problem.Position(j);
        if (padded[position] == 0) {
          rows_.push_back(static_cast<int32_t>(position));
        }
      }
      problem.length = kept;
    }
  }
  max_length_ = std::max(max_length_, problem.length);
  problems_.push_back(problem);
  row_offsets_.push_back(row_offset);
}

}  // namespace kernels
}  // namespace dilated
