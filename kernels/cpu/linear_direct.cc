#include "kernels/cpu/linear_direct.h"

#include <immintrin.h>

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

// Returns the sum of the eight lanes, in a fixed order.
float HorizontalSum(__m256 v) {
  const __m128 half =
      _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 pairs = _mm_add_ps(half, _mm_movehl_ps(half, half));
  return _mm_cvtss_f32(_mm_add_ss(pairs, _mm_movehdup_ps(pairs)));
}

// Writes y[r][j] for kRows rows (x and y at their first row) and one column
// j (w_row = w[j]): two sets of kRows accumulators over alternate 8-wide
// blocks of k, so that each FMA chain waits on itself only every other
// block.
template <int kRows>
void DotRows(const float* x, int64_t ldx, const float* w_row, int64_t in,
             float bias, bool relu, float* y, int64_t ldy) {
  __m256 even[kRows];
  __m256 odd[kRows];
  for (int r = 0; r < kRows; ++r) {
    even[r] = _mm256_setzero_ps();
    odd[r] = _mm256_setzero_ps();
  }
  int64_t k = 0;
  for (; k + 16 <= in; k += 16) {
    const __m256 w0 = _mm256_loadu_ps(w_row + k);
    const __m256 w1 = _mm256_loadu_ps(w_row + k + 8);
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      even[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * ldx + k), w0, even[r]);
      odd[r] =
          _mm256_fmadd_ps(_mm256_loadu_ps(x + r * ldx + k + 8), w1, odd[r]);
    }
  }
  for (; k < in; k += 8) {
    const __m256i lanes = LanesBelow(in - k);
    const __m256 w0 = _mm256_maskload_ps(w_row + k, lanes);
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      even[r] = _mm256_fmadd_ps(_mm256_maskload_ps(x + r * ldx + k, lanes), w0,
                                even[r]);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    float value = HorizontalSum(_mm256_add_ps(even[r], odd[r])) + bias;
    if (relu && value < 0.0f) value = 0.0f;
    y[r * ldy] = value;
  }
}

using DotFunction = void (*)(const float*, int64_t, const float*, int64_t,
                             float, bool, float*, int64_t);

// kDots[r - 1] handles r rows at a time.
constexpr DotFunction kDots[4] = {DotRows<1>, DotRows<2>, DotRows<3>,
                                  DotRows<4>};

}  // namespace

void LinearDirect(const float* x, int64_t rows, int64_t in, int64_t ldx,
                  const float* w, int64_t out, const LinearEpilogue& epilogue,
                  float* y, int64_t ldy) {
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < out; ++j) {
    const float bias = epilogue.bias == nullptr ? 0.0f : epilogue.bias[j];
    for (int64_t r = 0; r < rows; r += 4) {
      const int count = static_cast<int>(rows - r < 4 ? rows - r : 4);
      kDots[count - 1](x + r * ldx, ldx, w + j * in, in, bias, epilogue.relu,
                       y + r * ldy + j, ldy);
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
