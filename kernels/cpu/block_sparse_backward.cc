// The block-sparse backward pass: first every row's D = rowsum(grad_out *
// out) and lse in base 2, then two sweeps that each have one writer per
// gradient element: per (batch, head, key block) over the query blocks that
// attend to it (dK, dV; queries as rows, k and v transposed once per key
// block), then per (batch, head, query block) over its key blocks (dQ;
// queries along the lanes, as in the forward pass). Both recompute
// P = 2^(S - lse) from q and k, and dS = P (dP - D).

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/block_sparse_attention.h"
#include "kernels/cpu/block_sparse_tiles.h"
#include "kernels/cpu/row_io.h"
#include "kernels/cpu/simd_convert.h"
#include "kernels/cpu/simd_exp.h"
#include "kernels/cpu/tile_gemm.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

// Loads what the query block contributes to every pair: q^T (scaled to base-2
// scores), q rows, grad_out rows and grad_out^T, lse in base 2 (+inf for rows
// with no key, so that their P is 0) and D.
void LoadQuerySide(const BackwardParams& bp, const TileShape& s,
                   const BlockAt& at, BlockTiles* tiles) {
  const ForwardParams& p = bp.forward;
  const int64_t lanes = s.padded_rows;
  LoadQueryT(p, s, at, p.q, p.softmax_scale * kLog2e, tiles->qt, tiles->row);
  LoadQueryT(p, s, at, bp.grad_out, 1.0f, tiles->dot, tiles->row);
  std::fill(tiles->q_rows, tiles->q_rows + lanes * s.padded_dim, 0.0f);
  std::fill(tiles->do_rows, tiles->do_rows + lanes * s.padded_dim, 0.0f);
  LoadRows(p, s, at, p.q, tiles->q_rows);
  LoadRows(p, s, at, bp.grad_out, tiles->do_rows);
  const float* lse =
      p.lse + at.b * p.lse_stride_b + at.h * p.lse_stride_h + at.block * s.rows;
  std::fill(tiles->lse2, tiles->lse2 + lanes,
            std::numeric_limits<float>::infinity());
  std::fill(tiles->delta, tiles->delta + lanes, 0.0f);
  for (int64_t i = 0; i < s.rows; ++i) {
    if (std::isfinite(lse[i])) tiles->lse2[i] = lse[i] * kLog2e;
    LoadRowFast(RowAddress(p.out, p.dtype, at.b, at.block * s.rows + i, at.h),
                p.dtype, s.dim, tiles->row);
    const float* grad_out = tiles->do_rows + i * s.padded_dim;
    float delta = 0.0f;
    for (int64_t a = 0; a < s.dim; ++a) delta += grad_out[a] * tiles->row[a];
    tiles->delta[i] = delta;
  }
}

// With k and v rows of `key_block` and the query side loaded: P^T into
// tiles->st and dS^T into tiles->dpt.
void ProbabilitiesAndScoreGradient(const ForwardParams& p, const TileShape& s,
                                   const BlockAt& query, int64_t key_block,
                                   BlockTiles* tiles) {
  const int64_t lanes = s.padded_rows;
  Scores(p, s, query, key_block, tiles);
  // dP^T = V dO^T: (keys x dim) by (dim x lanes).
  s.gemm(s.rows, lanes, s.dim, {tiles->v_rows, s.padded_dim, 1},
         {tiles->dot, lanes}, {tiles->dpt, lanes}, /*accumulate=*/false);
  for (int64_t j = 0; j < s.rows; ++j) {
    float* st = tiles->st + j * lanes;
    float* dpt = tiles->dpt + j * lanes;
    for (int64_t i8 = 0; i8 < lanes; i8 += 8) {
      const __m256 prob = Exp2(_mm256_sub_ps(
          _mm256_loadu_ps(st + i8), _mm256_loadu_ps(tiles->lse2 + i8)));
      _mm256_storeu_ps(st + i8, prob);
      const __m256 ds = _mm256_mul_ps(
          prob, _mm256_sub_ps(_mm256_loadu_ps(dpt + i8),
                              _mm256_loadu_ps(tiles->delta + i8)));
      _mm256_storeu_ps(dpt + i8, ds);
    }
  }
}

// Stores `rows` rows of `tile` (padded_dim apart) times `factor` into the
// block's rows of `t`.
void StoreRows(const ForwardParams& p, const TileShape& s, const BlockAt& at,
               const float* tile, float factor, const TensorParams& t,
               float* row) {
  for (int64_t i = 0; i < s.rows; ++i) {
    for (int64_t a = 0; a < s.dim; ++a) {
      row[a] = tile[i * s.padded_dim + a] * factor;
    }
    StoreRow(row, p.dtype, s.dim,
             RowAddress(t, p.dtype, at.b, at.block * s.rows + i, at.h));
  }
}

