#include "kernels/cpu/tile_gemm.h"

#include <immintrin.h>

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

// Register block: kMaxRows rows of A times kMaxVectors * 8 columns of B make
// 12 accumulators, which with the B vectors and one broadcast fill the 16 AVX
// registers; 12 independent FMA chains hide the FMA latency on two pipes.
constexpr int kMaxRows = 6;
constexpr int kMaxVectors = 2;

// C[0:kRows, 0:8*kVectors] (+)= A[0:kRows, 0:k] B[0:k, 0:8*kVectors].
template <int kRows, int kVectors>
void MicroKernel(int64_t k, const float* a, int64_t a_m, int64_t a_k,
                 const float* b, int64_t ldb, float* c, int64_t ldc,
                 bool accumulate) {
  __m256 acc[kRows][kVectors];
  if (accumulate) {
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
      for (int v = 0; v < kVectors; ++v) {
        acc[r][v] = _mm256_loadu_ps(c + r * ldc + 8 * v);
      }
    }
  } else {
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
      for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm256_setzero_ps();
    }
  }
  const float* rows[kRows];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) rows[r] = a + r * a_m;
  for (int64_t i = 0; i < k; ++i) {
    __m256 bv[kVectors];
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) bv[v] = _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const __m256 av = _mm256_broadcast_ss(rows[r]);
#pragma GCC unroll 4
      for (int v = 0; v < kVectors; ++v) {
        acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
      }
      rows[r] += a_k;
    }
    b += ldb;
  }
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) {
      _mm256_storeu_ps(c + r * ldc + 8 * v, acc[r][v]);
    }
  }
}

using MicroKernelFn = void (*)(int64_t, const float*, int64_t, int64_t,
                               const float*, int64_t, float*, int64_t, bool);

// kKernels[rows - 1][vectors - 1].
constexpr MicroKernelFn kKernels[kMaxRows][kMaxVectors] = {
    {&MicroKernel<1, 1>, &MicroKernel<1, 2>},
    {&MicroKernel<2, 1>, &MicroKernel<2, 2>},
    {&MicroKernel<3, 1>, &MicroKernel<3, 2>},
    {&MicroKernel<4, 1>, &MicroKernel<4, 2>},
    {&MicroKernel<5, 1>, &MicroKernel<5, 2>},
    {&MicroKernel<6, 1>, &MicroKernel<6, 2>},
};

}  // namespace

void TileGemm(int64_t m, int64_t n, int64_t k, const StridedOperand& a,
              const RowOperand& b, const RowResult& c, bool accumulate) {
  // Column panels outermost: a k x 16 panel of B stays in L1 while every row
  // block of A passes over it.
  for (int64_t col = 0; col < n; col += 8 * kMaxVectors) {
    const int vectors = n - col >= 8 * kMaxVectors
                            ? kMaxVectors
                            : static_cast<int>((n - col) / 8);
    int64_t row = 0;
    for (; row + kMaxRows <= m; row += kMaxRows) {
      kKernels[kMaxRows - 1][vectors - 1](
          k, a.data + row * a.m_stride, a.m_stride, a.k_stride, b.data + col,
          b.row_stride, c.data + row * c.row_stride + col, c.row_stride,
          accumulate);
    }
    if (row < m) {
      kKernels[m - row - 1][vectors - 1](
          k, a.data + row * a.m_stride, a.m_stride, a.k_stride, b.data + col,
          b.row_stride, c.data + row * c.row_stride + col, c.row_stride,
          accumulate);
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
