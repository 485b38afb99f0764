// The AVX-512 step of the forward pass: one key tile folded into one query
// block's online softmax (flash_forward_tile.h), with sixteen queries per
// vector.
//
// A tile after the block's first is computed by one fused product,
// TileGemmExp2Avx512: the probabilities 2^(s - row_max) against the running
// max are formed while the scores are still in registers, with their sums on
// the side. Only when a query's probabilities sum to more than 2^kMaxSlack
// (which a score more than kMaxSlack above the running max implies; the
// first tiles, mostly) are the scores recomputed and passed through the
// two-pass online softmax, which moves the max and rescales the output. First
// tiles and causal diagonal tiles take that path directly.
//
// Compiled with -mavx512f and friends: keep it free of inline functions
// shared with other files (std:: templates included), whose out-of-line
// copies the linker could pick for the AVX2 code.

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/flash_forward_tile.h"
#include "kernels/cpu/simd_exp_avx512.h"
#include "kernels/cpu/tile_gemm_avx512.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

constexpr int64_t kBlockQ = kForwardBlockQ;
constexpr int64_t kVectors = kBlockQ / 16;
// Columns of one panel; causal diagonal tiles are cut into panels so that
// keys after every query of a panel are never computed.
constexpr int64_t kPanel = 16;

int64_t Min(int64_t a, int64_t b) { return a < b ? a : b; }

__m512 MinusInfinity() { return _mm512_set1_ps(-__builtin_inff()); }

// Sets the scores of keys after their query to -inf: lane l of column vector
// `vec` is query i0 + 16 * vec + l, row jj is key j0 + jj.
void MaskAfterDiagonal(int64_t i0, int64_t j0, int64_t keys, float* st) {
  const __m512i lane =
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t vec = 0; vec < kVectors; ++vec) {
    const __m512i query = _mm512_add_epi32(
        _mm512_set1_epi32(static_cast<int32_t>(i0 + 16 * vec - j0)), lane);
    for (int64_t jj = 0; jj < keys; ++jj) {
      const __mmask16 masked = _mm512_cmpgt_epi32_mask(
          _mm512_set1_epi32(static_cast<int32_t>(jj)), query);
      float* x = st + jj * kBlockQ + 16 * vec;
      _mm512_mask_storeu_ps(x, masked, MinusInfinity());
    }
  }
}

// Multiplies the column vector `col` of the output tile by alpha.
void RescaleOutput(int64_t head_dim, int64_t col, __m512 alpha, float* ot) {
  for (int64_t a = 0; a < head_dim; ++a) {
    float* o = ot + a * kBlockQ + col;
    _mm512_storeu_ps(o, _mm512_mul_ps(_mm512_loadu_ps(o), alpha));
  }
}

