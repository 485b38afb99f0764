// File: exp2_on_fma.h
//
// 2^x from adds, fused multiply-adds and an integer add, for kernels whose
// exponentials would otherwise all go to one special-function unit: at
// head_dim 64 the flash forward's softmax needs as many MUFU cycles per key
// tile as its two products need tensor-core cycles, so moving a share of the
// exponentials to the FMA pipe frees one of the two limits. Host and device
// code (the host test checks the error bound below).

#ifndef KERNELS_EXP2_ON_FMA_H_
#define KERNELS_EXP2_ON_FMA_H_

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/dilated_params.h"  // DA_HOST_DEVICE

namespace dilated {
namespace kernels {

DA_HOST_DEVICE inline uint32_t FloatBits(float x) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(x);
#else
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits;
#endif
}

DA_HOST_DEVICE inline float FloatFromBits(uint32_t bits) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(bits);
#else
  float x;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
#endif
}

// Returns 2^x with relative error at most 7.6e-5 (under half a float16 ulp)
// for -125 <= x < 128; for smaller x (and -inf) a value in [0, 2^-125]
// rather than the exact one. x = j + f with j the nearest integer and
// |f| <= 1/2; 2^f by a cubic fitted for relative error on [-1/2, 1/2]; j
// added to the exponent field.
DA_HOST_DEVICE inline float Exp2OnFma(float x) {
  // Adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits
  // (|x| < 2^22); shifted left by 23 they become j in the exponent field
  // while the sum's own exponent bits shift out.
  constexpr float kRoundToInteger = 12582912.0f;
  x = x > -126.0f ? x : -126.0f;
  const float t = x + kRoundToInteger;
  const float f = x - (t - kRoundToInteger);
  float p = fmaf(0.05516926f, f, 0.24260516f);
  p = fmaf(p, f, 0.69326085f);
  p = fmaf(p, f, 0.99992847f);
  return FloatFromBits(FloatBits(p) + (FloatBits(t) << 23));
}

}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_EXP2_ON_FMA_H_
