// The block-sparse backward pass, in two sweeps that each have one writer per
// gradient element: per (batch, head, key block) over the query blocks that
// attend to it (dK, dV), then per (batch, head, query block) over its key
// blocks (dQ). Both recompute P = 2^(S - lse) from q, k and the forward
// pass's lse, and dS = P (dP - D) with D = rowsum(grad_out * out).

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

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

void KeyBlockGradients(const BackwardParams& bp, const BlockLists& lists,
                       const TileShape& s, const BlockAt& at,
                       BlockTiles* tiles) {
  const ForwardParams& p = bp.forward;
  const int64_t lanes = s.padded_rows;
  LoadRows(p, s, at, p.k, tiles->k_rows);
  LoadRows(p, s, at, p.v, tiles->v_rows);
  float* grad_k = tiles->acc_a;
  float* grad_v = tiles->acc_b;
  std::fill(grad_k, grad_k + s.rows * s.padded_dim, 0.0f);
  std::fill(grad_v, grad_v + s.rows * s.padded_dim, 0.0f);
  const int64_t list = LayoutHead(lists, at.h) * lists.num_blocks + at.block;
  for (int32_t e = lists.column_begin[list]; e < lists.column_begin[list + 1];
       ++e) {
    const int64_t query_block = lists.column_blocks[e];
    if (p.is_causal && query_block < at.block) continue;
    const BlockAt query{at.b, at.h, query_block};
    LoadQuerySide(bp, s, query, tiles);
    ProbabilitiesAndScoreGradient(p, s, query, at.block, tiles);
    // dV += P^T dO and dK += dS^T q: (keys x lanes) by (lanes x dim).
    s.gemm(s.rows, s.padded_dim, lanes, {tiles->st, lanes, 1},
           {tiles->do_rows, s.padded_dim}, {grad_v, s.padded_dim},
           /*accumulate=*/true);
    s.gemm(s.rows, s.padded_dim, lanes, {tiles->dpt, lanes, 1},
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

void BlockSparseBackward(const BackwardParams& bp, const BlockLists& lists,
                         float* workspace, int num_threads) {
  const ForwardParams& p = bp.forward;
  const TileShape shape(p, lists);
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
        KeyBlockGradients(bp, lists, shape, at, &tiles);
      } else {
        QueryBlockGradient(bp, lists, shape, at, &tiles);
      }
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
