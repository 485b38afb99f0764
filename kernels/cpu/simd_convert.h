// File: simd_convert.h
//
// Vectorised (AVX2 + F16C) conversion of stored rows to and from float32, for
// the tile loads and the output and gradient stores of the fused kernels.
// Bit-exact with LoadRow and StoreRow in row_io.h: float16 and bfloat16 widen
// to float32 exactly, subnormals included (except that F16C makes signalling
// float16 NaNs quiet, keeping sign and payload); float32 rounds to the
// nearest float16 or bfloat16, ties to even, with the NaNs that FloatToHalf
// and FloatToBFloat16 (numeric.h) give.

#ifndef KERNELS_CPU_SIMD_CONVERT_H_
#define KERNELS_CPU_SIMD_CONVERT_H_

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/dilated_params.h"
#include "kernels/numeric.h"

namespace dilated {
namespace kernels {
namespace cpu {

// Converts `count` stored elements at `src` to float32 at `dst`.
inline void LoadRowFast(const void* src, DataType dtype, int64_t count,
                        float* dst) {
  if (dtype == DataType::kFloat32) {
    std::memcpy(dst, src, count * sizeof(float));
    return;
  }
  const uint16_t* h = static_cast<const uint16_t*>(src);
  int64_t i = 0;
  if (dtype == DataType::kFloat16) {
    for (; i + 8 <= count; i += 8) {
      const __m128i x =
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i));
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(x));
    }
    for (; i < count; ++i) dst[i] = HalfToFloat(h[i]);
  } else {
    for (; i + 8 <= count; i += 8) {
      const __m128i x =
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i));
      const __m256i wide = _mm256_slli_epi32(_mm256_cvtepu16_epi32(x), 16);
      _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(wide));
    }
    for (; i < count; ++i) dst[i] = BFloat16ToFloat(h[i]);
  }
}

// Returns 8 float32 lanes rounded to bfloat16 as FloatToBFloat16 does, in
// the low 16 bits of each 32-bit lane.
inline __m256i RoundToBFloat16(__m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i rounding =
      _mm256_add_epi32(_mm256_set1_epi32(0x7fff),
                       _mm256_and_si256(_mm256_srli_epi32(u, 16), one));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, rounding), 16);
  // NaN: the high half, made quiet.
  const __m256i quiet =
      _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x0040));
  const __m256i is_nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  return _mm256_blendv_epi8(rounded, quiet, is_nan);
}

// Returns 8 float32 lanes rounded to float16 as FloatToHalf does.
inline __m128i RoundToHalf(__m256 x) {
  // F16C rounds ties to even and overflows to infinity as FloatToHalf does;
  // NaNs become the quiet NaN of their sign first, which converts to
  // FloatToHalf's sign | 0x7e00.
  const __m256 is_nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  const __m256 quiet = _mm256_or_ps(
      _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MIN))),
      _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000)));
  return _mm256_cvtps_ph(_mm256_blendv_ps(x, quiet, is_nan),
                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// Stores `count` float32 values of `src` as `dtype` at `dst`.
inline void StoreRowFast(const float* src, DataType dtype, int64_t count,
                         void* dst) {
  if (dtype == DataType::kFloat32) {
    std::memcpy(dst, src, count * sizeof(float));
    return;
  }
  uint16_t* h = static_cast<uint16_t*>(dst);
  int64_t i = 0;
  if (dtype == DataType::kFloat16) {
    for (; i + 8 <= count; i += 8) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i),
                       RoundToHalf(_mm256_loadu_ps(src + i)));
    }
    for (; i < count; ++i) h[i] = FloatToHalf(src[i]);
  } else {
    for (; i + 16 <= count; i += 16) {
      const __m256i low = RoundToBFloat16(_mm256_loadu_ps(src + i));
      const __m256i high = RoundToBFloat16(_mm256_loadu_ps(src + i + 8));
      // packus works within 128-bit lanes: reorder its 64-bit quarters.
      const __m256i packed = _mm256_permute4x64_epi64(
          _mm256_packus_epi32(low, high), _MM_SHUFFLE(3, 1, 2, 0));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + i), packed);
    }
    for (; i < count; ++i) h[i] = FloatToBFloat16(src[i]);
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_SIMD_CONVERT_H_
