#include "kernels/cpu/tile_gemm_avx512.h"

#include <immintrin.h>

#include "kernels/cpu/simd_exp_avx512.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

// Register block: kMaxRows rows of A times kMaxVectors * 16 columns of B make
// 24 accumulators; with the four B vectors and one broadcast that is 29 of
// the 32 registers, and 24 independent FMA chains hide the FMA latency.
constexpr int kMaxRows = 6;
constexpr int kMaxVectors = 4;

// How A is addressed (as in tile_gemm.cc).
enum class Layout { kRowsAlongK, kColumnsAlongM, kGeneral };

// What happens to the accumulators at the end.
enum class Epilogue { kStore, kAccumulate, kExp2 };

// Column state of the kExp2 epilogue, indexed from the block's first column.
struct ColumnState {
  const float* ref;
  float* sum;
};

template <int kRows, int kVectors, Layout kLayout, Epilogue kEpilogue>
void MicroKernel(int64_t k, const float* a, int64_t a_m, int64_t a_k,
                 const float* b, int64_t ldb, float* c, int64_t ldc,
                 const ColumnState& state) {
  __m512 acc[kRows][kVectors];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) {
      // kAccumulate starts from 0 too and adds C at the end, so that the FMA
      // chains need not wait for C (from L2 in the forward pass's P V
      // products, where it measured 4% slower).
      if (kEpilogue == Epilogue::kExp2) {
        // Starting from -ref saves a subtraction per vector at the end.
        acc[r][v] = _mm512_sub_ps(_mm512_setzero_ps(),
                                  _mm512_loadu_ps(state.ref + 16 * v));
      } else {
        acc[r][v] = _mm512_setzero_ps();
      }
    }
  }
  const float* rows[kRows];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) rows[r] = a + r * a_m;
  const int64_t step = kLayout == Layout::kRowsAlongK ? 1 : a_k;
#pragma GCC unroll 2
  for (int64_t i = 0; i < k; ++i) {
    __m512 bv[kVectors];
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) {
      bv[v] = _mm512_loadu_ps(b + i * ldb + 16 * v);
    }
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const float* x = kLayout == Layout::kColumnsAlongM ? a + i * step + r
                                                         : rows[r] + i * step;
      const __m512 av = _mm512_set1_ps(*x);
#pragma GCC unroll 4
      for (int v = 0; v < kVectors; ++v) {
        acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
      }
    }
  }
  if (kEpilogue != Epilogue::kExp2) {
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
      for (int v = 0; v < kVectors; ++v) {
        float* y = c + r * ldc + 16 * v;
        _mm512_storeu_ps(y, kEpilogue == Epilogue::kAccumulate
                                ? _mm512_add_ps(_mm512_loadu_ps(y), acc[r][v])
                                : acc[r][v]);
      }
    }
    return;
  }
#pragma GCC unroll 4
  for (int v = 0; v < kVectors; ++v) {
    __m512 sum = _mm512_loadu_ps(state.sum + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const __m512 prob = Exp2x16(acc[r][v]);
      _mm512_storeu_ps(c + r * ldc + 16 * v, prob);
      sum = _mm512_add_ps(sum, prob);
    }
    _mm512_storeu_ps(state.sum + 16 * v, sum);
  }
}

using MicroKernelFn = void (*)(int64_t, const float*, int64_t, int64_t,
                               const float*, int64_t, float*, int64_t,
                               const ColumnState&);

