#include "kernels/cpu/amx_tiles.h"

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

// The palette-1 tile configuration (LDTILECFG's 64-byte operand).
struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(TileConfig) == 64, "LDTILECFG reads 64 bytes");

}  // namespace

DA_AMX_TARGET void AmxBeginThread() {
  TileConfig config;
  std::memset(&config, 0, sizeof(config));
  config.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    config.colsb[t] = 64;
    config.rows[t] = 16;
  }
  _tile_loadconfig(&config);
}

DA_AMX_TARGET void AmxEndThread() { _tile_release(); }

DA_AMX_TARGET void StageRow(const void* src, DataType dtype, int64_t count,
                            int64_t dp, uint16_t* hi, uint16_t* lo) {
  const uint16_t* h = static_cast<const uint16_t*>(src);
  for (int64_t a = 0; a < dp; a += 16) {
    // Whole vectors load unmasked: masked loads measured slower here.
    const __m256i x =
        count - a >= 16
            ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + a))
            : _mm256_maskz_loadu_epi16(FirstLanes(count - a), h + a);
    if (dtype == DataType::kBFloat16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi + a), x);
      continue;
    }
    StoreSplit(_mm512_cvtph_ps(x), hi + a, lo + a);
  }
}

DA_AMX_TARGET void TransposePairs(const uint16_t* rows, int64_t num_rows,
                                  int64_t dp, uint32_t* out,
                                  int64_t out_stride) {
  const uint32_t* in = reinterpret_cast<const uint32_t*>(rows);
  const int64_t pairs = dp / 2;
  for (int64_t j = 0; j < num_rows; j += 16) {
    for (int64_t r = 0; r < pairs; r += 16) {
      __m512i x[16];
      for (int i = 0; i < 16; ++i) {
        x[i] = _mm512_loadu_si512(in + (j + i) * pairs + r);
      }
      Transpose16x16(x);
      for (int i = 0; i < 16; ++i) {
        _mm512_storeu_si512(out + (r + i) * out_stride + j, x[i]);
      }
    }
  }
}

DA_AMX_TARGET void InterleaveRowPairs(const uint16_t* rows, int64_t num_rows,
                                      int64_t dp, uint32_t* out) {
  const __m512i even = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11,
                                        42, 10, 41, 9, 40, 8, 39, 7, 38, 6, 37,
                                        5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  const __m512i odd = _mm512_add_epi16(even, _mm512_set1_epi16(16));
  for (int64_t r = 0; r < num_rows / 2; ++r) {
    const uint16_t* a = rows + 2 * r * dp;
    const uint16_t* b = a + dp;
    uint32_t* o = out + r * dp;
    for (int64_t c = 0; c < dp; c += 32) {
      const __m512i x = _mm512_loadu_si512(a + c);
      const __m512i y = _mm512_loadu_si512(b + c);
      _mm512_storeu_si512(o + c, _mm512_permutex2var_epi16(x, even, y));
      _mm512_storeu_si512(o + c + 16, _mm512_permutex2var_epi16(x, odd, y));
    }
  }
}

DA_AMX_TARGET void TileBlock32(const uint16_t* const* a, int64_t lda,
                               const uint32_t* const* b, int64_t ldb, int64_t k,
                               const ProductTerms& terms, float* c, int64_t ldc,
                               bool accumulate) {
  const int64_t c_stride = ldc * sizeof(float);
  if (accumulate) {
    _tile_loadd(0, c, c_stride);
    _tile_loadd(1, c + 16, c_stride);
    _tile_loadd(2, c + 16 * ldc, c_stride);
    _tile_loadd(3, c + 16 * ldc + 16, c_stride);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  const int64_t a_stride = lda * sizeof(uint16_t);
  const int64_t b_stride = ldb * sizeof(uint32_t);
  for (int t = 0; t < terms.count; ++t) {
    const uint16_t* at = a[terms.a[t]];
    const uint32_t* bt = b[terms.b[t]];
    for (int64_t kk = 0; kk < k; kk += 32) {
      _tile_loadd(4, at + kk, a_stride);
      _tile_loadd(5, at + 16 * lda + kk, a_stride);
      _tile_loadd(6, bt + kk / 2 * ldb, b_stride);
      _tile_loadd(7, bt + kk / 2 * ldb + 16, b_stride);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, c, c_stride);
  _tile_stored(1, c + 16, c_stride);
  _tile_stored(2, c + 16 * ldc, c_stride);
  _tile_stored(3, c + 16 * ldc + 16, c_stride);
}

DA_AMX_TARGET void StoreScaledRow(const float* src, float factor,
                                  DataType dtype, int64_t count, void* dst) {
  uint16_t* out = static_cast<uint16_t*>(dst);
  const __m512 f = _mm512_set1_ps(factor);
  for (int64_t a = 0; a < count; a += 16) {
    const __mmask16 lanes = FirstLanes(count - a);
    const __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, src + a), f);
    const __m256i stored =
        dtype == DataType::kBFloat16
            ? ToBf16(y)
            : _mm512_cvtps_ph(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_mask_storeu_epi16(out + a, lanes, stored);
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
