// The backward pass (FlashAttention-2): per (batch, segment, head) problem,
// one thread walks the key tiles; for each it recomputes the probabilities of
// every query block from the saved log-sum-exp and accumulates dV and dK of
// the tile in registers-sized tiles and dQ of the whole problem in a
// per-thread float32 buffer. A thread owns every gradient row it writes, so
// nothing is reduced across threads.
//
// Here keys run along the SIMD lanes (P is queries x keys): the key tile is
// packed once (transposed for Q K^T and dO V^T, natural for dS K) and the
// query side is read row by row as the broadcast operand.

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/cpu_path.h"
#include "kernels/cpu/dropout_tile.h"
#include "kernels/cpu/flash_amx.h"
#include "kernels/cpu/flash_attention.h"
#include "kernels/cpu/flash_common.h"
#include "kernels/cpu/row_io.h"
#include "kernels/cpu/simd_convert.h"
#include "kernels/cpu/simd_exp.h"
#include "kernels/cpu/tile_gemm.h"
#include "kernels/cpu/tile_gemm_avx512.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

// 64 x 64 tiles as in the forward pass: P and dS take 16 KiB each.
constexpr int64_t kBlockQ = 64;
constexpr int64_t kBlockK = 64;

int64_t RoundUpTo8(int64_t x) { return (x + 7) / 8 * 8; }

// One thread's buffers, cut from its part of the workspace and sized for the
// longest problem of the call.
struct BackwardScratch {
  BackwardScratch(int64_t max_positions, int64_t head_dim, bool dropout,
                  Carver* carver)
      : dim(RoundUpTo8(head_dim)),
        q(carver->Take(max_positions * dim)),
        grad_out(carver->Take(max_positions * dim)),
        grad_q(carver->Take(max_positions * dim)),
        lse2(carver->Take(max_positions)),
        delta(carver->Take(max_positions)),
        kt(carver->Take(head_dim * kBlockK)),
        vt(carver->Take(head_dim * kBlockK)),
        k(carver->Take(kBlockK * dim)),
        grad_k(carver->Take(kBlockK * dim)),
        grad_v(carver->Take(kBlockK * dim)),
        p(carver->Take(kBlockQ * kBlockK)),
        ds(carver->Take(kBlockQ * kBlockK)),
        row(carver->Take(dim)),
        dropout_factors(dropout ? carver->Take(kBlockQ * kBlockK) : nullptr) {}

  int64_t dim;      // head_dim rounded up to 8 (zero padded).
  float* q;         // positions x dim.
  float* grad_out;  // positions x dim.
  float* grad_q;    // positions x dim, accumulated.
  float* lse2;      // positions: lse * log2(e).
  float* delta;     // positions: rowsum(grad_out * out).
  float* kt;        // head_dim x kBlockK: k^T, zero padded.
  float* vt;        // head_dim x kBlockK: v^T, zero padded.
  float* k;         // kBlockK x dim: k, zero padded.
  float* grad_k;    // kBlockK x dim.
  float* grad_v;    // kBlockK x dim.
  float* p;         // kBlockQ x kBlockK: probabilities.
  float* ds;        // kBlockQ x kBlockK: dP, then dS.
  float* row;       // dim.
  // kBlockQ x kBlockK dropout factors of the block, or null without dropout.
  float* dropout_factors;
};

int64_t MaxPositions(const ForwardParams& p) {
  int64_t max_positions = 0;
  for (int gi = 0; gi < p.num_groups; ++gi) {
    max_positions = std::max(max_positions, p.groups[gi].positions);
  }
  return max_positions;
}

