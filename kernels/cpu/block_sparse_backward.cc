// The block-sparse backward pass: one sweep per (batch, head), as the dense
// kernel's backward pass (flash_backward.cc) does per problem: one thread
// loads the head's q and grad_out once (with every row's lse in base 2 and
// D = rowsum(grad_out * out)), walks its key blocks in ascending
// order and, per key block, the query blocks that attend to it (its column
// list). Each pair computes the scores and dP once, turns them into P and
// dS = P (dP - D), and feeds all three gradients from them: dV += P^T dO and
// dK += dS^T q in the key block's tiles (stored when its column is done),
// dQ += dS K in a float32 buffer of the whole head (stored at the end). Five
// tile products per block pair; a thread owns every gradient row of its
// (batch, head) and adds in a fixed order, so results do not depend on the
// thread count.
//
// On the AVX-512 and AMX paths the pair runs with queries along the lanes (S^T
// = K Q^T, as the forward pass), so that the product itself ends in P^T =
// 2^(S^T - lse) (TileGemmExp2Avx512, lse per column); q^T and dO^T of the
// head are packed once for that. The AVX2 path keeps queries as rows and
// takes the exponential in a separate pass.

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
#include "kernels/cpu/tile_gemm_avx512.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

// One thread's buffers: the block tiles plus q, grad_out and dQ of a whole
// (batch, head), seq_len x padded_dim each, zero padded; on the AVX-512 path
// also, per query block, q^T (scaled to base-2 scores) and dO^T (padded_dim x
// padded_rows each) and lse2 and D over padded_rows lanes (+inf and 0 in the
// lanes past the block).
struct HeadScratch {
  HeadScratch(const ForwardParams& p, const TileShape& s, int64_t num_blocks,
              Carver* carver)
      : tiles(s, carver),
        q(carver->Take(p.seq_len * s.padded_dim)),
        grad_out(carver->Take(p.seq_len * s.padded_dim)),
        grad_q(carver->Take(p.seq_len * s.padded_dim)),
        lse2_rows(carver->Take(p.seq_len)),
        delta_rows(carver->Take(p.seq_len)) {
    if (!s.fused_exp2) return;
    const int64_t lanes = s.padded_rows;
    qt = carver->Take(num_blocks * s.padded_dim * lanes);
    dot = carver->Take(num_blocks * s.padded_dim * lanes);
    lse2 = carver->Take(num_blocks * lanes);
    delta = carver->Take(num_blocks * lanes);
    column_sum = carver->Take(lanes);
  }

  BlockTiles tiles;
  float* q;
  float* grad_out;
  float* grad_q;
  // Per row of the head: lse in base 2 (+inf for rows with no key, so that
  // their probabilities are 0) and D = rowsum(grad_out * out).
  float* lse2_rows;
  float* delta_rows;
  float* qt = nullptr;
  float* dot = nullptr;
  float* lse2 = nullptr;
  float* delta = nullptr;
  float* column_sum = nullptr;  // What TileGemmExp2Avx512 adds up; unused.
};

// Stores `rows` rows of `tile` (padded_dim apart) times `factor` into rows
// first_row .. first_row + rows - 1 of (batch b, head h) of `t`.
void StoreRows(const ForwardParams& p, const TileShape& s, int64_t b, int64_t h,
               int64_t first_row, int64_t rows, const float* tile, float factor,
               const TensorParams& t, float* row) {
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t a = 0; a < s.dim; ++a) {
      row[a] = tile[i * s.padded_dim + a] * factor;
    }
    StoreRowFast(row, p.dtype, s.dim,
                 RowAddress(t, p.dtype, b, first_row + i, h));
  }
}

// Sets key_weight to 1 for the keys of key block `at` and 0 for padded keys
// and the lanes past the block.
void KeyWeights(const ForwardParams& p, const TileShape& s, const BlockAt& at,
                float* key_weight) {
  const uint8_t* mask = p.sequence.key_padding_mask;
  for (int64_t j = 0; j < s.padded_rows; ++j) {
    const bool padded =
        j >= s.rows ||
        (mask != nullptr &&
         mask[at.b * p.sequence.mask_stride_b + at.block * s.rows + j] != 0);
    key_weight[j] = padded ? 0.0f : 1.0f;
  }
}

