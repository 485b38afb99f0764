#include "kernels/cpu/linear_gemm_amx.h"

#include <immintrin.h>

#include <cstdint>
#include <vector>

#include "kernels/cpu/amx_tiles.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

// Rows of x converted at once; their planes (at most 256 x 3072 x 2 x 2
// bytes for the models' widths) are reused by every chunk of columns.
constexpr int64_t kRowBlock = 256;
// Bytes of packed weights per chunk of columns: they stay in L2 while the
// row block's tiles pass over them.
constexpr int64_t kChunkBytes = int64_t{1} << 20;

inline int64_t RoundUp(int64_t value, int64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

inline int64_t Min(int64_t a, int64_t b) { return a < b ? a : b; }

// Operands are packed as whole tiles, 1 KiB each and contiguous (row
// stride 64 bytes), so that a tile load reads 16 consecutive cache lines
// instead of rows pages apart:
// - x: per block of 32 rows and plane, tile (h, kb) holds rows 16 h .. 16 h
//   + 15 and products 32 kb .. 32 kb + 31 of the block, bfloat16, at
//   ((h * kb_count + kb) * 16 + row) * 32 + product;
// - w: per block of 32 output columns and plane, tile (h, kb) holds the
//   pairs of products (32 kb + 2 r, 32 kb + 2 r + 1) of columns 16 h .. 16 h
//   + 15, at (h * kb_count + kb) * 256 + r * 16 + column.
constexpr int64_t kTileWords = 256;  // 32-bit words in a tile

// Writes `count` float32 values (zero past count, up to dp) as the hi and,
// with lo, remainder planes of one row of a packed x block.
DA_AMX_TARGET void SplitRowIntoTiles(const float* src, int64_t count,
                                     int64_t kb_count, uint16_t* hi,
                                     uint16_t* lo) {
  for (int64_t kb = 0; kb < kb_count; ++kb) {
    const int64_t k = kb * 32;
    const int64_t slot = kb * 16 * 32;
    const __m512 v0 = _mm512_maskz_loadu_ps(FirstLanes(count - k), src + k);
    const __m512 v1 =
        _mm512_maskz_loadu_ps(FirstLanes(count - k - 16), src + k + 16);
    StoreSplit(v0, hi + slot, lo == nullptr ? nullptr : lo + slot);
    StoreSplit(v1, hi + slot + 16, lo == nullptr ? nullptr : lo + slot + 16);
  }
}

// Writes `count` float32 values as dp bfloat16 values of the hi plane and,
// with lo, of the remainder plane; zero past count.
DA_AMX_TARGET void SplitRow(const float* src, int64_t count, int64_t dp,
                            uint16_t* hi, uint16_t* lo) {
  for (int64_t k = 0; k < dp; k += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(FirstLanes(count - k), src + k);
    StoreSplit(v, hi + k, lo == nullptr ? nullptr : lo + k);
  }
}

// Writes rows [row, row + 32) of the 32 x 32 block c (row stride 32) to y,
// columns [column, column + 32) clipped to `rows` and `out`, after the
// epilogue.
DA_AMX_TARGET void StoreBlock(const float* c, int64_t row, int64_t rows,
                              int64_t column, int64_t out,
                              const LinearEpilogue& epilogue, float* y,
                              int64_t ldy) {
  const __mmask16 low = FirstLanes(out - column);
  const __mmask16 high = FirstLanes(out - column - 16);
  __m512 bias0 = _mm512_setzero_ps();
  __m512 bias1 = _mm512_setzero_ps();
  if (epilogue.bias != nullptr) {
    bias0 = _mm512_maskz_loadu_ps(low, epilogue.bias + column);
    bias1 = _mm512_maskz_loadu_ps(high, epilogue.bias + column + 16);
  }
  const __m512 zero = _mm512_setzero_ps();
  const int64_t count = Min(32, rows - row);
  for (int64_t r = 0; r < count; ++r) {
    __m512 v0 = _mm512_add_ps(_mm512_loadu_ps(c + r * 32), bias0);
    __m512 v1 = _mm512_add_ps(_mm512_loadu_ps(c + r * 32 + 16), bias1);
    if (epilogue.relu) {
      v0 = _mm512_max_ps(v0, zero);
      v1 = _mm512_max_ps(v1, zero);
    }
    float* dst = y + (row + r) * ldy + column;
    _mm512_mask_storeu_ps(dst, low, v0);
    _mm512_mask_storeu_ps(dst + 16, high, v1);
  }
}

struct Packed {
  int64_t kb_count;  // `in` in blocks of 32 products
  int planes;
  // Plane p of the weights: per block of 32 columns, 2 * kb_count tiles.
  std::vector<uint32_t> weights[2];
};

// Packs the weight rows of column block `group` (rows 32 group ..) into
// `packed`.
DA_AMX_TARGET void PackWeightGroup(const float* w, int64_t in, int64_t out,
                                   int64_t group, Packed* packed) {
  const int64_t dp = packed->kb_count * 32;
  std::vector<uint16_t> hi(32 * dp, 0);
  std::vector<uint16_t> lo(packed->planes == 2 ? 32 * dp : 0, 0);
  for (int64_t r = 0; r < 32; ++r) {
    const int64_t row = group * 32 + r;
    if (row >= out) break;
    SplitRow(w + row * in, in, dp, hi.data() + r * dp,
             packed->planes == 2 ? lo.data() + r * dp : nullptr);
  }
  const int64_t block_words = 2 * packed->kb_count * kTileWords;
  for (int p = 0; p < packed->planes; ++p) {
    const uint16_t* rows = p == 0 ? hi.data() : lo.data();
    uint32_t* dst = packed->weights[p].data() + group * block_words;
    for (int h = 0; h < 2; ++h) {
      // Rows 16 h .. 16 h + 15 as [dp / 2 pairs][16 columns]: the tiles
      // (h, 0), (h, 1), ... one after another.
      TransposePairs(rows + h * 16 * dp, 16, dp,
                     dst + h * packed->kb_count * kTileWords, 16);
    }
  }
}

// C (tiles 0-3: rows 0-15 / 16-31 x columns 0-15 / 16-31) = sum over terms
// and product blocks of the x block's tiles times the weight block's.
DA_AMX_TARGET void MultiplyBlock(const uint16_t* const* x_planes,
                                 const uint32_t* const* w_planes,
                                 int64_t kb_count, const ProductTerms& terms,
                                 float* c) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  constexpr int64_t kStride = 64;
  const int64_t half = kb_count * kTileWords;  // words between h = 0 and 1
  for (int64_t kb = 0; kb < kb_count; ++kb) {
    // The terms of a product block one after another, each operand's tiles
    // loaded only when the term before used another plane (hi*hi, hi*lo,
    // lo*hi: 10 tile loads for 12 products).
    int loaded_a = -1;
    int loaded_b = -1;
    for (int t = 0; t < terms.count; ++t) {
      if (terms.a[t] != loaded_a) {
        const uint16_t* a = x_planes[terms.a[t]];
        _tile_loadd(4, a + kb * 2 * kTileWords, kStride);
        _tile_loadd(5, a + (half + kb * kTileWords) * 2, kStride);
        loaded_a = terms.a[t];
      }
      if (terms.b[t] != loaded_b) {
        const uint32_t* b = w_planes[terms.b[t]];
        _tile_loadd(6, b + kb * kTileWords, kStride);
        _tile_loadd(7, b + half + kb * kTileWords, kStride);
        loaded_b = terms.b[t];
      }
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, c, 32 * sizeof(float));
  _tile_stored(1, c + 16, 32 * sizeof(float));
  _tile_stored(2, c + 16 * 32, 32 * sizeof(float));
  _tile_stored(3, c + 16 * 32 + 16, 32 * sizeof(float));
}

// Computes rows [row_begin, row_end) of y.
DA_AMX_TARGET void RowBlock(const float* x, int64_t rows, int64_t in,
                            int64_t ldx, const Packed& packed,
                            const LinearEpilogue& epilogue, int64_t out,
                            int64_t row_begin, int64_t row_end, float* y,
                            int64_t ldy, std::vector<uint16_t>* planes) {
  const int64_t kb_count = packed.kb_count;
  // 16-bit values per 32-row block and plane.
  const int64_t block_values = 2 * kb_count * 2 * kTileWords;
  const int64_t blocks = (row_end - row_begin + 31) / 32;
  planes->assign(packed.planes * blocks * block_values, 0);
  uint16_t* hi = planes->data();
  uint16_t* lo = packed.planes == 2 ? hi + blocks * block_values : nullptr;
  for (int64_t r = 0; r < row_end - row_begin; ++r) {
    // Row r sits in block r / 32, half (r % 32) / 16, tile row r % 16.
    const int64_t offset = (r / 32) * block_values +
                           ((r % 32) / 16) * kb_count * 2 * kTileWords +
                           (r % 16) * 32;
    SplitRowIntoTiles(x + (row_begin + r) * ldx, in, kb_count, hi + offset,
                      lo == nullptr ? nullptr : lo + offset);
  }
  const ProductTerms terms = packed.planes == 2
                                 ? ProductTerms{3, {0, 0, 1}, {0, 1, 0}}
                                 : ProductTerms{1, {0, 0, 0}, {0, 0, 0}};
  const int64_t weight_block_words = 2 * kb_count * kTileWords;
  const int64_t chunk_columns =
      RoundUp(kChunkBytes / (weight_block_words * 4 * packed.planes) * 32, 32);
  alignas(64) float c[32 * 32];
  for (int64_t chunk = 0; chunk < out; chunk += chunk_columns) {
    const int64_t chunk_end = Min(out, chunk + chunk_columns);
    for (int64_t block = 0; block < blocks; ++block) {
      const uint16_t* a[2] = {
          hi + block * block_values,
          lo == nullptr ? nullptr : lo + block * block_values};
      for (int64_t column = chunk; column < chunk_end; column += 32) {
        const int64_t offset = column / 32 * weight_block_words;
        const uint32_t* b[2] = {
            packed.weights[0].data() + offset,
            packed.planes == 2 ? packed.weights[1].data() + offset : nullptr};
        MultiplyBlock(a, b, kb_count, terms, c);
        StoreBlock(c, row_begin + block * 32, rows, column, out, epilogue, y,
                   ldy);
      }
    }
  }
}

}  // namespace

void LinearGemmAmx(const float* x, int64_t rows, int64_t in, int64_t ldx,
                   const float* w, int64_t out, const LinearEpilogue& epilogue,
                   int planes, float* y, int64_t ldy) {
  Packed packed;
  packed.kb_count = RoundUp(in, 32) / 32;
  packed.planes = planes;
  const int64_t groups = RoundUp(out, 32) / 32;
  for (int p = 0; p < planes; ++p) {
    packed.weights[p].resize(groups * 2 * packed.kb_count * kTileWords);
  }
  const int64_t row_blocks = (rows + kRowBlock - 1) / kRowBlock;
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t group = 0; group < groups; ++group) {
      PackWeightGroup(w, in, out, group, &packed);
    }
    std::vector<uint16_t> x_planes;
    AmxBeginThread();
#pragma omp for schedule(dynamic, 1)
    for (int64_t block = 0; block < row_blocks; ++block) {
      const int64_t begin = block * kRowBlock;
      RowBlock(x, rows, in, ldx, packed, epilogue, out, begin,
               Min(rows, begin + kRowBlock), y, ldy, &x_planes);
    }
    AmxEndThread();
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
