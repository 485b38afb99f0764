#include "kernels/cpu/block_sparse_tiles.h"

#include <algorithm>
#include <limits>

#include "kernels/cpu/cpu_path.h"
#include "kernels/cpu/row_io.h"
#include "kernels/cpu/simd_convert.h"
#include "kernels/cpu/tile_gemm.h"
#include "kernels/cpu/tile_gemm_avx512.h"

namespace dilated {
namespace kernels {
namespace cpu {

namespace {

// Widths in multiples of 16 floats: the AVX-512 panel, two AVX2 panels.
int64_t RoundUp16(int64_t x) { return (x + 15) / 16 * 16; }

}  // namespace

TileShape::TileShape(const ForwardParams& p, const BlockLists& lists)
    : rows(lists.block_size),
      padded_rows(RoundUp16(lists.block_size)),
      dim(p.head_dim),
      padded_dim(RoundUp16(p.head_dim)),
      gemm(ActiveCpuPath() != CpuPath::kAvx2 ? &TileGemmAvx512 : &TileGemm),
      fused_exp2(ActiveCpuPath() != CpuPath::kAvx2) {}

BlockTiles::BlockTiles(const TileShape& s, Carver* carver) {
  const int64_t lanes = s.padded_rows;
  qt = carver->Take(s.padded_dim * lanes);
  k_rows = carver->Take(s.rows * s.padded_dim);
  v_rows = carver->Take(s.rows * s.padded_dim);
  st = carver->Take(s.rows * lanes);
  ot = carver->Take(s.padded_dim * lanes);
  row_max = carver->Take(lanes);
  row_sum = carver->Take(lanes);
  reference = carver->Take(lanes);
  row = carver->Take(s.padded_dim);
  dpt = carver->Take(s.rows * lanes);
  acc_a = carver->Take(s.rows * s.padded_dim);
  acc_b = carver->Take(s.rows * s.padded_dim);
  kt = carver->Take(s.padded_dim * lanes);
  vt = carver->Take(s.padded_dim * lanes);
}

void LoadQueryT(const ForwardParams& p, const TileShape& s, const BlockAt& at,
                const TensorParams& t, float factor, float* tile_t,
                float* row) {
  std::fill(tile_t, tile_t + s.padded_dim * s.padded_rows, 0.0f);
  for (int64_t i = 0; i < s.rows; ++i) {
    LoadRowFast(RowAddress(t, p.dtype, at.b, at.block * s.rows + i, at.h),
                p.dtype, s.dim, row);
    for (int64_t a = 0; a < s.dim; ++a) {
      tile_t[a * s.padded_rows + i] = row[a] * factor;
    }
  }
}

void LoadRows(const ForwardParams& p, const TileShape& s, const BlockAt& at,
              const TensorParams& t, float* tile) {
  for (int64_t i = 0; i < s.rows; ++i) {
    float* row = tile + i * s.padded_dim;
    LoadRowFast(RowAddress(t, p.dtype, at.b, at.block * s.rows + i, at.h),
                p.dtype, s.dim, row);
    std::fill(row + s.dim, row + s.padded_dim, 0.0f);
  }
}

void Scores(const ForwardParams& p, const TileShape& s, const BlockAt& query,
            int64_t key_block, BlockTiles* tiles) {
  const int64_t lanes = s.padded_rows;
  s.gemm(s.rows, lanes, s.dim, {tiles->k_rows, s.padded_dim, 1},
         {tiles->qt, lanes}, {tiles->st, lanes}, /*accumulate=*/false);
  constexpr float kMinusInf = -std::numeric_limits<float>::infinity();
  if (p.is_causal && key_block == query.block) {
    for (int64_t j = 1; j < s.rows; ++j) {
      std::fill(tiles->st + j * lanes, tiles->st + j * lanes + j, kMinusInf);
    }
  }
  const uint8_t* mask = p.sequence.key_padding_mask;
  if (mask != nullptr) {
    const uint8_t* keys =
        mask + query.b * p.sequence.mask_stride_b + key_block * s.rows;
    for (int64_t j = 0; j < s.rows; ++j) {
      if (keys[j] != 0) {
        std::fill(tiles->st + j * lanes, tiles->st + (j + 1) * lanes,
                  kMinusInf);
      }
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
