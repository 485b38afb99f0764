// The backward pass on AMX (flash_amx.h), FlashAttention-2 as in
// flash_backward.cc: per (batch, segment, head) problem one thread walks the
// key tiles (64 keys); for each it recomputes P of every query block (32
// rows) from the saved log-sum-exp and accumulates dV and dK of the tile and
// dQ of the whole problem in float32.
//
// Operands are packed once where they are reused: the query side of the
// problem (q and dO row-major, Q^T and dO^T row-major: the A operands of
// S, dP, dK^T and dV^T) when the problem starts, the key side (K^T and V^T
// pairs, k as pairs of rows) per key tile. dK and dV are accumulated
// transposed, dK^T += Q^T dS and dV^T += dO^T P, so that the softmax of a
// block writes P and dS only as it walks them, two query rows at a time:
// dS row-major for dQ += dS K, and P and dS in pairs of query rows, the B
// operands of the transposed products. dK^T and dV^T are transposed back
// once per key tile.
//
// As flash_forward_amx.cc: compiled for x86-64-v3, AVX-512 and AMX only in
// DA_AMX_TARGET functions.

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "kernels/cpu/amx_tiles.h"
#include "kernels/cpu/dropout_tile.h"
#include "kernels/cpu/flash_amx.h"
#include "kernels/cpu/flash_common.h"

// 2^x for 16 lanes (AVX-512F), the exponential of the other AVX-512 code.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl")
#include "kernels/cpu/simd_exp_avx512.h"
#pragma GCC pop_options

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

// 64 queries x 64 keys: the reductions over queries (dV^T += dO^T P,
// dK^T += Q^T dS) then take two 32-query steps per load and store of their
// accumulator tiles, against one with 32 queries.
constexpr int64_t kBlockQ = 64;
constexpr int64_t kBlockK = 64;
// S and dP are computed, and turned into P and dS, 32 query rows at a time:
// their float32 buffers then take 16 KiB of L1 instead of 32.
constexpr int64_t kScoreRows = 32;

// Q^T and dO^T rows are padded by 32 elements (64 bytes): with a stride of a
// multiple of 4 KiB the 16 rows of a tile load would share one set of L1.
constexpr int64_t kTransposedPad = 32;

int64_t RoundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

int64_t MaxPositions(const ForwardParams& p) {
  int64_t max_positions = 0;
  for (int gi = 0; gi < p.num_groups; ++gi) {
    max_positions = std::max(max_positions, p.groups[gi].positions);
  }
  return max_positions;
}

// One thread's buffers, sized for the longest problem of the call; 16-bit
// arrays are carved as floats (two per float). Per plane where two.
struct Scratch {
  Scratch(int64_t max_positions, int64_t head_dim, DataType dtype, bool dropout,
          Carver* carver)
      : dp(RoundUp(head_dim, 32)),
        rows(RoundUp(max_positions, kBlockQ)),
        planes(PlanesOf(dtype)) {
    for (int64_t pl = 0; pl < planes; ++pl) {
      q[pl] = Take16(carver, rows * dp);
      grad_out[pl] = Take16(carver, rows * dp);
      qt[pl] = Take16(carver, dp * (rows + kTransposedPad));
      grad_out_t[pl] = Take16(carver, dp * (rows + kTransposedPad));
      staged_k[pl] = Take16(carver, kBlockK * dp);
      staged_v[pl] = Take16(carver, kBlockK * dp);
      kt[pl] = Take32(carver, dp / 2 * kBlockK);
      vt[pl] = Take32(carver, dp / 2 * kBlockK);
      k_pairs[pl] = Take32(carver, kBlockK / 2 * dp);
      ds[pl] = Take16(carver, kBlockQ * kBlockK);
      p_pairs[pl] = Take32(carver, kBlockQ / 2 * kBlockK);
      ds_pairs[pl] = Take32(carver, kBlockQ / 2 * kBlockK);
    }
    grad_q = carver->Take(rows * dp);
    lse2 = carver->Take(rows);
    delta = carver->Take(rows);
    grad_kt = carver->Take(dp * kBlockK);
    grad_vt = carver->Take(dp * kBlockK);
    grad_rows = carver->Take(kBlockK * dp);
    s = carver->Take(kScoreRows * kBlockK);
    dpm = carver->Take(kScoreRows * kBlockK);
    dropout_factors = dropout ? carver->Take(kBlockQ * kBlockK) : nullptr;
  }

