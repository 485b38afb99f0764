// The AVX2 (x86-64-v3) step of the forward pass: one key tile folded into
// one query block's online softmax (flash_forward_tile.h).

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "kernels/cpu/flash_forward_tile.h"
#include "kernels/cpu/simd_exp.h"
#include "kernels/cpu/tile_gemm.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

constexpr int64_t kBlockQ = kForwardBlockQ;
constexpr int64_t kBlockK = kForwardBlockK;

// Columns of one TileGemm panel; causal diagonal tiles are cut into panels so
// that keys after every query of a panel are never computed.
constexpr int64_t kPanel = 16;

// Sets the scores of keys after their query to -inf: lane l of column vector
// `vec` is query i0 + 8 * vec + l, row jj is key j0 + jj.
void MaskAfterDiagonal(int64_t i0, int64_t j0, int64_t keys, float* st) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 minus_inf =
      _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t vec = 0; vec < kBlockQ / 8; ++vec) {
    const __m256i query = _mm256_add_epi32(
        _mm256_set1_epi32(static_cast<int32_t>(i0 + 8 * vec - j0)), lane);
    for (int64_t jj = 0; jj < keys; ++jj) {
      const __m256 masked = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
          _mm256_set1_epi32(static_cast<int32_t>(jj)), query));
      float* x = st + jj * kBlockQ + 8 * vec;
      _mm256_storeu_ps(x,
                       _mm256_blendv_ps(_mm256_loadu_ps(x), minus_inf, masked));
    }
  }
}

// Turns the scores of `keys` rows of st into probabilities 2^(s - max)
// against the running max, updating the block's max and sum and rescaling
// its output when the max moves.
void OnlineSoftmax(int64_t keys, int64_t head_dim, bool first_tile, float* st,
                   QueryBlock* block) {
  float* ot = block->ot;
  for (int64_t vec = 0; vec < kBlockQ / 8; ++vec) {
    const int64_t col = 8 * vec;
    const float* x = st + col;
    // Four partial maxima and sums: independent dependency chains.
    __m256 max4[4] = {_mm256_loadu_ps(x), _mm256_loadu_ps(x),
                      _mm256_loadu_ps(x), _mm256_loadu_ps(x)};
    int64_t jj = 1;
    for (; jj + 4 <= keys; jj += 4) {
      for (int u = 0; u < 4; ++u) {
        max4[u] =
            _mm256_max_ps(max4[u], _mm256_loadu_ps(x + (jj + u) * kBlockQ));
      }
    }
    for (; jj < keys; ++jj) {
      max4[0] = _mm256_max_ps(max4[0], _mm256_loadu_ps(x + jj * kBlockQ));
    }
    const __m256 tile_max = _mm256_max_ps(_mm256_max_ps(max4[0], max4[1]),
                                          _mm256_max_ps(max4[2], max4[3]));
    const __m256 old_max = _mm256_loadu_ps(block->row_max + col);
    const bool moves =
        first_tile ||
        _mm256_movemask_ps(_mm256_cmp_ps(
            tile_max, _mm256_add_ps(old_max, _mm256_set1_ps(kMaxSlack)),
            _CMP_GT_OQ)) != 0;
    const __m256 new_max = moves ? _mm256_max_ps(old_max, tile_max) : old_max;

    __m256 sum4[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(),
                      _mm256_setzero_ps(), _mm256_setzero_ps()};
    jj = 0;
    for (; jj + 4 <= keys; jj += 4) {
      for (int u = 0; u < 4; ++u) {
        float* y = st + (jj + u) * kBlockQ + col;
        const __m256 prob = Exp2(_mm256_sub_ps(_mm256_loadu_ps(y), new_max));
        _mm256_storeu_ps(y, prob);
        sum4[u] = _mm256_add_ps(sum4[u], prob);
      }
    }
    for (; jj < keys; ++jj) {
      float* y = st + jj * kBlockQ + col;
      const __m256 prob = Exp2(_mm256_sub_ps(_mm256_loadu_ps(y), new_max));
      _mm256_storeu_ps(y, prob);
      sum4[0] = _mm256_add_ps(sum4[0], prob);
    }
    const __m256 sum = _mm256_add_ps(_mm256_add_ps(sum4[0], sum4[1]),
                                     _mm256_add_ps(sum4[2], sum4[3]));
    float* row_sum = block->row_sum + col;
    if (first_tile) {
      _mm256_storeu_ps(block->row_max + col, new_max);
      _mm256_storeu_ps(row_sum, sum);
      continue;
    }
    if (!moves) {
      _mm256_storeu_ps(row_sum, _mm256_add_ps(_mm256_loadu_ps(row_sum), sum));
      continue;
    }
    _mm256_storeu_ps(block->row_max + col, new_max);
    const __m256 alpha = Exp2(_mm256_sub_ps(old_max, new_max));
    _mm256_storeu_ps(row_sum,
                     _mm256_fmadd_ps(_mm256_loadu_ps(row_sum), alpha, sum));
    for (int64_t a = 0; a < head_dim; ++a) {
      float* o = ot + a * kBlockQ + col;
      _mm256_storeu_ps(o, _mm256_mul_ps(_mm256_loadu_ps(o), alpha));
    }
  }
}

