// File: linear_direct.h
//
// The path of linear_gemm.h for a few rows: y = x W^T + b as dot products of
// x's rows with W's rows, read in place. Packing W (what the tiled path does
// once per call) costs as much as multiplying a few rows by it, so below
// kLinearDirectRows rows the product skips it. AVX2 and FMA (the library's
// baseline), so every CPU path takes it.
//
// Each output is the sum of its `in` products in a fixed order (eight
// interleaved partial sums over k, added pairwise), whatever the thread
// count; the order differs from the tiled path's, so a row's result may
// differ in its last bits between a call with few rows and one with many.

#ifndef KERNELS_CPU_LINEAR_DIRECT_H_
#define KERNELS_CPU_LINEAR_DIRECT_H_

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/linear_gemm.h"

namespace dilated {
namespace kernels {
namespace cpu {

// The lanes of an AVX2 masked load or store of `count` consecutive floats:
// lanes below `count` set (none for count <= 0, all for count >= 8).
inline __m256i LanesBelow(int64_t count) {
  const int clamped = static_cast<int>(count < 0 ? 0 : count > 8 ? 8 : count);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(clamped),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Calls with fewer rows than this take the direct path.
constexpr int64_t kLinearDirectRows = 32;

// As LinearGemmFloat32, on OpenMP threads by ranges of output columns.
// REQUIRES: the arguments as LinearGemmFloat32.
void LinearDirect(const float* x, int64_t rows, int64_t in, int64_t ldx,
                  const float* w, int64_t out, const LinearEpilogue& epilogue,
                  float* y, int64_t ldy);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_LINEAR_DIRECT_H_