  static uint16_t* Take16(Carver* carver, int64_t count) {
    return reinterpret_cast<uint16_t*>(carver->Take((count + 1) / 2));
  }
  static uint32_t* Take32(Carver* carver, int64_t count) {
    return reinterpret_cast<uint32_t*>(carver->Take(count));
  }

  int64_t dp;      // head_dim rounded up to 32 (zero padded).
  int64_t rows;    // Longest problem rounded up to kBlockQ (zero padded).
  int64_t planes;  // 1 (bfloat16) or 2 (float16).
  // The row stride of qt and grad_out_t: the problem's rows rounded up to
  // kBlockQ, plus kTransposedPad.
  int64_t transposed_stride = 0;
  // Query side, per plane: q and dO row-major (padded x dp), Q^T and dO^T
  // row-major (dp x padded, row stride transposed_stride).
  uint16_t* q[2] = {nullptr, nullptr};
  uint16_t* grad_out[2] = {nullptr, nullptr};
  uint16_t* qt[2] = {nullptr, nullptr};
  uint16_t* grad_out_t[2] = {nullptr, nullptr};
  // Key side, per plane: k and v rows (kBlockK x dp), K^T and V^T in pairs
  // (dp / 2 x kBlockK), k in pairs of rows (kBlockK / 2 x dp).
  uint16_t* staged_k[2] = {nullptr, nullptr};
  uint16_t* staged_v[2] = {nullptr, nullptr};
  uint32_t* kt[2] = {nullptr, nullptr};
  uint32_t* vt[2] = {nullptr, nullptr};
  uint32_t* k_pairs[2] = {nullptr, nullptr};
  // Per block and plane: dS (kBlockQ x kBlockK), and P and dS in pairs of
  // query rows (kBlockQ / 2 x kBlockK).
  uint16_t* ds[2] = {nullptr, nullptr};
  uint32_t* p_pairs[2] = {nullptr, nullptr};
  uint32_t* ds_pairs[2] = {nullptr, nullptr};
  float* grad_q;     // rows x dp, accumulated.
  float* lse2;       // rows: lse * log2(e).
  float* delta;      // rows: rowsum(dO * out).
  float* grad_kt;    // dp x kBlockK, accumulated per key tile.
  float* grad_vt;    // dp x kBlockK.
  float* grad_rows;  // kBlockK x dp: dK or dV of the tile, for storing.
  float* s;          // kScoreRows x kBlockK scores.
  float* dpm;        // kScoreRows x kBlockK dP.
  // kBlockQ x kBlockK dropout factors of the block, or null without dropout.
  float* dropout_factors;
};

// Returns 16 stored 16-bit elements (lanes below `count`) as float32.
DA_AMX_TARGET __m512 LoadAsFloat(const uint16_t* src, DataType dtype,
                                 int64_t count) {
  const __m256i x = _mm256_maskz_loadu_epi16(FirstLanes(count), src);
  return dtype == DataType::kBFloat16 ? Widen(x) : _mm512_cvtph_ps(x);
}

