// File: amx_tiles.h
//
// Building blocks of the AMX kernels (flash_forward_amx.cc,
// flash_backward_amx.cc): the target attribute that lets a
// function use AVX-512, AVX512-BF16 and AMX in files compiled for x86-64-v3,
// small vector helpers carrying it, and the packing and tile-product steps
// the kernels share (amx_tiles.cc). Every function here has that attribute,
// so that any copy the linker keeps is an AMX-path copy; all are called only
// where CpuHasAmx() (cpu_path.h), the tile products between AmxBeginThread()
// and AmxEndThread() on the calling thread.
//
// Operands are 16-bit "planes": bfloat16 values as stored (one plane), or
// float16 values split into hi + lo bfloat16 planes (flash_amx.h).

#ifndef KERNELS_CPU_AMX_TILES_H_
#define KERNELS_CPU_AMX_TILES_H_

#include <immintrin.h>

#include <cstdint>

#include "kernels/dilated_params.h"

#define DA_AMX_TARGET                                         \
  __attribute__((                                             \
      target("avx512f,avx512dq,avx512bw,avx512vl,avx512bf16," \
             "amx-tile,amx-bf16")))

namespace dilated {
namespace kernels {
namespace cpu {

// Returns the lanes below `count` set (none for count <= 0, all 16 from 16).
DA_AMX_TARGET inline __mmask16 FirstLanes(int64_t count) {
  if (count <= 0) return 0;
  if (count >= 16) return 0xffff;
  return static_cast<__mmask16>((1u << count) - 1);
}

// Returns 16 bfloat16 values widened to float32 (exactly).
DA_AMX_TARGET inline __m512 Widen(__m256i bf16) {
  return _mm512_castsi512_ps(
      _mm512_slli_epi32(_mm512_cvtepu16_epi32(bf16), 16));
}

// Returns x rounded to bfloat16 (to nearest even; subnormals flush to zero).
DA_AMX_TARGET inline __m256i ToBf16(__m512 x) {
  return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x));
}

// Transposes the 16 x 16 matrix of 32-bit elements x[row][lane].
DA_AMX_TARGET inline void Transpose16x16(__m512i* x) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(x[i], x[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(x[i], x[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    x[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    x[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    x[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    x[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // x[4b + c] now holds, in its 128-bit lane l, the elements 4l + c of rows
  // 4b .. 4b + 3; a 4 x 4 transpose of 128-bit lanes per c finishes.
  for (int c = 0; c < 4; ++c) {
    const __m512i a0 = _mm512_shuffle_i32x4(x[c], x[4 + c], 0x44);
    const __m512i a1 = _mm512_shuffle_i32x4(x[c], x[4 + c], 0xee);
    const __m512i a2 = _mm512_shuffle_i32x4(x[8 + c], x[12 + c], 0x44);
    const __m512i a3 = _mm512_shuffle_i32x4(x[8 + c], x[12 + c], 0xee);
    t[c] = _mm512_shuffle_i32x4(a0, a2, 0x88);
    t[4 + c] = _mm512_shuffle_i32x4(a0, a2, 0xdd);
    t[8 + c] = _mm512_shuffle_i32x4(a1, a3, 0x88);
    t[12 + c] = _mm512_shuffle_i32x4(a1, a3, 0xdd);
  }
  for (int i = 0; i < 16; ++i) x[i] = t[i];
}

// Returns the planes of a 16-bit dtype: 2 for float16, else 1.
inline int64_t PlanesOf(DataType dtype) {
  return dtype == DataType::kFloat16 ? 2 : 1;
}

// The (A plane, B plane) pairs whose tile products sum to one product:
// hi*hi, then for float16 hi*lo and lo*hi (lo*lo, below 2^-16 of the
// product, is left out).
struct ProductTerms {
  int count;
  int a[3];
  int b[3];
};

inline ProductTerms ProductTermsOf(DataType dtype) {
  if (dtype == DataType::kFloat16) return {3, {0, 0, 1}, {0, 1, 0}};
  return {1, {0, 0, 0}, {0, 0, 0}};
}

// Loads the tile configuration of the kernels on the calling thread: tiles
// 0-7 of 16 rows x 64 bytes.
void AmxBeginThread();

// Releases the calling thread's tile state.
void AmxEndThread();

// Writes `count` stored bfloat16 or float16 elements at `src` as dp values of
// the planes hi (and lo for float16; unused otherwise), zero past count.
// REQUIRES: dp % 16 == 0.
void StageRow(const void* src, DataType dtype, int64_t count, int64_t dp,
              uint16_t* hi, uint16_t* lo);

// Writes `num_rows` rows of dp 16-bit values (row stride dp) as their
// transpose in 32-bit pairs: out[r * out_stride + j] holds elements 2r and
// 2r + 1 of row j (the B operand of a product with these rows as columns).
// REQUIRES: num_rows % 16 == 0; dp % 32 == 0.
void TransposePairs(const uint16_t* rows, int64_t num_rows, int64_t dp,
                    uint32_t* out, int64_t out_stride);

// Writes `num_rows` rows of dp 16-bit values (row stride dp) as pairs of
// rows: out[r * dp + a] holds element a of rows 2r and 2r + 1 (the B operand
// of a product with these rows as its reduction axis).
// REQUIRES: num_rows % 2 == 0; dp % 32 == 0.
void InterleaveRowPairs(const uint16_t* rows, int64_t num_rows, int64_t dp,
                        uint32_t* out);

// Computes the 32 x 32 float32 block C (row stride ldc, in floats) as (or,
// with accumulate, plus) the sum over `terms` of A[a plane] B[b plane]: A
// 32 x k row-major 16-bit planes (row stride lda), B k / 2 x 32 pairs (row
// stride ldb, in pairs). REQUIRES: k % 32 == 0.
void TileBlock32(const uint16_t* const* a, int64_t lda,
                 const uint32_t* const* b, int64_t ldb, int64_t k,
                 const ProductTerms& terms, float* c, int64_t ldc,
                 bool accumulate);

// Stores `count` values src[i] * factor as bfloat16 or float16 at dst.
void StoreScaledRow(const float* src, float factor, DataType dtype,
                    int64_t count, void* dst);

// Stores 16 float32 lanes as bfloat16 at hi and, with lo, the remainders
// x - hi at lo.
DA_AMX_TARGET inline void StoreSplit(__m512 x, uint16_t* hi, uint16_t* lo) {
  const __m256i high = ToBf16(x);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi), high);
  if (lo != nullptr) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo),
                        ToBf16(_mm512_sub_ps(x, Widen(high))));
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_AMX_TILES_H_