// Every row's D = rowsum(grad_out * out) and lse in base 2 (+inf for rows
// with no key, so that their probabilities are 0), [batch, heads, seq].
struct RowStatistics {
  const float* delta;
  const float* lse2;
};

// Returns the index of position `row` of (batch, head) `at` in the row
// statistics.
int64_t RowIndex(const ForwardParams& p, const BlockAt& at, int64_t row) {
  return (at.b * p.num_heads + at.h) * p.seq_len + row;
}

void ComputeRowStatistics(const BackwardParams& bp, float* delta, float* lse2) {
  const ForwardParams& p = bp.forward;
  const int64_t rows = p.batch * p.num_heads * p.seq_len;
#pragma omp parallel
  {
    std::vector<float> grad_out(p.head_dim), out(p.head_dim);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t n = r % p.seq_len;
      const int64_t h = r / p.seq_len % p.num_heads;
      const int64_t b = r / p.seq_len / p.num_heads;
      LoadRowFast(RowAddress(bp.grad_out, p.dtype, b, n, h), p.dtype,
                  p.head_dim, grad_out.data());
      LoadRowFast(RowAddress(p.out, p.dtype, b, n, h), p.dtype, p.head_dim,
                  out.data());
      float sum = 0.0f;
      for (int64_t a = 0; a < p.head_dim; ++a) sum += grad_out[a] * out[a];
      delta[r] = sum;
      const float lse = p.lse[b * p.lse_stride_b + h * p.lse_stride_h + n];
      lse2[r] = std::isfinite(lse) ? lse * kLog2e
                                   : std::numeric_limits<float>::infinity();
    }
  }
}

// dK and dV of one key block over the query blocks that attend to it, with
// queries as rows: S = q k^T and dP = dO v^T (queries x keys) from k^T and
// v^T packed once per key block, so a query block costs two row loads.
void KeyBlockGradients(const BackwardParams& bp, const BlockLists& lists,
                       const TileShape& s, const BlockAt& at,
                       const RowStatistics& stats, BlockTiles* tiles) {
  const ForwardParams& p = bp.forward;
  const int64_t lanes = s.padded_rows;
  LoadQueryT(p, s, at, p.k, 1.0f, tiles->kt, tiles->row);
  LoadQueryT(p, s, at, p.v, 1.0f, tiles->vt, tiles->row);
  // 1 for the block's keys, 0 for padded keys and the lanes past the block.
  float* key_weight = tiles->reference;
  const uint8_t* mask = p.sequence.key_padding_mask;
  for (int64_t j = 0; j < lanes; ++j) {
    const bool padded =
        j >= s.rows ||
        (mask != nullptr &&
         mask[at.b * p.sequence.mask_stride_b + at.block * s.rows + j] != 0);
    key_weight[j] = padded ? 0.0f : 1.0f;
  }
  float* grad_k = tiles->acc_a;
  float* grad_v = tiles->acc_b;
  std::fill(grad_k, grad_k + s.rows * s.padded_dim, 0.0f);
  std::fill(grad_v, grad_v + s.rows * s.padded_dim, 0.0f);
  const __m256 score_scale = _mm256_set1_ps(p.softmax_scale * kLog2e);
  const int64_t list = LayoutHead(lists, at.h) * lists.num_blocks + at.block;
  for (int32_t e = lists.column_begin[list]; e < lists.column_begin[list + 1];
       ++e) {
    const int64_t query_block = lists.column_blocks[e];
    if (p.is_causal && query_block < at.block) continue;
    const BlockAt query{at.b, at.h, query_block};
    LoadRows(p, s, query, p.q, tiles->q_rows);
    LoadRows(p, s, query, bp.grad_out, tiles->do_rows);
    float* scores = tiles->st;  // S, then P (queries x keys).
    float* grads = tiles->dpt;  // dP, then dS.
    s.gemm(s.rows, lanes, s.dim, {tiles->q_rows, s.padded_dim, 1},
           {tiles->kt, lanes}, {scores, lanes}, /*accumulate=*/false);
    s.gemm(s.rows, lanes, s.dim, {tiles->do_rows, s.padded_dim, 1},
           {tiles->vt, lanes}, {grads, lanes}, /*accumulate=*/false);
    const bool diagonal = p.is_causal && query_block == at.block;
    for (int64_t i = 0; i < s.rows; ++i) {
      const int64_t row = RowIndex(p, query, query_block * s.rows + i);
      const __m256 lse2 = _mm256_set1_ps(stats.lse2[row]);
      const __m256 delta = _mm256_set1_ps(stats.delta[row]);
      float* sp = scores + i * lanes;
      float* gp = grads + i * lanes;
      for (int64_t j8 = 0; j8 < lanes; j8 += 8) {
        const __m256 prob = _mm256_mul_ps(
            Exp2(_mm256_fmsub_ps(_mm256_loadu_ps(sp + j8), score_scale, lse2)),
            _mm256_loadu_ps(key_weight + j8));
        _mm256_storeu_ps(sp + j8, prob);
        _mm256_storeu_ps(
            gp + j8, _mm256_mul_ps(
                         prob, _mm256_sub_ps(_mm256_loadu_ps(gp + j8), delta)));
      }
      if (diagonal) {
        // Keys after the query.
        std::fill(sp + i + 1, sp + s.rows, 0.0f);
        std::fill(gp + i + 1, gp + s.rows, 0.0f);
      }
    }
    // dV += P^T dO and dK += dS^T q: (keys x queries) by (queries x dim),
    // P and dS read transposed.
    s.gemm(s.rows, s.padded_dim, s.rows, {scores, 1, lanes},
           {tiles->do_rows, s.padded_dim}, {grad_v, s.padded_dim},
           /*accumulate=*/true);
    s.gemm(s.rows, s.padded_dim, s.rows, {grads, 1, lanes},
           {tiles->q_rows, s.padded_dim}, {grad_k, s.padded_dim},
           /*accumulate=*/true);
  }
  StoreRows(p, s, at, grad_k, p.softmax_scale, bp.grad_k, tiles->row);
  StoreRows(p, s, at, grad_v, 1.0f, bp.grad_v, tiles->row);
}