// Packs the query side of problem s (q, dO, lse, delta) and zeroes dQ.
DA_AMX_TARGET void LoadQuerySide(const BackwardParams& bp, const Segment& s,
                                 int64_t length, Scratch* scratch) {
  const ForwardParams& p = bp.forward;
  const int64_t d = p.head_dim;
  const int64_t dp = scratch->dp;
  const int64_t padded = RoundUp(std::max<int64_t>(length, 1), kBlockQ);
  const float* lse_row = LseRow(p, s);
  for (int64_t i = 0; i < padded; ++i) {
    uint16_t* q_lo = scratch->planes > 1 ? scratch->q[1] + i * dp : nullptr;
    uint16_t* grad_out_lo =
        scratch->planes > 1 ? scratch->grad_out[1] + i * dp : nullptr;
    if (i >= length) {
      for (int64_t pl = 0; pl < scratch->planes; ++pl) {
        std::memset(scratch->q[pl] + i * dp, 0, dp * sizeof(uint16_t));
        std::memset(scratch->grad_out[pl] + i * dp, 0, dp * sizeof(uint16_t));
      }
      scratch->lse2[i] = 0.0f;
      scratch->delta[i] = 0.0f;
      continue;
    }
    if (i + kRowsAhead < length) {
      for (const TensorParams* t : {&p.q, &bp.grad_out, &p.out}) {
        PrefetchRow<_MM_HINT_T0>(*t, p.dtype, d, s, i + kRowsAhead);
      }
    }
    const void* grad_out = SegmentRow(bp.grad_out, p.dtype, s, i);
    StageRow(SegmentRow(p.q, p.dtype, s, i), p.dtype, d, dp,
             scratch->q[0] + i * dp, q_lo);
    StageRow(grad_out, p.dtype, d, dp, scratch->grad_out[0] + i * dp,
             grad_out_lo);
    const uint16_t* g = static_cast<const uint16_t*>(grad_out);
    const uint16_t* o =
        reinterpret_cast<const uint16_t*>(SegmentRow(p.out, p.dtype, s, i));
    __m512 dot = _mm512_setzero_ps();
    for (int64_t a = 0; a < d; a += 16) {
      dot = _mm512_fmadd_ps(LoadAsFloat(g + a, p.dtype, d - a),
                            LoadAsFloat(o + a, p.dtype, d - a), dot);
    }
    scratch->delta[i] = _mm512_reduce_add_ps(dot);
    scratch->lse2[i] = lse_row[s.problem->Position(i)] * kLog2e;
  }
  // A transpose of 16-bit rows: pairs of rows, whose 32-bit transpose holds
  // each column's values in row order. The pairs pass through dQ's buffer,
  // zeroed after.
  uint32_t* row_pairs = reinterpret_cast<uint32_t*>(scratch->grad_q);
  scratch->transposed_stride = padded + kTransposedPad;
  for (int64_t pl = 0; pl < scratch->planes; ++pl) {
    for (auto [rows, transposed] :
         {std::pair{scratch->q[pl], scratch->qt[pl]},
          std::pair{scratch->grad_out[pl], scratch->grad_out_t[pl]}}) {
      InterleaveRowPairs(rows, padded, dp, row_pairs);
      TransposePairs(reinterpret_cast<const uint16_t*>(row_pairs), padded / 2,
                     2 * dp, reinterpret_cast<uint32_t*>(transposed),
                     scratch->transposed_stride / 2);
    }
  }
  std::fill(scratch->grad_q, scratch->grad_q + padded * dp, 0.0f);
}

// Packs key rows j0 .. j0 + keys - 1 (zero past keys).
DA_AMX_TARGET void PackKeyTile(const ForwardParams& p, const Segment& s,
                               int64_t j0, int64_t keys, Scratch* scratch) {
  const int64_t dp = scratch->dp;
  for (int64_t j = 0; j < kBlockK; ++j) {
    if (j >= keys) {
      for (int64_t pl = 0; pl < scratch->planes; ++pl) {
        std::memset(scratch->staged_k[pl] + j * dp, 0, dp * sizeof(uint16_t));
        std::memset(scratch->staged_v[pl] + j * dp, 0, dp * sizeof(uint16_t));
      }
      continue;
    }
    if (j + kRowsAhead < keys) {
      PrefetchRow<_MM_HINT_T0>(p.k, p.dtype, p.head_dim, s,
                               j0 + j + kRowsAhead);
      PrefetchRow<_MM_HINT_T0>(p.v, p.dtype, p.head_dim, s,
                               j0 + j + kRowsAhead);
    }
    StageRow(SegmentRow(p.k, p.dtype, s, j0 + j), p.dtype, p.head_dim, dp,
             scratch->staged_k[0] + j * dp,
             scratch->planes > 1 ? scratch->staged_k[1] + j * dp : nullptr);
    StageRow(SegmentRow(p.v, p.dtype, s, j0 + j), p.dtype, p.head_dim, dp,
             scratch->staged_v[0] + j * dp,
             scratch->planes > 1 ? scratch->staged_v[1] + j * dp : nullptr);
  }
  for (int64_t pl = 0; pl < scratch->planes; ++pl) {
    TransposePairs(scratch->staged_k[pl], kBlockK, dp, scratch->kt[pl],
                   kBlockK);
    TransposePairs(scratch->staged_v[pl], kBlockK, dp, scratch->vt[pl],
                   kBlockK);
    InterleaveRowPairs(scratch->staged_k[pl], kBlockK, dp,
                       scratch->k_pairs[pl]);
  }
}

