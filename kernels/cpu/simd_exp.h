// File: simd_exp.h
//
// A vectorised 2^x for eight floats (AVX2 + FMA), the exponential of the
// attention kernels' softmax. Relative error <= 3e-7 for x in [-126, 0]
// (degree-5 polynomial on [-1/2, 1/2]); 2^0 is exactly 1; results below
// 2^-126 flush to zero, so 2^(-inf) is exactly 0.
//
// REQUIRES: x <= 127 (softmax arguments are <= 0). NaN inputs give 0.

#ifndef KERNELS_CPU_SIMD_EXP_H_
#define KERNELS_CPU_SIMD_EXP_H_

#include <immintrin.h>

namespace dilated {
namespace kernels {
namespace cpu {

// Returns 2^x lane by lane.
inline __m256 Exp2(__m256 x) {
  // Below -127 the result is flushed to zero; clamping keeps the exponent
  // arithmetic in range (and turns -inf into the exact 0 of 2^-127 below).
  x = _mm256_max_ps(x, _mm256_set1_ps(-127.0f));
  const __m256 n =
      _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_sub_ps(x, n);  // In [-1/2, 1/2].
  // 1 + f q(f), q interpolating (2^f - 1) / f at the Chebyshev nodes of
  // [-1/2, 1/2]: max relative error 2.0e-7 (2.5e-7 in float arithmetic), and
  // 2^0 is exactly 1.
  __m256 p = _mm256_set1_ps(1.3381302537301026e-3f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.666368515384533e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550381013796484e-2f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022349038020388e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931471805599453e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
  // 2^n from the exponent field; n = -127 gives the bit pattern 0, i.e. 0.0f.
  const __m256i bits = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_SIMD_EXP_H_