// AVX2 path: turns S (tiles->st, queries x keys) into P and dP (tiles->dpt)
// into dS for a query block (its rows' lse2 and D) against the key block
// whose weights are in `key_weight`: P = 2^(S scale log2 e - lse2) times the
// key weight, zero after the query on a causal diagonal block; dS = P (dP -
// D).
void ProbabilitiesAndScoreGradient(const ForwardParams& p, const TileShape& s,
                                   const float* lse2, const float* delta,
                                   const float* key_weight, bool diagonal,
                                   BlockTiles* tiles) {
  const int64_t lanes = s.padded_rows;
  const __m256 score_scale = _mm256_set1_ps(p.softmax_scale * kLog2e);
  for (int64_t i = 0; i < s.rows; ++i) {
    const __m256 row_lse2 = _mm256_set1_ps(lse2[i]);
    const __m256 row_delta = _mm256_set1_ps(delta[i]);
    float* sp = tiles->st + i * lanes;
    float* gp = tiles->dpt + i * lanes;
    for (int64_t j8 = 0; j8 < lanes; j8 += 8) {
      const __m256 prob =
          _mm256_mul_ps(Exp2(_mm256_fmsub_ps(_mm256_loadu_ps(sp + j8),
                                             score_scale, row_lse2)),
                        _mm256_loadu_ps(key_weight + j8));
      _mm256_storeu_ps(sp + j8, prob);
      _mm256_storeu_ps(
          gp + j8, _mm256_mul_ps(prob, _mm256_sub_ps(_mm256_loadu_ps(gp + j8),
                                                     row_delta)));
    }
    if (diagonal) {
      // Keys after the query.
      std::fill(sp + i + 1, sp + s.rows, 0.0f);
      std::fill(gp + i + 1, gp + s.rows, 0.0f);
    }
  }
}

// Packs, per query block of the head, q^T (times scale * log2 e) and dO^T
// from the loaded rows, and lse2 and D over padded lanes.
void PackQuerySide(const ForwardParams& p, const TileShape& s,
                   int64_t num_blocks, HeadScratch* scratch) {
  const int64_t lanes = s.padded_rows;
  const int64_t pd = s.padded_dim;
  const float score_scale = p.softmax_scale * kLog2e;
  for (int64_t block = 0; block < num_blocks; ++block) {
    const float* q = scratch->q + block * s.rows * pd;
    const float* grad_out = scratch->grad_out + block * s.rows * pd;
    float* qt = scratch->qt + block * pd * lanes;
    float* dot = scratch->dot + block * pd * lanes;
    std::fill(qt, qt + pd * lanes, 0.0f);
    std::fill(dot, dot + pd * lanes, 0.0f);
    for (int64_t i = 0; i < s.rows; ++i) {
      for (int64_t a = 0; a < s.dim; ++a) {
        qt[a * lanes + i] = q[i * pd + a] * score_scale;
        dot[a * lanes + i] = grad_out[i * pd + a];
      }
    }
    float* lse2 = scratch->lse2 + block * lanes;
    float* delta = scratch->delta + block * lanes;
    std::fill(lse2, lse2 + lanes, std::numeric_limits<float>::infinity());
    std::fill(delta, delta + lanes, 0.0f);
    const int64_t row = block * s.rows;
    std::copy(scratch->lse2_rows + row, scratch->lse2_rows + row + s.rows,
              lse2);
    std::copy(scratch->delta_rows + row, scratch->delta_rows + row + s.rows,
              delta);
  }
}

// Sub-tiles of a block pair on the AVX-512 path: at most 64 keys by 64
// query lanes, so that P^T and dS^T (16 KiB each) stay in L1 while the five
// products read them, as the dense kernel's 64 x 64 tiles do.
constexpr int64_t kSubKeys = 64;
constexpr int64_t kSubLanes = 64;