// Stores the bfloat16 roundings of rows a and b (16 lanes each) as 16 pairs
// (a[i], b[i]) at hi and, with lo, the pairs of the remainders at lo.
DA_AMX_TARGET void StorePairs(__m512 a, __m512 b, uint32_t* hi, uint32_t* lo) {
  // Element 2i of the result takes lane i of a, element 2i + 1 lane i of b.
  const __m512i interleave = _mm512_set_epi16(
      31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
      6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i high = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(b, a));
  _mm512_storeu_si512(hi, _mm512_permutexvar_epi16(interleave, high));
  if (lo == nullptr) return;
  const __m512 rest_a = _mm512_sub_ps(a, Widen(_mm512_castsi512_si256(high)));
  const __m512 rest_b =
      _mm512_sub_ps(b, Widen(_mm512_extracti64x4_epi64(high, 1)));
  const __m512i low =
      reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(rest_b, rest_a));
  _mm512_storeu_si512(lo, _mm512_permutexvar_epi16(interleave, low));
}

// P and dS of one query row on 16 keys.
struct RowGradients {
  __m512 weight;  // P, or P M with dropout factors M: what dV sees.
  __m512 grad;    // dS.
};

// Returns P = 2^(s * scale * log2 e - lse2) and dS = P (c dP - delta) of
// row r of the block (row r % kScoreRows of s and dpm) on keys
// col .. col + 15, zero on lanes at or past `visible`. With dropout factors M
// (kDropout) the output saw P M: dS = P (c dP M - delta), and P M is what dV
// sees.
template <bool kDropout>
DA_AMX_TARGET RowGradients GradientsOf(const ForwardParams& fp,
                                       const Scratch& scratch, int64_t r,
                                       int64_t col, int64_t visible,
                                       __m512 lse2, __m512 delta) {
  const __m512 score_scale = _mm512_set1_ps(fp.softmax_scale * kLog2e);
  const __m512 output_scale = _mm512_set1_ps(fp.output_scale);
  const int64_t at = r % kScoreRows * kBlockK + col;
  const __m512 prob = _mm512_maskz_mov_ps(
      FirstLanes(visible - col),
      Exp2x16Coarse(
          _mm512_fmsub_ps(_mm512_loadu_ps(scratch.s + at), score_scale, lse2)));
  __m512 grad_p = _mm512_loadu_ps(scratch.dpm + at);
  __m512 weight = prob;
  if constexpr (kDropout) {
    const __m512 factor =
        _mm512_loadu_ps(scratch.dropout_factors + r * kBlockK + col);
    grad_p = _mm512_mul_ps(grad_p, factor);
    weight = _mm512_mul_ps(prob, factor);
  }
  return {weight,
          _mm512_mul_ps(prob, _mm512_fmsub_ps(grad_p, output_scale, delta))};
}

// Turns the scores (s) and dP (dpm) of rows r_begin .. r_begin +
// kScoreRows - 1 of the block at i0 into P and dS (GradientsOf), zero for
// rows past `length`, keys past `keys` and,
// when causal, keys after the row's query; writes dS as planes, and P and
// dS as planes of pairs of rows. A template parameter keeps the dropout test
// out of the loop.
template <bool kDropout>
DA_AMX_TARGET void Probabilities(const ForwardParams& fp, int64_t i0,
                                 int64_t r_begin, int64_t length, int64_t j0,
                                 int64_t keys, Scratch* scratch) {
  const bool split = scratch->planes > 1;
  for (int64_t r = r_begin; r < r_begin + kScoreRows; r += 2) {
    int64_t visible[2];
    __m512 lse2[2];
    __m512 delta[2];
    for (int64_t e = 0; e < 2; ++e) {
      const int64_t query = i0 + r + e;
      visible[e] = query < length ? keys : 0;
      if (fp.is_causal) visible[e] = std::min(visible[e], query - j0 + 1);
      lse2[e] = _mm512_set1_ps(scratch->lse2[query]);
      delta[e] = _mm512_set1_ps(scratch->delta[query]);
    }
    for (int64_t col = 0; col < kBlockK; col += 16) {
      const RowGradients a = GradientsOf<kDropout>(
          fp, *scratch, r, col, visible[0], lse2[0], delta[0]);
      const RowGradients b = GradientsOf<kDropout>(
          fp, *scratch, r + 1, col, visible[1], lse2[1], delta[1]);
      const int64_t at = r * kBlockK + col;
      StoreSplit(a.grad, scratch->ds[0] + at,
                 split ? scratch->ds[1] + at : nullptr);
      StoreSplit(b.grad, scratch->ds[0] + at + kBlockK,
                 split ? scratch->ds[1] + at + kBlockK : nullptr);
      const int64_t pair_at = r / 2 * kBlockK + col;
      StorePairs(a.weight, b.weight, scratch->p_pairs[0] + pair_at,
                 split ? scratch->p_pairs[1] + pair_at : nullptr);
      StorePairs(a.grad, b.grad, scratch->ds_pairs[0] + pair_at,
                 split ? scratch->ds_pairs[1] + pair_at : nullptr);
    }
  }
}