// Multiplies the probabilities of `keys` rows of st by the block's dropout
// factors (same layout).
void ApplyDropout(int64_t keys, const float* factors, float* st) {
  for (int64_t x = 0; x < keys * kBlockQ; x += 8) {
    _mm256_storeu_ps(st + x, _mm256_mul_ps(_mm256_loadu_ps(st + x),
                                           _mm256_loadu_ps(factors + x)));
  }
}

}  // namespace

// Folds key tile j0 .. j0 + keys - 1 (k_tile, v_tile) into `block`.
void AttendToTileAvx2(const ForwardParams& p, int64_t j0, int64_t keys,
                      const float* k_tile, const float* v_tile, float* st,
                      QueryBlock* block) {
  const int64_t d = p.head_dim;
  const StridedOperand k_op{k_tile, d, 1};  // (key, dim)
  const StridedOperand v_op{v_tile, 1, d};  // (dim, key)
  float* qt = block->qt;
  float* ot = block->ot;
  const int64_t i0 = block->i0;
  const bool diagonal = p.is_causal && j0 + keys - 1 > i0;
  if (!diagonal) {
    TileGemm(keys, kBlockQ, d, k_op, {qt, kBlockQ}, {st, kBlockQ}, false);
    OnlineSoftmax(keys, d, j0 == 0, st, block);
    if (block->dropout != nullptr) ApplyDropout(keys, block->dropout, st);
    TileGemm(d, kBlockQ, keys, v_op, {st, kBlockQ}, {ot, kBlockQ}, true);
    return;
  }
  // Per panel of queries, only the keys at or before its last query.
  for (int64_t c0 = 0; c0 < kBlockQ; c0 += kPanel) {
    const int64_t visible = std::min(keys, i0 + c0 + kPanel - j0);
    if (visible <= 0) continue;
    TileGemm(visible, kPanel, d, k_op, {qt + c0, kBlockQ}, {st + c0, kBlockQ},
             false);
  }
  MaskAfterDiagonal(i0, j0, keys, st);
  OnlineSoftmax(keys, d, j0 == 0, st, block);
  if (block->dropout != nullptr) ApplyDropout(keys, block->dropout, st);
  for (int64_t c0 = 0; c0 < kBlockQ; c0 += kPanel) {
    const int64_t visible = std::min(keys, i0 + c0 + kPanel - j0);
    if (visible <= 0) continue;
    TileGemm(d, kPanel, visible, v_op, {st + c0, kBlockQ}, {ot + c0, kBlockQ},
             true);
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