// One (query block, key block) pair on the AVX-512 path, sub-tile by
// sub-tile, keys as rows and queries along the lanes: P^T = 2^(K Q^T - lse2)
// (zero for padded keys and, on a causal diagonal block, keys after their
// query) and dS^T = P^T (V dO^T - D), then dV += P^T dO, dK += dS^T q and
// dQ += dS K. Sub-tiles run in a fixed order.
void PairKeysAsRows(const ForwardParams& p, const TileShape& s,
                    const BlockAt& keys, int64_t query_block, float* grad_k,
                    float* grad_v, HeadScratch* scratch) {
  const int64_t lanes = s.padded_rows;
  const int64_t pd = s.padded_dim;
  BlockTiles* tiles = &scratch->tiles;
  float* pt = tiles->st;
  float* dst = tiles->dpt;
  const float* qt = scratch->qt + query_block * pd * lanes;
  const float* dot = scratch->dot + query_block * pd * lanes;
  const float* q = scratch->q + query_block * s.rows * pd;
  const float* grad_out = scratch->grad_out + query_block * s.rows * pd;
  float* grad_q = scratch->grad_q + query_block * s.rows * pd;
  const bool diagonal = p.is_causal && query_block == keys.block;
  const uint8_t* mask = p.sequence.key_padding_mask;
  const uint8_t* padded =
      mask == nullptr
          ? nullptr
          : mask + keys.b * p.sequence.mask_stride_b + keys.block * s.rows;
  for (int64_t j0 = 0; j0 < s.rows; j0 += kSubKeys) {
    const int64_t kk = std::min(kSubKeys, s.rows - j0);
    for (int64_t i0 = 0; i0 < lanes; i0 += kSubLanes) {
      const int64_t width = std::min(kSubLanes, lanes - i0);
      // Queries of the sub-tile that exist (the rest are padding lanes).
      const int64_t queries = std::min(width, s.rows - i0);
      if (queries <= 0) break;
      // Causal: every key after every query of the sub-tile.
      if (diagonal && j0 > i0 + queries - 1) continue;
      std::fill(scratch->column_sum, scratch->column_sum + width, 0.0f);
      TileGemmExp2Avx512(kk, width, s.dim, {tiles->k_rows + j0 * pd, pd, 1},
                         {qt + i0, lanes}, {pt, width},
                         scratch->lse2 + query_block * lanes + i0,
                         scratch->column_sum);
      if (diagonal) {
        // Key j0 + j after query i0 + i.
        for (int64_t j = 0; j < kk; ++j) {
          const int64_t before = std::clamp<int64_t>(j0 + j - i0, 0, width);
          std::fill(pt + j * width, pt + j * width + before, 0.0f);
        }
      }
      if (padded != nullptr) {
        for (int64_t j = 0; j < kk; ++j) {
          if (padded[j0 + j] != 0) {
            std::fill(pt + j * width, pt + (j + 1) * width, 0.0f);
          }
        }
      }
      s.gemm(kk, width, s.dim, {tiles->v_rows + j0 * pd, pd, 1},
             {dot + i0, lanes}, {dst, width}, /*accumulate=*/false);
      const float* delta = scratch->delta + query_block * lanes + i0;
      for (int64_t j = 0; j < kk; ++j) {
        const float* prob = pt + j * width;
        float* grads = dst + j * width;
        for (int64_t i8 = 0; i8 < width; i8 += 8) {
          _mm256_storeu_ps(
              grads + i8,
              _mm256_mul_ps(_mm256_loadu_ps(prob + i8),
                            _mm256_sub_ps(_mm256_loadu_ps(grads + i8),
                                          _mm256_loadu_ps(delta + i8))));
        }
      }
      // dV += P^T dO and dK += dS^T q: (keys x queries) by (queries x dim);
      // dQ += dS K: (queries x keys) by (keys x dim), dS read from dS^T.
      s.gemm(kk, pd, queries, {pt, width, 1}, {grad_out + i0 * pd, pd},
             {grad_v + j0 * pd, pd}, /*accumulate=*/true);
      s.gemm(kk, pd, queries, {dst, width, 1}, {q + i0 * pd, pd},
             {grad_k + j0 * pd, pd}, /*accumulate=*/true);
      s.gemm(queries, pd, kk, {dst, 1, width}, {tiles->k_rows + j0 * pd, pd},
             {grad_q + i0 * pd, pd}, /*accumulate=*/true);
    }
  }
}