// Turns the scores of `keys` rows of st into probabilities 2^(s - max)
// against the running max, updating the block's max and sum and rescaling
// its output where the max moves (by more than kMaxSlack, or on the first
// tile).
void OnlineSoftmax(int64_t keys, int64_t head_dim, bool first_tile, float* st,
                   QueryBlock* block) {
  for (int64_t vec = 0; vec < kVectors; ++vec) {
    const int64_t col = 16 * vec;
    const float* x = st + col;
    __m512 max2[2] = {_mm512_loadu_ps(x), _mm512_loadu_ps(x)};
    int64_t jj = 1;
    for (; jj + 2 <= keys; jj += 2) {
      max2[0] = _mm512_max_ps(max2[0], _mm512_loadu_ps(x + jj * kBlockQ));
      max2[1] = _mm512_max_ps(max2[1], _mm512_loadu_ps(x + (jj + 1) * kBlockQ));
    }
    if (jj < keys) {
      max2[0] = _mm512_max_ps(max2[0], _mm512_loadu_ps(x + jj * kBlockQ));
    }
    const __m512 tile_max = _mm512_max_ps(max2[0], max2[1]);
    const __m512 old_max = _mm512_loadu_ps(block->row_max + col);
    const bool moves =
        first_tile ||
        _mm512_cmp_ps_mask(tile_max,
                           _mm512_add_ps(old_max, _mm512_set1_ps(kMaxSlack)),
                           _CMP_GT_OQ) != 0;
    const __m512 new_max = moves ? _mm512_max_ps(old_max, tile_max) : old_max;
    __m512 sum2[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    for (jj = 0; jj < keys; ++jj) {
      float* y = st + jj * kBlockQ + col;
      const __m512 prob = Exp2x16(_mm512_sub_ps(_mm512_loadu_ps(y), new_max));
      _mm512_storeu_ps(y, prob);
      sum2[jj & 1] = _mm512_add_ps(sum2[jj & 1], prob);
    }
    const __m512 sum = _mm512_add_ps(sum2[0], sum2[1]);
    float* row_sum = block->row_sum + col;
    if (first_tile) {
      _mm512_storeu_ps(block->row_max + col, new_max);
      _mm512_storeu_ps(row_sum, sum);
      continue;
    }
    if (!moves) {
      _mm512_storeu_ps(row_sum, _mm512_add_ps(_mm512_loadu_ps(row_sum), sum));
      continue;
    }
    _mm512_storeu_ps(block->row_max + col, new_max);
    const __m512 alpha = Exp2x16(_mm512_sub_ps(old_max, new_max));
    _mm512_storeu_ps(row_sum,
                     _mm512_fmadd_ps(_mm512_loadu_ps(row_sum), alpha, sum));
    RescaleOutput(head_dim, col, alpha, block->ot);
  }
}

// Tries the fused product for a full-width tile after the first: returns
// false, with st holding garbage, when the probabilities of some query sum
// to more than 2^kMaxSlack (always the case when one of its scores exceeds
// its running max by more than kMaxSlack, and rare otherwise); then the max
// has to move. Otherwise st holds the probabilities and the block's sums are
// updated.
bool FusedScores(const StridedOperand& k_op, int64_t keys, int64_t head_dim,
                 float* st, QueryBlock* block) {
  alignas(64) float tile_sum[kBlockQ];
  for (int64_t vec = 0; vec < kVectors; ++vec) {
    _mm512_store_ps(tile_sum + 16 * vec, _mm512_setzero_ps());
  }
  TileGemmExp2Avx512(keys, kBlockQ, head_dim, k_op, {block->qt, kBlockQ},
                     {st, kBlockQ}, block->row_max, tile_sum);
  const __m512 limit = _mm512_set1_ps(1 << static_cast<int>(kMaxSlack));
  __mmask16 moves = 0;
  for (int64_t vec = 0; vec < kVectors; ++vec) {
    // Not "<=": a NaN sum (never expected) also takes the safe path.
    moves |= _mm512_cmp_ps_mask(_mm512_load_ps(tile_sum + 16 * vec), limit,
                                _CMP_NLE_UQ);
  }
  if (moves != 0) return false;
  for (int64_t vec = 0; vec < kVectors; ++vec) {
    float* row_sum = block->row_sum + 16 * vec;
    _mm512_storeu_ps(row_sum,
                     _mm512_add_ps(_mm512_loadu_ps(row_sum),
                                   _mm512_load_ps(tile_sum + 16 * vec)));
  }
  return true;
}

// Multiplies the probabilities of `keys` rows of st by the block's dropout
// factors (same layout).
void ApplyDropout(int64_t keys, const float* factors, float* st) {
  for (int64_t x = 0; x < keys * kBlockQ; x += 16) {
    _mm512_storeu_ps(st + x, _mm512_mul_ps(_mm512_loadu_ps(st + x),
                                           _mm512_loadu_ps(factors + x)));
  }
}

}  // namespace

void AttendToTileAvx512(const ForwardParams& p, int64_t j0, int64_t keys,
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
    const bool first_tile = j0 == 0;
    if (first_tile || !FusedScores(k_op, keys, d, st, block)) {
      TileGemmAvx512(keys, kBlockQ, d, k_op, {qt, kBlockQ}, {st, kBlockQ},
                     false);
      OnlineSoftmax(keys, d, first_tile, st, block);
    }
    if (block->dropout != nullptr) ApplyDropout(keys, block->dropout, st);
    TileGemmAvx512(d, kBlockQ, keys, v_op, {st, kBlockQ}, {ot, kBlockQ}, true);
    return;
  }
  // Per panel of queries, only the keys at or before its last query.
  for (int64_t c0 = 0; c0 < kBlockQ; c0 += kPanel) {
    const int64_t visible = Min(keys, i0 + c0 + kPanel - j0);
    if (visible <= 0) continue;
    TileGemmAvx512(visible, kPanel, d, k_op, {qt + c0, kBlockQ},
                   {st + c0, kBlockQ}, false);
  }
  MaskAfterDiagonal(i0, j0, keys, st);
  OnlineSoftmax(keys, d, j0 == 0, st, block);
  if (block->dropout != nullptr) ApplyDropout(keys, block->dropout, st);
  for (int64_t c0 = 0; c0 < kBlockQ; c0 += kPanel) {
    const int64_t visible = Min(keys, i0 + c0 + kPanel - j0);
    if (visible <= 0) continue;
    TileGemmAvx512(d, kPanel, visible, v_op, {st + c0, kBlockQ},
                   {ot + c0, kBlockQ}, true);
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
