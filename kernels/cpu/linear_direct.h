// File: linear_direct.h
//
// The path of linear_gemm.h for a few rows: y = x W^T + b as dot products of
// x's rows with W's rows, read in place, in tiles of 4 rows x 3 columns.
// Packing W (what the tiled path does once per call) costs as much as
// multiplying a few rows by it, so below LinearDirectRows() rows the product
// skips it. AVX2 and FMA (the library's baseline), so every CPU path can
// take it.
//
// Each output is the sum of its `in` products in a fixed order (eight
// interleaved partial sums over k, added pairwise), whatever the thread
// count; the order differs from the tiled path's, so a row's result may
// differ in its last bits between a call with few rows and one with many.

#ifndef KERNELS_CPU_LINEAR_DIRECT_H_
#define KERNELS_CPU_LINEAR_DIRECT_H_

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/cpu_path.h"
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

// Calls with fewer rows than this take the direct path: kAvx2DirectRows on
// the AVX2 path, kWideDirectRows where the packed tiles are 512 bits wide
// (AVX-512, AMX). docs/PERFORMANCE_MODELS.md has the measurements behind
// them.
int64_t LinearDirectRows(CpuPath path);

// On AVX2 the packed 6 x 16 tiles overtake the direct path between 128 and
// 192 rows (2 threads, the models' widths).
constexpr int64_t kAvx2DirectRows = 160;
// Not measured against the packed 14 x 32 tiles with the 4 x 3 direct tiles.
constexpr int64_t kWideDirectRows = 32;

// As LinearGemmFloat32, on OpenMP threads by groups of 3 output columns
// (with fewer than 3 * threads columns, some threads have none).
// REQUIRES: the arguments as LinearGemmFloat32.
void LinearDirect(const float* x, int64_t rows, int64_t in, int64_t ldx,
                  const float* w, int64_t out, const LinearEpilogue& epilogue,
                  float* y, int64_t ldy);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_LINEAR_DIRECT_H_
