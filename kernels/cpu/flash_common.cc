#include "kernels/cpu/flash_common.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace dilated {
namespace kernels {
namespace cpu {

WorkList::WorkList(const ProblemList& problems, int64_t block_rows)
    : problems_(problems) {
  begin_.reserve(problems.problems().size() + 1);
  blocks_.reserve(problems.problems().size());
  int64_t total = 0;
  for (const Problem& problem : problems.problems()) {
    const int64_t blocks =
        block_rows == 0
            ? 1
            : std::max<int64_t>(1,
                                (problem.length + block_rows - 1) / block_rows);
    begin_.push_back(total);
    blocks_.push_back(blocks);
    total += problem.group->num_heads * blocks;
  }
  begin_.push_back(total);
}

Segment WorkList::Decode(int64_t index, int64_t* block) const {
  const int64_t pi = std::upper_bound(begin_.begin(), begin_.end(), index) -
                     begin_.begin() - 1;
  const Problem& problem = problems_.problems()[pi];
  const int64_t rest = index - begin_[pi];
  *block = blocks_[pi] - 1 - rest % blocks_[pi];
  return Segment{&problem, problem.group->head_begin + rest / blocks_[pi]};
}

namespace {

// Zeroes positions [begin, end) of the sequence of `s`.
void ZeroPositions(const TensorParams& t, DataType dtype, int64_t head_dim,
                   const Segment& s, int64_t begin, int64_t end,
                   float* lse_row) {
  const int64_t element_size = dtype == DataType::kFloat32 ? 4 : 2;
  const Problem& p = *s.problem;
  char* base = static_cast<char*>(t.data);
  for (int64_t n = begin; n < end; ++n) {
    const int64_t offset =
        p.b * t.stride_b + (p.row_base + n) * t.stride_n + s.head * t.stride_h;
    std::memset(base + offset * element_size, 0, head_dim * element_size);
    if (lse_row != nullptr) {
      lse_row[n] = -std::numeric_limits<float>::infinity();
    }
  }
}

}  // namespace

void ZeroUnselected(const TensorParams& t, DataType dtype, int64_t head_dim,
                    const Segment& s, int64_t j_begin, int64_t j_end,
                    float* lse_row) {
  const Problem& p = *s.problem;
  if (j_begin == 0) {
    ZeroPositions(t, dtype, head_dim, s, p.segment_begin,
                  p.length > 0 ? p.Position(0) : p.segment_end, lse_row);
  }
  for (int64_t j = j_begin; j < j_end; ++j) {
    const int64_t next = j + 1 < p.length ? p.Position(j + 1) : p.segment_end;
    ZeroPositions(t, dtype, head_dim, s, p.Position(j) + 1, next, lse_row);
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
