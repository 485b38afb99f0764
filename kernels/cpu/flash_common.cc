#include "kernels/cpu/flash_common.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace dilated {
namespace kernels {
namespace cpu {

WorkList::WorkList(const ForwardParams& p, int64_t block_rows) : params_(p) {
  for (int gi = 0; gi < p.num_groups; ++gi) {
    const GroupParams& g = p.groups[gi];
    const int64_t blocks =
        block_rows == 0
            ? 1
            : std::max<int64_t>(1, (g.positions + block_rows - 1) / block_rows);
    begin_.push_back(total_);
    blocks_.push_back(blocks);
    total_ += p.batch * (p.seq_len / g.segment_length) * g.num_heads * blocks;
  }
  begin_.push_back(total_);
}

Segment WorkList::Decode(int64_t index, int64_t* block) const {
  int gi = 0;
  while (index >= begin_[gi + 1]) ++gi;
  const GroupParams& g = params_.groups[gi];
  int64_t rest = index - begin_[gi];
  *block = blocks_[gi] - 1 - rest % blocks_[gi];
  rest /= blocks_[gi];
  Segment s;
  s.group = &g;
  s.head = g.head_begin + rest % g.num_heads;
  rest /= g.num_heads;
  const int64_t segments = params_.seq_len / g.segment_length;
  s.m = rest % segments;
  s.b = rest / segments;
  s.first = s.m * g.segment_length + g.offset;
  s.step = g.dilation_rate;
  return s;
}

namespace {

void ZeroPositions(const TensorParams& t, DataType dtype, int64_t head_dim,
                   const Segment& s, int64_t begin, int64_t end,
                   float* lse_row) {
  const int64_t element_size = dtype == DataType::kFloat32 ? 4 : 2;
  char* base = static_cast<char*>(t.data);
  for (int64_t n = begin; n < end; ++n) {
    const int64_t offset =
        s.b * t.stride_b + n * t.stride_n + s.head * t.stride_h;
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
  const GroupParams& g = *s.group;
  const int64_t segment_begin = s.m * g.segment_length;
  const int64_t segment_end = segment_begin + g.segment_length;
  if (j_begin == 0) {
    ZeroPositions(t, dtype, head_dim, s, segment_begin,
                  std::min(s.first, segment_end), lse_row);
  }
  if (s.step == 1) return;
  for (int64_t j = j_begin; j < j_end; ++j) {
    const int64_t position = s.first + j * s.step;
    ZeroPositions(t, dtype, head_dim, s, position + 1,
                  std::min(position + s.step, segment_end), lse_row);
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
