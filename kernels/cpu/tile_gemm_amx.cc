// The tile products of tile_gemm_amx.h. Each call packs its operands into
// per-thread buffers, padded with zeros to whole tiles: A as bfloat16 rows of
// round_up(k, 32), B as 32-bit pairs of rows of round_up(n, 32) columns;
// then C is computed in blocks of 32 x 32 (four accumulator tiles, two A and
// two B tiles: the eight tile registers). C goes through a padded float32
// buffer unless m and n are multiples of 32.

#include "kernels/cpu/tile_gemm_amx.h"

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cpu/amx_tiles.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

constexpr int64_t kTile = 16;
constexpr int64_t kBlock = 32;  // C block edge and the reduction step.

int64_t RoundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// The palette-1 tile configuration: tiles 0-7 of 16 rows x 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(TileConfig) == 64, "LDTILECFG reads 64 bytes");

// One thread's packed operands, grown on demand.
struct Buffers {
  std::vector<uint16_t> a[2];  // Planes of mp x kp.
  std::vector<uint32_t> b[2];  // Planes of kp / 2 x np.
  std::vector<float> c;        // mp x np.
};

Buffers& ThreadBuffers() {
  thread_local Buffers buffers;
  return buffers;
}

// Packs A (m x k) into row-major planes of mp x kp.
DA_AMX_TARGET void PackA(int64_t m, int64_t k, const StridedOperand& a,
                         int64_t mp, int64_t kp, uint16_t* hi, uint16_t* lo) {
  if (a.k_stride == 1) {
    for (int64_t i = 0; i < mp; ++i) {
      const float* row = a.data + i * a.m_stride;
      for (int64_t kk = 0; kk < kp; kk += kTile) {
        const __m512 x =
            i < m ? _mm512_maskz_loadu_ps(FirstLanes(k - kk), row + kk)
                  : _mm512_setzero_ps();
        StoreSplit(x, hi + i * kp + kk,
                   lo == nullptr ? nullptr : lo + i * kp + kk);
      }
    }
    return;
  }
  if (a.m_stride == 1) {
    // Columns of A are contiguous: transpose 16 x 16 blocks in registers.
    for (int64_t i0 = 0; i0 < mp; i0 += kTile) {
      const __mmask16 rows = FirstLanes(m - i0);
      for (int64_t k0 = 0; k0 < kp; k0 += kTile) {
        __m512i x[kTile];
        for (int64_t t = 0; t < kTile; ++t) {
          x[t] = k0 + t < k ? _mm512_castps_si512(_mm512_maskz_loadu_ps(
                                  rows, a.data + (k0 + t) * a.k_stride + i0))
                            : _mm512_setzero_si512();
        }
        Transpose16x16(x);
        for (int64_t t = 0; t < kTile; ++t) {
          const int64_t at = (i0 + t) * kp + k0;
          StoreSplit(_mm512_castsi512_ps(x[t]), hi + at,
                     lo == nullptr ? nullptr : lo + at);
        }
      }
    }
    return;
  }
  alignas(64) float row[kTile];
  for (int64_t i = 0; i < mp; ++i) {
    for (int64_t kk = 0; kk < kp; kk += kTile) {
      for (int64_t t = 0; t < kTile; ++t) {
        row[t] = i < m && kk + t < k
                     ? a.data[i * a.m_stride + (kk + t) * a.k_stride]
                     : 0.0f;
      }
      StoreSplit(_mm512_load_ps(row), hi + i * kp + kk,
                 lo == nullptr ? nullptr : lo + i * kp + kk);
    }
  }
}

// Packs B (k x n) into planes of kp / 2 x np pairs: element (r, col) holds
// B[2r, col] in its low half and B[2r + 1, col] in its high half.
DA_AMX_TARGET void PackB(int64_t k, int64_t n, const RowOperand& b, int64_t kp,
                         int64_t np, uint32_t* hi, uint32_t* lo) {
  for (int64_t r = 0; r < kp / 2; ++r) {
    for (int64_t c = 0; c < np; c += kTile) {
      const __mmask16 cols = FirstLanes(n - c);
      __m256i high[2], low[2];
      for (int e = 0; e < 2; ++e) {
        const int64_t kk = 2 * r + e;
        const __m512 x =
            kk < k ? _mm512_maskz_loadu_ps(cols, b.data + kk * b.row_stride + c)
                   : _mm512_setzero_ps();
        high[e] = ToBf16(x);
        low[e] = ToBf16(_mm512_sub_ps(x, Widen(high[e])));
      }
      const __m512i pairs = _mm512_or_si512(
          _mm512_cvtepu16_epi32(high[0]),
          _mm512_slli_epi32(_mm512_cvtepu16_epi32(high[1]), 16));
      _mm512_storeu_si512(hi + r * np + c, pairs);
      if (lo != nullptr) {
        const __m512i low_pairs = _mm512_or_si512(
            _mm512_cvtepu16_epi32(low[0]),
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(low[1]), 16));
        _mm512_storeu_si512(lo + r * np + c, low_pairs);
      }
    }
  }
}

