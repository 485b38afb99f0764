// File: simd_exp_avx512.h
//
// A vectorised 2^x for sixteen floats (AVX-512 F), the exponential of the
// AVX-512 softmax: the polynomial of simd_exp.h on x - round(x), scaled by
// 2^round(x) with one vscalefps. Relative error <= 3e-7 for x in [-126, 0];
// 2^0 is exactly 1. Exp2x16 gives exactly 0 for x < -126 (and -inf, and
// NaN), so no subnormal value comes out of it.
//
// Include only from code compiled with -mavx512f (Exp2x16Coarse: and
// -mavx512dq). x above 128 gives +inf.

#ifndef KERNELS_CPU_SIMD_EXP_AVX512_H_
#define KERNELS_CPU_SIMD_EXP_AVX512_H_

#include <immintrin.h>

namespace dilated {
namespace kernels {
namespace cpu {

// The degree-5 polynomial of simd_exp.h on f in [-1/2, 1/2]: 1 + f q(f), q
// interpolating (2^f - 1) / f at the Chebyshev nodes; 2^0 is exactly 1.
inline __m512 Exp2Polynomial(__m512 f) {
  __m512 p = _mm512_set1_ps(1.3381302537301026e-3f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.666368515384533e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550381013796484e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022349038020388e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931471805599453e-1f));
  return _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
}

// Returns 2^x lane by lane.
inline __m512 Exp2x16(__m512 x) {
  // Lanes below -126 (-inf and NaN too) are zeroed by the final mask; their
  // NaN intermediates are never seen.
  const __mmask16 keep =
      _mm512_cmp_ps_mask(x, _mm512_set1_ps(-126.0f), _CMP_GE_OQ);
  const __m512 n =
      _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);  // In [-1/2, 1/2].
  return _mm512_maskz_scalef_ps(keep, Exp2Polynomial(f), n);
}

// 2^x to a relative error <= 7e-6 for x in [-126, 128], for probabilities
// that are rounded to bfloat16 (or to a pair of them) before use, below
// whose resolution that error lies: a cubic q in 1 + f q(f) interpolating
// (2^f - 1) / f at the Chebyshev nodes, one product fewer than Exp2x16.
// Lanes below -126 (-inf too) give 2^-126, a normal float, rather than 0:
// callers zero by mask the lanes that must be 0. NaN stays NaN.
inline __m512 Exp2x16Coarse(__m512 x) {
  // max(c, x) returns its second operand when either is NaN.
  x = _mm512_max_ps(_mm512_set1_ps(-126.0f), x);
  // f = x - round(x) in one instruction (AVX512-DQ), then n = x - f, which
  // is exact.
  const __m512 f =
      _mm512_reduce_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 n = _mm512_sub_ps(x, f);
  __m512 p = _mm512_set1_ps(9.656710288525713e-3f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.583828294621813e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022530097412598e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931367338836215e-1f));
  return _mm512_scalef_ps(_mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f)), n);
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_SIMD_EXP_AVX512_H_
