#include "kernels/cpu/dropout_tile.h"

#include "kernels/dropout_rng.h"

namespace dilated {
namespace kernels {
namespace cpu {

void FillDropoutTile(const ForwardParams& p, const Segment& s, int64_t i0,
                     int64_t rows, int64_t j0, int64_t keys,
                     const DropoutTileLayout& layout, float* tile) {
  const Problem& problem = *s.problem;
  const DropoutParams& d = p.dropout;
  for (int64_t i = 0; i < layout.row_extent; ++i) {
    float* row = tile + i * layout.query_stride;
    if (i >= rows) {
      for (int64_t j = 0; j < layout.key_extent; ++j) {
        row[j * layout.key_stride] = 0.0f;
      }
      continue;
    }
    const int64_t query = problem.Position(i0 + i);
    // One Philox block serves up to 4 consecutive key positions: reuse it
    // while the keys stay in it (dilation rates below 4).
    int64_t block_index = -1;
    PhiloxBlock block{};
    for (int64_t j = 0; j < layout.key_extent; ++j) {
      if (j >= keys) {
        row[j * layout.key_stride] = 0.0f;
        continue;
      }
      const int64_t key = problem.Position(j0 + j);
      if ((key >> 2) != block_index) {
        block_index = key >> 2;
        block =
            DropoutRandomBlock(d, problem.b, p.num_heads, s.head, query, key);
      }
      row[j * layout.key_stride] =
          block.word[key & 3] < d.drop_threshold ? 0.0f : d.keep_scale;
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