// Writes the transpose of the rows x cols float32 matrix `src` (row stride
// src_stride) at dst (row stride dst_stride).
// REQUIRES: rows % 16 == 0; cols % 16 == 0.
DA_AMX_TARGET void TransposeFloats(const float* src, int64_t rows, int64_t cols,
                                   int64_t src_stride, float* dst,
                                   int64_t dst_stride) {
  for (int64_t r0 = 0; r0 < rows; r0 += 16) {
    for (int64_t c0 = 0; c0 < cols; c0 += 16) {
      __m512i x[16];
      for (int t = 0; t < 16; ++t) {
        x[t] = _mm512_castps_si512(
            _mm512_loadu_ps(src + (r0 + t) * src_stride + c0));
      }
      Transpose16x16(x);
      for (int t = 0; t < 16; ++t) {
        _mm512_storeu_ps(dst + (c0 + t) * dst_stride + r0,
                         _mm512_castsi512_ps(x[t]));
      }
    }
  }
}

// Stores `rows` rows of `src` (row stride dp) times `factor` into rows
// j0 .. of t.
DA_AMX_TARGET void StoreRows(const ForwardParams& p, const TensorParams& t,
                             const Segment& s, int64_t j0, int64_t rows,
                             const float* src, int64_t dp, float factor) {
  for (int64_t j = 0; j < rows; ++j) {
    if (j + kRowsAhead < rows) {
      PrefetchRow<_MM_HINT_T0>(t, p.dtype, p.head_dim, s, j0 + j + kRowsAhead);
    }
    StoreScaledRow(src + j * dp, factor, p.dtype, p.head_dim,
                   SegmentRow(t, p.dtype, s, j0 + j));
  }
}