// Loads the query-side rows of problem s: q, grad_out, lse and delta.
void LoadQuerySide(const BackwardParams& bp, const Segment& s, int64_t length,
                   BackwardScratch* scratch) {
  const ForwardParams& p = bp.forward;
  const int64_t d = p.head_dim;
  const int64_t dim = scratch->dim;
  const float* lse_row = LseRow(p, s);
  float* out_row = scratch->row;
  for (int64_t i = 0; i < length; ++i) {
    if (i + kRowsAhead < length) {
      for (const TensorParams* t : {&p.q, &bp.grad_out, &p.out}) {
        PrefetchRow<_MM_HINT_T0>(*t, p.dtype, d, s, i + kRowsAhead);
      }
    }
    float* q = scratch->q + i * dim;
    float* grad_out = scratch->grad_out + i * dim;
    LoadRowFast(SegmentRow(p.q, p.dtype, s, i), p.dtype, d, q);
    LoadRowFast(SegmentRow(bp.grad_out, p.dtype, s, i), p.dtype, d, grad_out);
    LoadRowFast(SegmentRow(p.out, p.dtype, s, i), p.dtype, d, out_row);
    float delta = 0.0f;
    for (int64_t a = 0; a < d; ++a) delta += grad_out[a] * out_row[a];
    for (int64_t a = d; a < dim; ++a) q[a] = grad_out[a] = 0.0f;
    scratch->delta[i] = delta;
    scratch->lse2[i] = lse_row[s.problem->Position(i)] * kLog2e;
  }
  std::fill(scratch->grad_q, scratch->grad_q + length * dim, 0.0f);
}

// Packs key rows j0 .. j0 + keys - 1: k^T and v^T (lanes beyond `keys` zero)
// and k (columns beyond head_dim zero).
void PackKeyTile(const ForwardParams& p, const Segment& s, int64_t j0,
                 int64_t keys, BackwardScratch* scratch) {
  const int64_t d = p.head_dim;
  const int64_t dim = scratch->dim;
  float* kt = scratch->kt;
  float* vt = scratch->vt;
  float* row = scratch->row;
  for (int64_t j = 0; j < kBlockK; ++j) {
    if (j >= keys) {
      for (int64_t a = 0; a < d; ++a)
        kt[a * kBlockK + j] = vt[a * kBlockK + j] = 0.0f;
      continue;
    }
    if (j + kRowsAhead < keys) {
      PrefetchRow<_MM_HINT_T0>(p.k, p.dtype, d, s, j0 + j + kRowsAhead);
      PrefetchRow<_MM_HINT_T0>(p.v, p.dtype, d, s, j0 + j + kRowsAhead);
    }
    float* k = scratch->k + j * dim;
    LoadRowFast(SegmentRow(p.k, p.dtype, s, j0 + j), p.dtype, d, k);
    for (int64_t a = d; a < dim; ++a) k[a] = 0.0f;
    for (int64_t a = 0; a < d; ++a) kt[a * kBlockK + j] = k[a];
    LoadRowFast(SegmentRow(p.v, p.dtype, s, j0 + j), p.dtype, d, row);
    for (int64_t a = 0; a < d; ++a) vt[a * kBlockK + j] = row[a];
  }
}

