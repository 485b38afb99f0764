// The forward pass: per query block, an online softmax over key tiles.
//
// Tiles are transposed so that queries run along the SIMD lanes: the scores
// S^T = K Q^T (keys x queries) and the output O^T (head_dim x queries). Then
// the row statistics (max, sum) of the softmax are per-lane values with no
// horizontal reduction, the k and v rows are read in place as the broadcast
// operand of TileGemm (float32 storage needs no copy at all), and only the
// query block is packed, once.

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/flash_attention.h"
#include "kernels/cpu/flash_common.h"
#include "kernels/cpu/row_io.h"
#include "kernels/cpu/simd_convert.h"
#include "kernels/cpu/simd_exp.h"
#include "kernels/cpu/tile_gemm.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

// 64 queries x 64 keys: the transposed q block, score tile and output tile
// take 16 KiB each at head_dim 64, so the working set stays in L1/L2; a
// multiple of the 16-lane panel width of TileGemm.
constexpr int64_t kBlockQ = 64;
constexpr int64_t kBlockK = 64;
// Columns of one TileGemm panel; causal diagonal tiles are cut into panels so
// that keys after every query of a panel are never computed.
constexpr int64_t kPanel = 16;

// Per-thread tiles.
struct ForwardScratch {
  explicit ForwardScratch(int64_t head_dim)
      : qt(head_dim * kBlockQ),
        st(kBlockK * kBlockQ),
        ot(head_dim * kBlockQ),
        k_tile(kBlockK * head_dim),
        v_tile(kBlockK * head_dim),
        row(head_dim) {}

  std::vector<float> qt;      // head_dim x kBlockQ: q^T * scale * log2(e).
  std::vector<float> st;      // kBlockK x kBlockQ: scores, then P^T.
  std::vector<float> ot;      // head_dim x kBlockQ: unnormalised O^T.
  std::vector<float> k_tile;  // kBlockK x head_dim: k as float32 (16-bit).
  std::vector<float> v_tile;  // kBlockK x head_dim: v as float32 (16-bit).
  std::vector<float> row;     // head_dim.
  float row_max[kBlockQ];     // Running max of the base-2 scores.
  float row_sum[kBlockQ];     // Running sum of 2^(score - max).
};

// Packs rows i0 .. i0 + rows - 1 of q, transposed and scaled, into qt; the
// lanes of missing rows are zero.
void PackQueries(const ForwardParams& p, const Segment& s, int64_t i0,
                 int64_t rows, ForwardScratch* scratch) {
  const int64_t d = p.head_dim;
  const float scale = p.softmax_scale * kLog2e;
  float* qt = scratch->qt.data();
  for (int64_t i = 0; i < kBlockQ; ++i) {
    if (i < rows) {
      LoadRowFast(SegmentRow(p.q, p.dtype, s, i0 + i), p.dtype, d,
                  scratch->row.data());
      for (int64_t a = 0; a < d; ++a) {
        qt[a * kBlockQ + i] = scratch->row[a] * scale;
      }
    } else {
      for (int64_t a = 0; a < d; ++a) qt[a * kBlockQ + i] = 0.0f;
    }
  }
}

// Returns k or v rows j0 .. j0 + keys - 1 as a broadcast operand: in place
// for float32, else converted into `tile`. `transposed` selects the operand
// (m = head_dim, k = key) of the P V product instead of (m = key, k = dim).
StridedOperand KeyOperand(const ForwardParams& p, const TensorParams& t,
                          const Segment& s, int64_t j0, int64_t keys,
                          bool transposed, std::vector<float>* tile) {
  const int64_t d = p.head_dim;
  const float* data;
  int64_t row_stride;
  if (p.dtype == DataType::kFloat32) {
    data = reinterpret_cast<const float*>(SegmentRow(t, p.dtype, s, j0));
    row_stride = s.step * t.stride_n;
  } else {
    for (int64_t j = 0; j < keys; ++j) {
      LoadRowFast(SegmentRow(t, p.dtype, s, j0 + j), p.dtype, d,
                  tile->data() + j * d);
    }
    data = tile->data();
    row_stride = d;
  }
  return transposed ? StridedOperand{data, 1, row_stride}
                    : StridedOperand{data, row_stride, 1};
}

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

