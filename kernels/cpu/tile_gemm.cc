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

// How A is addressed; the common layouts get one running pointer instead of
// one per row.
enum class Layout {
  kRowsAlongK,     // k_stride == 1: each A row is contiguous along k.
  kColumnsAlongM,  // m_stride == 1: the kRows values of one k are contiguous.
  kGeneral,
};

// C[0:kRows, 0:8*kVectors] (+)= A[0:kRows, 0:k] B[0:k, 0:8*kVectors].
template <int kRows, int kVectors, Layout kLayout>
void MicroKernel(int64_t k, const float* a, int64_t a_m, int64_t a_k,
                 const float* b, int64_t ldb, float* c, int64_t ldc,
                 bool accumulate) {
  __m256 acc[kRows][kVectors];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) {
      acc[r][v] = accumulate ? _mm256_loadu_ps(c + r * ldc + 8 * v)
                             : _mm256_setzero_ps();
    }
  }
  // Row r of A at rows[r] + i * step for k index i.
  const float* rows[kRows];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) rows[r] = a + r * a_m;
  const int64_t step = kLayout == Layout::kRowsAlongK ? 1 : a_k;
#pragma GCC unroll 2
  for (int64_t i = 0; i < k; ++i) {
    __m256 bv[kVectors];
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) {
      bv[v] = _mm256_loadu_ps(b + i * ldb + 8 * v);
    }
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const float* x = kLayout == Layout::kColumnsAlongM ? a + i * step + r
                                                         : rows[r] + i * step;
      const __m256 av = _mm256_broadcast_ss(x);
#pragma GCC unroll 4
      for (int v = 0; v < kVectors; ++v) {
        acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
      }
    }
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

// Kernels<layout>::table[rows - 1][vectors - 1].
template <Layout kLayout>
struct Kernels {
  static constexpr MicroKernelFn table[kMaxRows][kMaxVectors] = {
      {&MicroKernel<1, 1, kLayout>, &MicroKernel<1, 2, kLayout>},
      {&MicroKernel<2, 1, kLayout>, &MicroKernel<2, 2, kLayout>},
      {&MicroKernel<3, 1, kLayout>, &MicroKernel<3, 2, kLayout>},
      {&MicroKernel<4, 1, kLayout>, &MicroKernel<4, 2, kLayout>},
      {&MicroKernel<5, 1, kLayout>, &MicroKernel<5, 2, kLayout>},
      {&MicroKernel<6, 1, kLayout>, &MicroKernel<6, 2, kLayout>},
  };
};

template <Layout kLayout>
void Gemm(int64_t m, int64_t n, int64_t k, const StridedOperand& a,
          const RowOperand& b, const RowResult& c, bool accumulate) {
  // Column panels outermost: a k x 16 panel of B stays in L1 while every row
  // block of A passes over it.
  for (int64_t col = 0; col < n; col += 8 * kMaxVectors) {
    const int vectors = n - col >= 8 * kMaxVectors
                            ? kMaxVectors
                            : static_cast<int>((n - col) / 8);
    for (int64_t row = 0; row < m; row += kMaxRows) {
      const int rows =
          m - row >= kMaxRows ? kMaxRows : static_cast<int>(m - row);
      Kernels<kLayout>::table[rows - 1][vectors - 1](
          k, a.data + row * a.m_stride, a.m_stride, a.k_stride, b.data + col,
          b.row_stride, c.data + row * c.row_stride + col, c.row_stride,
          accumulate);
    }
  }
}

}  // namespace

void TileGemm(int64_t m, int64_t n, int64_t k, const StridedOperand& a,
              const RowOperand& b, const RowResult& c, bool accumulate) {
  if (a.k_stride == 1) {
    Gemm<Layout::kRowsAlongK>(m, n, k, a, b, c, accumulate);
  } else if (a.m_stride == 1) {
    Gemm<Layout::kColumnsAlongM>(m, n, k, a, b, c, accumulate);
  } else {
    Gemm<Layout::kGeneral>(m, n, k, a, b, c, accumulate);
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