// Turns the scores in p and dP in ds of rows i0 .. i0 + rows - 1 into
// probabilities P = 2^(s * scale * log2 e - lse2) and dS = P (c dP - delta),
// zero for keys past `keys` or, when causal, after the row's query. With
// dropout factors M (kDropout; `dropout`, kBlockQ x kBlockK) the output saw
// the probabilities P M, so dS = P (c dP M - delta), and p receives P M for
// dV = (P M)^T dO. A template parameter keeps the test out of the loop.
template <bool kDropout>
void Probabilities(const ForwardParams& fp, int64_t i0, int64_t rows,
                   int64_t j0, int64_t keys, const float* dropout,
                   BackwardScratch* scratch) {
  const __m256 score_scale = _mm256_set1_ps(fp.softmax_scale * kLog2e);
  const __m256 output_scale = _mm256_set1_ps(fp.output_scale);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t query = i0 + i;
    const int64_t visible =
        fp.is_causal ? std::min(keys, query - j0 + 1) : keys;
    const __m256 lse2 = _mm256_set1_ps(scratch->lse2[query]);
    const __m256 delta = _mm256_set1_ps(scratch->delta[query]);
    float* p = scratch->p + i * kBlockK;
    float* ds = scratch->ds + i * kBlockK;
    for (int64_t col = 0; col < kBlockK; col += 8) {
      const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
          _mm256_set1_epi32(static_cast<int32_t>(visible - col)), lane));
      const __m256 prob = _mm256_and_ps(
          keep,
          Exp2(_mm256_fmsub_ps(_mm256_loadu_ps(p + col), score_scale, lse2)));
      if constexpr (kDropout) {
        const __m256 factor = _mm256_loadu_ps(dropout + i * kBlockK + col);
        const __m256 grad = _mm256_mul_ps(
            prob,
            _mm256_fmsub_ps(_mm256_mul_ps(_mm256_loadu_ps(ds + col), factor),
                            output_scale, delta));
        _mm256_storeu_ps(p + col, _mm256_mul_ps(prob, factor));
        _mm256_storeu_ps(ds + col, grad);
        continue;
      }
      const __m256 grad = _mm256_mul_ps(
          prob,
          _mm256_fmsub_ps(_mm256_loadu_ps(ds + col), output_scale, delta));
      _mm256_storeu_ps(p + col, prob);
      _mm256_storeu_ps(ds + col, grad);
    }
  }
}

// Stores `rows` rows of `src` (row stride dim) times `factor` into rows
// j0 .. of t.
void StoreRows(const ForwardParams& p, const TensorParams& t, const Segment& s,
               int64_t j0, int64_t rows, const float* src, int64_t dim,
               float factor, float* row) {
  for (int64_t j = 0; j < rows; ++j) {
    if (j + kRowsAhead < rows) {
      PrefetchRow<_MM_HINT_T0>(t, p.dtype, p.head_dim, s, j0 + j + kRowsAhead);
    }
    for (int64_t a = 0; a < p.head_dim; ++a) row[a] = src[j * dim + a] * factor;
    StoreRowFast(row, p.dtype, p.head_dim, SegmentRow(t, p.dtype, s, j0 + j));
  }
}

// The tile product of the backward pass (same contract on both paths).
using TileGemmFn = void (*)(int64_t m, int64_t n, int64_t k,
                            const StridedOperand& a, const RowOperand& b,
                            const RowResult& c, bool accumulate);

// Returns the AVX-512 product when the process runs the AVX-512 path and
// every product of the pass is a whole number of 16-lane vectors wide
// (kBlockK and the padded head dimension `dim`), else the AVX2 one.
TileGemmFn ChooseTileGemm(int64_t dim) {
  const bool avx512 =
      ActiveCpuPath() != CpuPath::kAvx2 && dim % 16 == 0 && kBlockK % 16 == 0;
  return avx512 ? &TileGemmAvx512 : &TileGemm;
}