DA_AMX_TARGET void BackwardSegment(const BackwardParams& bp, const Segment& s,
                                   Scratch* scratch) {
  const ForwardParams& fp = bp.forward;
  const int64_t d = fp.head_dim;
  const int64_t dp = scratch->dp;
  const int64_t length = s.problem->length;
  for (const TensorParams* grad : {&bp.grad_q, &bp.grad_k, &bp.grad_v}) {
    ZeroUnselected(*grad, fp.dtype, d, s, 0, length, nullptr);
  }
  if (length == 0) return;
  LoadQuerySide(bp, s, length, scratch);
  const ProductTerms terms = ProductTermsOf(fp.dtype);
  const int64_t planes = scratch->planes;

  const int64_t transposed_stride = scratch->transposed_stride;
  for (int64_t j0 = 0; j0 < length; j0 += kBlockK) {
    const int64_t keys = std::min(kBlockK, length - j0);
    PackKeyTile(fp, s, j0, keys, scratch);
    std::fill(scratch->grad_kt, scratch->grad_kt + dp * kBlockK, 0.0f);
    std::fill(scratch->grad_vt, scratch->grad_vt + dp * kBlockK, 0.0f);
    // Causal: query blocks before the tile's first key see none of it.
    const int64_t i_begin = fp.is_causal ? j0 / kBlockQ * kBlockQ : 0;
    for (int64_t i0 = i_begin; i0 < length; i0 += kBlockQ) {
      if (fp.dropout.enabled) {
        FillDropoutTile(fp, s, i0, std::min(kBlockQ, length - i0), j0, keys,
                        {kBlockQ, kBlockK, kBlockK, 1},
                        scratch->dropout_factors);
      }
      for (int64_t r = 0; r < kBlockQ; r += kScoreRows) {
        // S = Q K^T and dP = dO V^T of rows r .. r + 31 in 32 x 32 blocks.
        const uint16_t* q_rows[2];
        const uint16_t* grad_out_rows[2];
        for (int64_t pl = 0; pl < planes; ++pl) {
          q_rows[pl] = scratch->q[pl] + (i0 + r) * dp;
          grad_out_rows[pl] = scratch->grad_out[pl] + (i0 + r) * dp;
        }
        for (int64_t h = 0; h < kBlockK; h += 32) {
          const uint32_t* kt[2];
          const uint32_t* vt[2];
          for (int64_t pl = 0; pl < planes; ++pl) {
            kt[pl] = scratch->kt[pl] + h;
            vt[pl] = scratch->vt[pl] + h;
          }
          TileBlock32(q_rows, dp, kt, kBlockK, dp, terms, scratch->s + h,
                      kBlockK, false);
          TileBlock32(grad_out_rows, dp, vt, kBlockK, dp, terms,
                      scratch->dpm + h, kBlockK, false);
        }
        if (fp.dropout.enabled) {
          Probabilities<true>(fp, i0, r, length, j0, keys, scratch);
        } else {
          Probabilities<false>(fp, i0, r, length, j0, keys, scratch);
        }
      }
      // dV^T += dO^T P and dK^T += Q^T dS (dp x kBlockK), and dQ += dS K
      // (kBlockQ x dp), 32 dims at a time.
      for (int64_t c = 0; c < dp; c += 32) {
        const uint16_t* grad_out_t[2];
        const uint16_t* qt[2];
        const uint32_t* k_pairs[2];
        for (int64_t pl = 0; pl < planes; ++pl) {
          grad_out_t[pl] = scratch->grad_out_t[pl] + c * transposed_stride + i0;
          qt[pl] = scratch->qt[pl] + c * transposed_stride + i0;
          k_pairs[pl] = scratch->k_pairs[pl] + c;
        }
        for (int64_t h = 0; h < kBlockK; h += 32) {
          const uint32_t* p_pairs[2];
          const uint32_t* ds_pairs[2];
          for (int64_t pl = 0; pl < planes; ++pl) {
            p_pairs[pl] = scratch->p_pairs[pl] + h;
            ds_pairs[pl] = scratch->ds_pairs[pl] + h;
          }
          TileBlock32(grad_out_t, transposed_stride, p_pairs, kBlockK, kBlockQ,
                      terms, scratch->grad_vt + c * kBlockK + h, kBlockK, true);
          TileBlock32(qt, transposed_stride, ds_pairs, kBlockK, kBlockQ, terms,
                      scratch->grad_kt + c * kBlockK + h, kBlockK, true);
        }
        for (int64_t r = 0; r < kBlockQ; r += 32) {
          const uint16_t* ds_rows[2];
          for (int64_t pl = 0; pl < planes; ++pl) {
            ds_rows[pl] = scratch->ds[pl] + r * kBlockK;
          }
          TileBlock32(ds_rows, kBlockK, k_pairs, dp, kBlockK, terms,
                      scratch->grad_q + (i0 + r) * dp + c, dp, true);
        }
      }
    }
    TransposeFloats(scratch->grad_kt, dp, kBlockK, kBlockK, scratch->grad_rows,
                    dp);
    StoreRows(fp, bp.grad_k, s, j0, keys, scratch->grad_rows, dp,
              fp.softmax_scale);
    TransposeFloats(scratch->grad_vt, dp, kBlockK, kBlockK, scratch->grad_rows,
                    dp);
    StoreRows(fp, bp.grad_v, s, j0, keys, scratch->grad_rows, dp,
              fp.output_scale);
  }
  StoreRows(fp, bp.grad_q, s, 0, length, scratch->grad_q, dp, fp.softmax_scale);
}

}  // namespace

int64_t FlashBackwardAmxWorkspacePerThread(const ForwardParams& p) {
  Carver counter(nullptr);
  Scratch layout(MaxPositions(p), p.head_dim, p.dtype, p.dropout.enabled,
                 &counter);
  return counter.used();
}

void FlashBackwardAmx(const BackwardParams& bp, float* workspace,
                      int num_threads) {
  const ForwardParams& fp = bp.forward;
  const ProblemList problems(fp);
  const WorkList work(problems, /*block_rows=*/0);
  const int64_t per_thread = FlashBackwardAmxWorkspacePerThread(fp);
#pragma omp parallel num_threads(num_threads)
  {
    Carver carver(workspace + omp_get_thread_num() * per_thread);
    Scratch scratch(MaxPositions(fp), fp.head_dim, fp.dtype, fp.dropout.enabled,
                    &carver);
    AmxBeginThread();
#pragma omp for schedule(dynamic, 1)
    for (int64_t index = 0; index < work.size(); ++index) {
      int64_t block;
      const Segment s = work.Decode(index, &block);
      BackwardSegment(bp, s, &scratch);
    }
    AmxEndThread();
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
