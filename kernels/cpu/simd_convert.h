// File: simd_convert.h
//
// Vectorised (AVX2 + F16C) conversion of stored rows to float32, for the tile
// loads of the fused kernels. Bit-exact with LoadRow in row_io.h: float16 and
// bfloat16 widen to float32 exactly, subnormals included.

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

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_SIMD_CONVERT_H_