void BackwardSegment(const BackwardParams& bp, const Segment& s,
                     TileGemmFn gemm, BackwardScratch* scratch) {
  const ForwardParams& fp = bp.forward;
  const int64_t d = fp.head_dim;
  const int64_t dim = scratch->dim;
  const int64_t length = s.problem->length;
  for (const TensorParams* grad : {&bp.grad_q, &bp.grad_k, &bp.grad_v}) {
    ZeroUnselected(*grad, fp.dtype, d, s, 0, length, nullptr);
  }
  if (length == 0) return;
  LoadQuerySide(bp, s, length, scratch);
  const float* q = scratch->q;
  const float* grad_out = scratch->grad_out;
  float* grad_q = scratch->grad_q;
  float* p = scratch->p;
  float* ds = scratch->ds;

  for (int64_t j0 = 0; j0 < length; j0 += kBlockK) {
    const int64_t keys = std::min(kBlockK, length - j0);
    PackKeyTile(fp, s, j0, keys, scratch);
    std::fill(scratch->grad_k, scratch->grad_k + kBlockK * dim, 0.0f);
    std::fill(scratch->grad_v, scratch->grad_v + kBlockK * dim, 0.0f);
    // Causal: query blocks before the tile's first key see none of it.
    const int64_t i_begin = fp.is_causal ? j0 / kBlockQ * kBlockQ : 0;
    for (int64_t i0 = i_begin; i0 < length; i0 += kBlockQ) {
      const int64_t rows = std::min(kBlockQ, length - i0);
      const float* q_block = q + i0 * dim;
      const float* grad_out_block = grad_out + i0 * dim;
      // S = Q K^T and dP = dO V^T (rows x kBlockK).
      gemm(rows, kBlockK, d, {q_block, dim, 1}, {scratch->kt, kBlockK},
           {p, kBlockK}, false);
      gemm(rows, kBlockK, d, {grad_out_block, dim, 1}, {scratch->vt, kBlockK},
           {ds, kBlockK}, false);
      if (fp.dropout.enabled) {
        FillDropoutTile(fp, s, i0, rows, j0, keys,
                        {kBlockQ, kBlockK, kBlockK, 1},
                        scratch->dropout_factors);
        Probabilities<true>(fp, i0, rows, j0, keys, scratch->dropout_factors,
                            scratch);
      } else {
        Probabilities<false>(fp, i0, rows, j0, keys, nullptr, scratch);
      }
      // dV += P^T dO, dK += dS^T Q (keys x dim), dQ += dS K (rows x dim).
      gemm(keys, dim, rows, {p, 1, kBlockK}, {grad_out_block, dim},
           {scratch->grad_v, dim}, true);
      gemm(keys, dim, rows, {ds, 1, kBlockK}, {q_block, dim},
           {scratch->grad_k, dim}, true);
      gemm(rows, dim, keys, {ds, kBlockK, 1}, {scratch->k, dim},
           {grad_q + i0 * dim, dim}, true);
    }
    StoreRows(fp, bp.grad_k, s, j0, keys, scratch->grad_k, dim,
              fp.softmax_scale, scratch->row);
    StoreRows(fp, bp.grad_v, s, j0, keys, scratch->grad_v, dim, fp.output_scale,
              scratch->row);
  }
  StoreRows(fp, bp.grad_q, s, 0, length, grad_q, dim, fp.softmax_scale,
            scratch->row);
}

}  // namespace

// Both layouts fit for 16-bit tensors, so that the workspace sized before a
// call suits whichever path runs it.
int64_t FlashBackwardWorkspacePerThread(const ForwardParams& p) {
  Carver counter(nullptr);
  BackwardScratch layout(MaxPositions(p), p.head_dim, p.dropout.enabled,
                         &counter);
  if (p.dtype == DataType::kFloat32) return counter.used();
  return std::max(counter.used(), FlashBackwardAmxWorkspacePerThread(p));
}

void FlashBackward(const BackwardParams& bp, float* workspace,
                   int num_threads) {
  const ForwardParams& fp = bp.forward;
  if (ActiveCpuPath() == CpuPath::kAmx && fp.dtype != DataType::kFloat32) {
    FlashBackwardAmx(bp, workspace, num_threads);
    return;
  }
  const ProblemList problems(fp);
  const WorkList work(problems, /*block_rows=*/0);
  const int64_t per_thread = FlashBackwardWorkspacePerThread(fp);
  const TileGemmFn gemm = ChooseTileGemm(RoundUpTo8(fp.head_dim));
#pragma omp parallel num_threads(num_threads)
  {
    Carver carver(workspace + omp_get_thread_num() * per_thread);
    BackwardScratch scratch(MaxPositions(fp), fp.head_dim, fp.dropout.enabled,
                            &carver);
#pragma omp for schedule(dynamic, 1)
    for (int64_t index = 0; index < work.size(); ++index) {
      int64_t block;
      const Segment s = work.Decode(index, &block);
      BackwardSegment(bp, s, gemm, &scratch);
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