// Turns the scores of `keys` rows of st into probabilities against the
// running max, updating row_max, row_sum and rescaling ot.
void OnlineSoftmax(int64_t keys, int64_t head_dim, bool first_tile,
                   ForwardScratch* scratch) {
  float* st = scratch->st.data();
  float* ot = scratch->ot.data();
  for (int64_t vec = 0; vec < kBlockQ / 8; ++vec) {
    const int64_t col = 8 * vec;
    __m256 tile_max = _mm256_loadu_ps(st + col);
    for (int64_t jj = 1; jj < keys; ++jj) {
      tile_max =
          _mm256_max_ps(tile_max, _mm256_loadu_ps(st + jj * kBlockQ + col));
    }
    const __m256 old_max = _mm256_loadu_ps(scratch->row_max + col);
    const __m256 new_max = _mm256_max_ps(old_max, tile_max);
    __m256 sum0 = _mm256_setzero_ps();
    __m256 sum1 = _mm256_setzero_ps();
    int64_t jj = 0;
    for (; jj + 2 <= keys; jj += 2) {
      float* x0 = st + jj * kBlockQ + col;
      float* x1 = x0 + kBlockQ;
      const __m256 p0 = Exp2(_mm256_sub_ps(_mm256_loadu_ps(x0), new_max));
      const __m256 p1 = Exp2(_mm256_sub_ps(_mm256_loadu_ps(x1), new_max));
      _mm256_storeu_ps(x0, p0);
      _mm256_storeu_ps(x1, p1);
      sum0 = _mm256_add_ps(sum0, p0);
      sum1 = _mm256_add_ps(sum1, p1);
    }
    if (jj < keys) {
      float* x0 = st + jj * kBlockQ + col;
      const __m256 p0 = Exp2(_mm256_sub_ps(_mm256_loadu_ps(x0), new_max));
      _mm256_storeu_ps(x0, p0);
      sum0 = _mm256_add_ps(sum0, p0);
    }
    const __m256 sum = _mm256_add_ps(sum0, sum1);
    _mm256_storeu_ps(scratch->row_max + col, new_max);
    if (first_tile) {
      _mm256_storeu_ps(scratch->row_sum + col, sum);
      continue;
    }
    const __m256 alpha = Exp2(_mm256_sub_ps(old_max, new_max));
    _mm256_storeu_ps(
        scratch->row_sum + col,
        _mm256_fmadd_ps(_mm256_loadu_ps(scratch->row_sum + col), alpha, sum));
    for (int64_t a = 0; a < head_dim; ++a) {
      float* o = ot + a * kBlockQ + col;
      _mm256_storeu_ps(o, _mm256_mul_ps(_mm256_loadu_ps(o), alpha));
    }
  }
}

// Computes rows i0 .. i0 + rows - 1 of problem s into out (and lse), and
// zeroes the unselected positions that follow them.
void ForwardBlock(const ForwardParams& p, const Segment& s, int64_t block,
                  ForwardScratch* scratch) {
  const int64_t d = p.head_dim;
  const int64_t length = s.group->positions;
  const int64_t i0 = block * kBlockQ;
  const int64_t rows = std::min(kBlockQ, length - i0);
  float* lse_row = LseRow(p, s);
  ZeroUnselected(p.out, p.dtype, d, s, i0, i0 + std::max<int64_t>(rows, 0),
                 lse_row);
  if (rows <= 0) return;

  PackQueries(p, s, i0, rows, scratch);
  std::fill(scratch->ot.begin(), scratch->ot.end(), 0.0f);
  std::fill(scratch->row_max, scratch->row_max + kBlockQ,
            -std::numeric_limits<float>::infinity());
  float* qt = scratch->qt.data();
  float* st = scratch->st.data();
  float* ot = scratch->ot.data();

  // Causal: keys up to the last query of the block; later tiles are skipped.
  const int64_t key_end = p.is_causal ? i0 + rows : length;
  for (int64_t j0 = 0; j0 < key_end; j0 += kBlockK) {
    const int64_t keys = std::min(kBlockK, key_end - j0);
    const StridedOperand k_op =
        KeyOperand(p, p.k, s, j0, keys, /*transposed=*/false, &scratch->k_tile);
    const StridedOperand v_op =
        KeyOperand(p, p.v, s, j0, keys, /*transposed=*/true, &scratch->v_tile);
    const bool diagonal = p.is_causal && j0 + keys - 1 > i0;
    if (!diagonal) {
      TileGemm(keys, kBlockQ, d, k_op, {qt, kBlockQ}, {st, kBlockQ}, false);
      OnlineSoftmax(keys, d, j0 == 0, scratch);
      TileGemm(d, kBlockQ, keys, v_op, {st, kBlockQ}, {ot, kBlockQ}, true);
      continue;
    }
    // Per panel of queries, only the keys at or before its last query.
    for (int64_t c0 = 0; c0 < kBlockQ; c0 += kPanel) {
      const int64_t visible = std::min(keys, i0 + c0 + kPanel - j0);
      if (visible <= 0) continue;
      TileGemm(visible, kPanel, d, k_op, {qt + c0, kBlockQ}, {st + c0, kBlockQ},
               false);
    }
    MaskAfterDiagonal(i0, j0, keys, st);
    OnlineSoftmax(keys, d, j0 == 0, scratch);
    for (int64_t c0 = 0; c0 < kBlockQ; c0 += kPanel) {
      const int64_t visible = std::min(keys, i0 + c0 + kPanel - j0);
      if (visible <= 0) continue;
      TileGemm(d, kPanel, visible, v_op, {st + c0, kBlockQ}, {ot + c0, kBlockQ},
               true);
    }
  }

  // Epilogue: normalise, apply 1/G, store; lse = ln 2 * (max + log2(sum)).
  float* row = scratch->row.data();
  for (int64_t i = 0; i < rows; ++i) {
    const float sum = scratch->row_sum[i];
    const float factor = p.output_scale / sum;
    for (int64_t a = 0; a < d; ++a) row[a] = ot[a * kBlockQ + i] * factor;
    StoreRow(row, p.dtype, d, SegmentRow(p.out, p.dtype, s, i0 + i));
    if (lse_row != nullptr) {
      lse_row[s.first + (i0 + i) * s.step] =
          (scratch->row_max[i] + std::log2(sum)) * kLn2;
    }
  }
}

}  // namespace

void FlashForward(const ForwardParams& p) {
  const WorkList work(p, kBlockQ);
#pragma omp parallel
  {
    ForwardScratch scratch(p.head_dim);
#pragma omp for schedule(dynamic, 1)
    for (int64_t index = 0; index < work.size(); ++index) {
      int64_t block;
      const Segment s = work.Decode(index, &block);
      ForwardBlock(p, s, block, &scratch);
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