// Kernels<layout, epilogue>::table[rows - 1][vectors - 1].
template <Layout kLayout, Epilogue kEpilogue>
struct Kernels {
  static constexpr MicroKernelFn table[kMaxRows][kMaxVectors] = {
      {&MicroKernel<1, 1, kLayout, kEpilogue>,
       &MicroKernel<1, 2, kLayout, kEpilogue>,
       &MicroKernel<1, 3, kLayout, kEpilogue>,
       &MicroKernel<1, 4, kLayout, kEpilogue>},
      {&MicroKernel<2, 1, kLayout, kEpilogue>,
       &MicroKernel<2, 2, kLayout, kEpilogue>,
       &MicroKernel<2, 3, kLayout, kEpilogue>,
       &MicroKernel<2, 4, kLayout, kEpilogue>},
      {&MicroKernel<3, 1, kLayout, kEpilogue>,
       &MicroKernel<3, 2, kLayout, kEpilogue>,
       &MicroKernel<3, 3, kLayout, kEpilogue>,
       &MicroKernel<3, 4, kLayout, kEpilogue>},
      {&MicroKernel<4, 1, kLayout, kEpilogue>,
       &MicroKernel<4, 2, kLayout, kEpilogue>,
       &MicroKernel<4, 3, kLayout, kEpilogue>,
       &MicroKernel<4, 4, kLayout, kEpilogue>},
      {&MicroKernel<5, 1, kLayout, kEpilogue>,
       &MicroKernel<5, 2, kLayout, kEpilogue>,
       &MicroKernel<5, 3, kLayout, kEpilogue>,
       &MicroKernel<5, 4, kLayout, kEpilogue>},
      {&MicroKernel<6, 1, kLayout, kEpilogue>,
       &MicroKernel<6, 2, kLayout, kEpilogue>,
       &MicroKernel<6, 3, kLayout, kEpilogue>,
       &MicroKernel<6, 4, kLayout, kEpilogue>},
  };
};

template <Layout kLayout, Epilogue kEpilogue>
void Gemm(int64_t m, int64_t n, int64_t k, const StridedOperand& a,
          const RowOperand& b, const RowResult& c, const ColumnState& state) {
  // Column panels outermost: a k x 64 panel of B stays in cache while every
  // row block of A passes over it.
  for (int64_t col = 0; col < n; col += 16 * kMaxVectors) {
    const int vectors = n - col >= 16 * kMaxVectors
                            ? kMaxVectors
                            : static_cast<int>((n - col) / 16);
    const ColumnState panel =
        kEpilogue == Epilogue::kExp2
            ? ColumnState{state.ref + col, state.sum + col}
            : state;
    for (int64_t row = 0; row < m; row += kMaxRows) {
      const int rows =
          m - row >= kMaxRows ? kMaxRows : static_cast<int>(m - row);
      Kernels<kLayout, kEpilogue>::table[rows - 1][vectors - 1](
          k, a.data + row * a.m_stride, a.m_stride, a.k_stride, b.data + col,
          b.row_stride, c.data + row * c.row_stride + col, c.row_stride, panel);
    }
  }
}

template <Epilogue kEpilogue>
void DispatchLayout(int64_t m, int64_t n, int64_t k, const StridedOperand& a,
                    const RowOperand& b, const RowResult& c,
                    const ColumnState& state) {
  if (a.k_stride == 1) {
    Gemm<Layout::kRowsAlongK, kEpilogue>(m, n, k, a, b, c, state);
  } else if (a.m_stride == 1) {
    Gemm<Layout::kColumnsAlongM, kEpilogue>(m, n, k, a, b, c, state);
  } else {
    Gemm<Layout::kGeneral, kEpilogue>(m, n, k, a, b, c, state);
  }
}

}  // namespace

void TileGemmAvx512(int64_t m, int64_t n, int64_t k, const StridedOperand& a,
                    const RowOperand& b, const RowResult& c, bool accumulate) {
  const ColumnState none{nullptr, nullptr};
  if (accumulate) {
    DispatchLayout<Epilogue::kAccumulate>(m, n, k, a, b, c, none);
  } else {
    DispatchLayout<Epilogue::kStore>(m, n, k, a, b, c, none);
  }
}

void TileGemmExp2Avx512(int64_t m, int64_t n, int64_t k,
                        const StridedOperand& a, const RowOperand& b,
                        const RowResult& c, const float* ref, float* col_sum) {
  DispatchLayout<Epilogue::kExp2>(m, n, k, a, b, c, {ref, col_sum});
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
