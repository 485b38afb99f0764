#include "kernels/cpu/linear_direct.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

// A tile of outputs: up to kTileRows rows of x against up to kTileColumns
// rows of w. In the loop over whole 8-wide blocks of products, 4 x 3 keeps
// 12 accumulators, three w vectors and one x vector in the 16 ymm
// registers: 7 loads per 12 FMAs, and 12 independent FMA chains, more than
// the FMA latency times the FMA pipes.
constexpr int kTileRows = 4;
constexpr int kTileColumns = 3;

// The x rows one pass over the column groups reads (a row block) take about
// kRowBlockBytes, sized for an L2 of 512 KiB a core or more, so that they
// stay there while every column group reads them. W is read from memory
// once per row block.
constexpr int64_t kRowBlockBytes = 384 * 1024;

// Returns the rows of a row block for `in` products a row: a multiple of
// kTileRows, at least kTileRows.
// REQUIRES: in >= 1.
int64_t RowsPerBlock(int64_t in) {
  const int64_t rows = kRowBlockBytes / (in * int64_t{sizeof(float)});
  return rows < kTileRows ? kTileRows : rows / kTileRows * kTileRows;
}

// Returns the sum of the eight lanes, in a fixed order.
float HorizontalSum(__m256 v) {
  const __m128 half =
      _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 pairs = _mm_add_ps(half, _mm_movehl_ps(half, half));
  return _mm_cvtss_f32(_mm_add_ss(pairs, _mm_movehdup_ps(pairs)));
}

// Writes y[r][c] for kRows rows and kColumns columns (x, w, bias and y at
// the tile's first row and column): one accumulator per output, lane l
// summing the products k = l (mod 8) in order, then the lanes.
template <int kRows, int kColumns>
void DotTile(const float* x, int64_t ldx, const float* w, int64_t in,
             const float* bias, bool relu, float* y, int64_t ldy) {
  // The loops over rows and columns unroll fully (at the library's -O3),
  // so that the accumulators live in registers.
  __m256 acc[kRows][kColumns];
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 3
    for (int c = 0; c < kColumns; ++c) acc[r][c] = _mm256_setzero_ps();
  }
  int64_t k = 0;
  for (; k + 8 <= in; k += 8) {
    __m256 wv[kColumns];
#pragma GCC unroll 3
    for (int c = 0; c < kColumns; ++c) wv[c] = _mm256_loadu_ps(w + c * in + k);
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      const __m256 xv = _mm256_loadu_ps(x + r * ldx + k);
#pragma GCC unroll 3
      for (int c = 0; c < kColumns; ++c) {
        acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
      }
    }
  }
  if (k < in) {
    const __m256i lanes = LanesBelow(in - k);
    __m256 wv[kColumns];
#pragma GCC unroll 3
    for (int c = 0; c < kColumns; ++c) {
      wv[c] = _mm256_maskload_ps(w + c * in + k, lanes);
    }
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      const __m256 xv = _mm256_maskload_ps(x + r * ldx + k, lanes);
#pragma GCC unroll 3
      for (int c = 0; c < kColumns; ++c) {
        acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 3
    for (int c = 0; c < kColumns; ++c) {
      float value = HorizontalSum(acc[r][c]);
      if (bias != nullptr) value += bias[c];
      if (relu && value < 0.0f) value = 0.0f;
      y[r * ldy + c] = value;
    }
  }
}

using TileFunction = void (*)(const float*, int64_t, const float*, int64_t,
                              const float*, bool, float*, int64_t);

// kTiles[r - 1][c - 1] computes a tile of r rows and c columns.
constexpr TileFunction kTiles[kTileRows][kTileColumns] = {
    {DotTile<1, 1>, DotTile<1, 2>, DotTile<1, 3>},
    {DotTile<2, 1>, DotTile<2, 2>, DotTile<2, 3>},
    {DotTile<3, 1>, DotTile<3, 2>, DotTile<3, 3>},
    {DotTile<4, 1>, DotTile<4, 2>, DotTile<4, 3>}};

}  // namespace

int64_t LinearDirectRows(CpuPath path) {
  return path == CpuPath::kAvx2 ? kAvx2DirectRows : kWideDirectRows;
}

void LinearDirect(const float* x, int64_t rows, int64_t in, int64_t ldx,
                  const float* w, int64_t out, const LinearEpilogue& epilogue,
                  float* y, int64_t ldy) {
  const int64_t row_block = RowsPerBlock(in);
  const int64_t groups = (out + kTileColumns - 1) / kTileColumns;
#pragma omp parallel
  for (int64_t block = 0; block < rows; block += row_block) {
    const int64_t block_end = std::min(rows, block + row_block);
#pragma omp for schedule(static)
    for (int64_t group = 0; group < groups; ++group) {
      const int64_t column = group * kTileColumns;
      const int columns =
          static_cast<int>(std::min<int64_t>(kTileColumns, out - column));
      const float* bias =
          epilogue.bias == nullptr ? nullptr : epilogue.bias + column;
      for (int64_t row = block; row < block_end; row += kTileRows) {
        const int count =
            static_cast<int>(std::min<int64_t>(kTileRows, block_end - row));
        kTiles[count - 1][columns - 1](x + row * ldx, ldx, w + column * in, in,
                                       bias, epilogue.relu,
                                       y + row * ldy + column, ldy);
      }
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