// All three gradients of (batch b, head h).
void HeadGradients(const BackwardParams& bp, const BlockLists& lists,
                   const TileShape& s, int64_t b, int64_t h,
                   HeadScratch* scratch) {
  const ForwardParams& p = bp.forward;
  const int64_t lanes = s.padded_rows;
  const int64_t pd = s.padded_dim;
  BlockTiles* tiles = &scratch->tiles;
  for (int64_t block = 0; block < lists.num_blocks; ++block) {
    const BlockAt at{b, h, block};
    LoadRows(p, s, at, p.q, scratch->q + block * s.rows * pd);
    LoadRows(p, s, at, bp.grad_out, scratch->grad_out + block * s.rows * pd);
  }
  const float* lse = p.lse + b * p.lse_stride_b + h * p.lse_stride_h;
  for (int64_t n = 0; n < p.seq_len; ++n) {
    LoadRowFast(RowAddress(p.out, p.dtype, b, n, h), p.dtype, s.dim,
                tiles->row);
    const float* grad_out = scratch->grad_out + n * pd;
    float delta = 0.0f;
    for (int64_t a = 0; a < s.dim; ++a) delta += grad_out[a] * tiles->row[a];
    scratch->delta_rows[n] = delta;
    scratch->lse2_rows[n] = std::isfinite(lse[n])
                                ? lse[n] * kLog2e
                                : std::numeric_limits<float>::infinity();
  }
  std::fill(scratch->grad_q, scratch->grad_q + p.seq_len * pd, 0.0f);
  if (s.fused_exp2) PackQuerySide(p, s, lists.num_blocks, scratch);
  float* key_weight = tiles->reference;
  float* grad_k = tiles->acc_a;
  float* grad_v = tiles->acc_b;
  for (int64_t key_block = 0; key_block < lists.num_blocks; ++key_block) {
    const BlockAt at{b, h, key_block};
    std::fill(grad_k, grad_k + s.rows * pd, 0.0f);
    std::fill(grad_v, grad_v + s.rows * pd, 0.0f);
    const int64_t list = LayoutHead(lists, h) * lists.num_blocks + key_block;
    const int32_t first = lists.column_begin[list];
    const int32_t last = lists.column_begin[list + 1];
    if (first < last) {
      LoadRows(p, s, at, p.k, tiles->k_rows);
      if (s.fused_exp2) {
        LoadRows(p, s, at, p.v, tiles->v_rows);
      } else {
        LoadQueryT(p, s, at, p.k, 1.0f, tiles->kt, tiles->row);
        LoadQueryT(p, s, at, p.v, 1.0f, tiles->vt, tiles->row);
        KeyWeights(p, s, at, key_weight);
      }
    }
    for (int32_t e = first; e < last; ++e) {
      const int64_t query_block = lists.column_blocks[e];
      if (p.is_causal && query_block < key_block) continue;
      const float* q = scratch->q + query_block * s.rows * pd;
      const float* grad_out = scratch->grad_out + query_block * s.rows * pd;
      float* grad_q = scratch->grad_q + query_block * s.rows * pd;
      if (s.fused_exp2) {
        PairKeysAsRows(p, s, at, query_block, grad_k, grad_v, scratch);
        continue;
      }
      // S = q k^T and dP = dO v^T: (queries x dim) by (dim x keys).
      s.gemm(s.rows, lanes, s.dim, {q, pd, 1}, {tiles->kt, lanes},
             {tiles->st, lanes}, /*accumulate=*/false);
      s.gemm(s.rows, lanes, s.dim, {grad_out, pd, 1}, {tiles->vt, lanes},
             {tiles->dpt, lanes}, /*accumulate=*/false);
      const int64_t row = query_block * s.rows;
      ProbabilitiesAndScoreGradient(
          p, s, scratch->lse2_rows + row, scratch->delta_rows + row, key_weight,
          /*diagonal=*/p.is_causal && query_block == key_block, tiles);
      // dV += P^T dO and dK += dS^T q: (keys x queries) by (queries x dim),
      // P and dS read transposed; dQ += dS K: (queries x keys) by
      // (keys x dim).
      s.gemm(s.rows, pd, s.rows, {tiles->st, 1, lanes}, {grad_out, pd},
             {grad_v, pd}, /*accumulate=*/true);
      s.gemm(s.rows, pd, s.rows, {tiles->dpt, 1, lanes}, {q, pd}, {grad_k, pd},
             /*accumulate=*/true);
      s.gemm(s.rows, pd, s.rows, {tiles->dpt, lanes, 1}, {tiles->k_rows, pd},
             {grad_q, pd}, /*accumulate=*/true);
    }
    StoreRows(p, s, b, h, key_block * s.rows, s.rows, grad_k, p.softmax_scale,
              bp.grad_k, tiles->row);
    StoreRows(p, s, b, h, key_block * s.rows, s.rows, grad_v, 1.0f, bp.grad_v,
              tiles->row);
  }
  StoreRows(p, s, b, h, 0, p.seq_len, scratch->grad_q, p.softmax_scale,
            bp.grad_q, tiles->row);
}

int64_t BackwardWorkspacePerThread(const ForwardParams& p,
                                   const BlockLists& lists) {
  Carver counter(nullptr);
  HeadScratch layout(p, TileShape(p, lists), lists.num_blocks, &counter);
  return counter.used();
}

}  // namespace

int64_t BlockSparseBackwardWorkspace(const ForwardParams& params,
                                     const BlockLists& lists, int num_threads) {
  return num_threads * BackwardWorkspacePerThread(params, lists);
}

void BlockSparseBackward(const BackwardParams& bp, const BlockLists& lists,
                         float* workspace, int num_threads) {
  const ForwardParams& p = bp.forward;
  const TileShape shape(p, lists);
  const int64_t per_thread = BackwardWorkspacePerThread(p, lists);
  const int64_t units = p.batch * p.num_heads;
#pragma omp parallel num_threads(num_threads)
  {
    Carver carver(workspace + omp_get_thread_num() * per_thread);
    HeadScratch scratch(p, shape, lists.num_blocks, &carver);
#pragma omp for schedule(dynamic, 1)
    for (int64_t unit = 0; unit < units; ++unit) {
      HeadGradients(bp, lists, shape, unit / p.num_heads, unit % p.num_heads,
                    &scratch);
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