// C[i0.., j0..] (32 x 32 block of a row-major float32 C, row stride ldc)
// (+)= sum over terms of A_plane B_plane.
DA_AMX_TARGET void Block32(const Buffers& buf, int terms, int64_t kp,
                           int64_t np, int64_t i0, int64_t j0, float* c,
                           int64_t ldc, bool accumulate) {
  static constexpr int kA[3] = {0, 0, 1};
  static constexpr int kB[3] = {0, 1, 0};
  const int64_t c_stride = ldc * sizeof(float);
  float* c0 = c + i0 * ldc + j0;
  if (accumulate) {
    _tile_loadd(0, c0, c_stride);
    _tile_loadd(1, c0 + kTile, c_stride);
    _tile_loadd(2, c0 + kTile * ldc, c_stride);
    _tile_loadd(3, c0 + kTile * ldc + kTile, c_stride);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  const int64_t a_stride = kp * sizeof(uint16_t);
  const int64_t b_stride = np * sizeof(uint32_t);
  for (int t = 0; t < terms; ++t) {
    const uint16_t* a = buf.a[kA[t]].data() + i0 * kp;
    const uint32_t* b = buf.b[kB[t]].data() + j0;
    for (int64_t kk = 0; kk < kp; kk += kBlock) {
      _tile_loadd(4, a + kk, a_stride);
      _tile_loadd(5, a + kTile * kp + kk, a_stride);
      _tile_loadd(6, b + kk / 2 * np, b_stride);
      _tile_loadd(7, b + kk / 2 * np + kTile, b_stride);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, c0, c_stride);
  _tile_stored(1, c0 + kTile, c_stride);
  _tile_stored(2, c0 + kTile * ldc, c_stride);
  _tile_stored(3, c0 + kTile * ldc + kTile, c_stride);
}

DA_AMX_TARGET void Gemm(int64_t m, int64_t n, int64_t k,
                        const StridedOperand& a, const RowOperand& b,
                        const RowResult& c, bool accumulate, bool split) {
  if (m <= 0 || n <= 0) return;
  const int64_t mp = RoundUp(m, kBlock);
  const int64_t np = RoundUp(n, kBlock);
  const int64_t kp = RoundUp(k < 1 ? 1 : k, kBlock);
  const int planes = split ? 2 : 1;
  Buffers& buf = ThreadBuffers();
  for (int pl = 0; pl < planes; ++pl) {
    if (static_cast<int64_t>(buf.a[pl].size()) < mp * kp) {
      buf.a[pl].resize(mp * kp);
    }
    if (static_cast<int64_t>(buf.b[pl].size()) < kp / 2 * np) {
      buf.b[pl].resize(kp / 2 * np);
    }
  }
  PackA(m, k, a, mp, kp, buf.a[0].data(), split ? buf.a[1].data() : nullptr);
  PackB(k, n, b, kp, np, buf.b[0].data(), split ? buf.b[1].data() : nullptr);
  const int terms = split ? 3 : 1;

  // Whole blocks write C in place; otherwise through the padded buffer.
  const bool direct = m == mp && n == np;
  float* out = c.data;
  int64_t ldc = c.row_stride;
  if (!direct) {
    if (static_cast<int64_t>(buf.c.size()) < mp * np) buf.c.resize(mp * np);
    out = buf.c.data();
    ldc = np;
    if (accumulate) {
      for (int64_t i = 0; i < mp; ++i) {
        for (int64_t j = 0; j < np; j += kTile) {
          const __m512 x =
              i < m ? _mm512_maskz_loadu_ps(FirstLanes(n - j),
                                            c.data + i * c.row_stride + j)
                    : _mm512_setzero_ps();
          _mm512_storeu_ps(out + i * np + j, x);
        }
      }
    }
  }
  for (int64_t i0 = 0; i0 < mp; i0 += kBlock) {
    for (int64_t j0 = 0; j0 < np; j0 += kBlock) {
      Block32(buf, terms, kp, np, i0, j0, out, ldc, accumulate);
    }
  }
  if (!direct) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; j += kTile) {
        _mm512_mask_storeu_ps(c.data + i * c.row_stride + j, FirstLanes(n - j),
                              _mm512_loadu_ps(out + i * np + j));
      }
    }
  }
}

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

void TileGemmAmx(int64_t m, int64_t n, int64_t k, const StridedOperand& a,
                 const RowOperand& b, const RowResult& c, bool accumulate) {
  Gemm(m, n, k, a, b, c, accumulate, /*split=*/false);
}

void TileGemmAmxSplit(int64_t m, int64_t n, int64_t k, const StridedOperand& a,
                      const RowOperand& b, const RowResult& c,
                      bool accumulate) {
  Gemm(m, n, k, a, b, c, accumulate, /*split=*/true);
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