void QueryBlockGradient(const BackwardParams& bp, const BlockLists& lists,
                        const TileShape& s, const BlockAt& at,
                        BlockTiles* tiles) {
  const ForwardParams& p = bp.forward;
  const int64_t lanes = s.padded_rows;
  LoadQuerySide(bp, s, at, tiles);
  float* grad_q = tiles->acc_a;
  std::fill(grad_q, grad_q + lanes * s.padded_dim, 0.0f);
  const int64_t list = LayoutHead(lists, at.h) * lists.num_blocks + at.block;
  for (int32_t e = lists.row_begin[list]; e < lists.row_begin[list + 1]; ++e) {
    const int64_t key_block = lists.row_blocks[e];
    if (p.is_causal && key_block > at.block) continue;
    const BlockAt keys{at.b, at.h, key_block};
    LoadRows(p, s, keys, p.k, tiles->k_rows);
    LoadRows(p, s, keys, p.v, tiles->v_rows);
    ProbabilitiesAndScoreGradient(p, s, at, key_block, tiles);
    // dQ += dS K: (lanes x keys) by (keys x dim), dS read from dS^T.
    s.gemm(s.rows, s.padded_dim, s.rows, {tiles->dpt, 1, lanes},
           {tiles->k_rows, s.padded_dim}, {grad_q, s.padded_dim},
           /*accumulate=*/true);
  }
  StoreRows(p, s, at, grad_q, p.softmax_scale, bp.grad_q, tiles->row);
}

}  // namespace

namespace {

int64_t RowStatisticsFloats(const ForwardParams& p) {
  return (p.batch * p.num_heads * p.seq_len + 15) / 16 * 16;
}

}  // namespace

int64_t BlockSparseBackwardWorkspace(const ForwardParams& params,
                                     const BlockLists& lists, int num_threads) {
  return 2 * RowStatisticsFloats(params) +
         num_threads * BlockSparseWorkspacePerThread(params, lists);
}

void BlockSparseBackward(const BackwardParams& bp, const BlockLists& lists,
                         float* workspace, int num_threads) {
  const ForwardParams& p = bp.forward;
  const TileShape shape(p, lists);
  float* delta = workspace;
  float* lse2 = workspace + RowStatisticsFloats(p);
  ComputeRowStatistics(bp, delta, lse2);
  const RowStatistics stats{delta, lse2};
  workspace += 2 * RowStatisticsFloats(p);
  const int64_t per_thread = BlockSparseWorkspacePerThread(p, lists);
  const int64_t units = p.batch * p.num_heads * lists.num_blocks;
#pragma omp parallel num_threads(num_threads)
  {
    Carver carver(workspace + omp_get_thread_num() * per_thread);
    BlockTiles tiles(shape, &carver);
#pragma omp for schedule(dynamic, 1)
    for (int64_t unit = 0; unit < 2 * units; ++unit) {
      const int64_t u = unit % units;
      const BlockAt at{u / (p.num_heads * lists.num_blocks),
                       u / lists.num_blocks % p.num_heads,
                       u % lists.num_blocks};
      if (unit < units) {
        KeyBlockGradients(bp, lists, shape, at, stats, &tiles);
      } else {
        QueryBlockGradient(bp, lists, shape, at, &tiles);
      }
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
