// The block-sparse forward pass: per (batch, head, query block), an online
// softmax over the key blocks of its list, base-2 scores with queries along
// the SIMD lanes (block_sparse_tiles.h).

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/block_sparse_attention.h"
#include "kernels/cpu/block_sparse_tiles.h"
#include "kernels/cpu/cpu_path.h"
#include "kernels/cpu/flash_forward_tile.h"
#include "kernels/cpu/row_io.h"
#include "kernels/cpu/simd_convert.h"
#include "kernels/cpu/simd_exp.h"
#include "kernels/cpu/tile_gemm.h"
#include "kernels/cpu/tile_gemm_avx512.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// Folds the scores in tiles->st (keys x lanes) and the v rows of their key
// block into the running max, sum and O^T of the query block. The tile is
// walked row by row (contiguous lanes) in each of its two passes: the new
// maxima, then the probabilities and their sums.
void FoldKeyBlock(const TileShape& s, BlockTiles* tiles) {
  const int64_t lanes = s.padded_rows;
  float* st = tiles->st;
  float* base = tiles->reference;
  for (int64_t i8 = 0; i8 < lanes; i8 += 8) {
    _mm256_storeu_ps(base + i8, _mm256_loadu_ps(tiles->row_max + i8));
  }
  for (int64_t j = 0; j < s.rows; ++j) {
    const float* scores = st + j * lanes;
    for (int64_t i8 = 0; i8 < lanes; i8 += 8) {
      _mm256_storeu_ps(base + i8, _mm256_max_ps(_mm256_loadu_ps(base + i8),
                                                _mm256_loadu_ps(scores + i8)));
    }
  }
  // Lanes without any key so far subtract 0: 2^(-inf - 0) is exactly 0,
  // where -inf - (-inf) would be NaN.
  const __m256 minus_inf = _mm256_set1_ps(kMinusInf);
  for (int64_t i8 = 0; i8 < lanes; i8 += 8) {
    const __m256 new_max = _mm256_loadu_ps(base + i8);
    const __m256 no_key = _mm256_cmp_ps(new_max, minus_inf, _CMP_EQ_OQ);
    const __m256 reference =
        _mm256_blendv_ps(new_max, _mm256_setzero_ps(), no_key);
    const __m256 alpha =
        Exp2(_mm256_sub_ps(_mm256_loadu_ps(tiles->row_max + i8), reference));
    _mm256_storeu_ps(
        tiles->row_sum + i8,
        _mm256_mul_ps(_mm256_loadu_ps(tiles->row_sum + i8), alpha));
    _mm256_storeu_ps(tiles->row_max + i8, new_max);
    _mm256_storeu_ps(base + i8, reference);
    for (int64_t a = 0; a < s.dim; ++a) {
      float* o = tiles->ot + a * lanes + i8;
      _mm256_storeu_ps(o, _mm256_mul_ps(_mm256_loadu_ps(o), alpha));
    }
  }
  for (int64_t j = 0; j < s.rows; ++j) {
    float* scores = st + j * lanes;
    for (int64_t i8 = 0; i8 < lanes; i8 += 8) {
      const __m256 p = Exp2(_mm256_sub_ps(_mm256_loadu_ps(scores + i8),
                                          _mm256_loadu_ps(base + i8)));
      _mm256_storeu_ps(scores + i8, p);
      _mm256_storeu_ps(tiles->row_sum + i8,
                       _mm256_add_ps(_mm256_loadu_ps(tiles->row_sum + i8), p));
    }
  }
  // O^T += V^T P^T: (dim x keys) by (keys x lanes).
  s.gemm(s.dim, lanes, s.rows, {tiles->v_rows, 1, s.padded_dim}, {st, lanes},
         {tiles->ot, lanes}, /*accumulate=*/true);
}

// Writes the normalised rows of the query block and their log-sum-exp; rows
// with no key (and padded query rows) get 0 and -inf.
void StoreQueryBlock(const ForwardParams& p, const TileShape& s,
                     const BlockAt& at, BlockTiles* tiles) {
  const int64_t lanes = s.padded_rows;
  const uint8_t* mask = p.sequence.key_padding_mask;
  for (int64_t i = 0; i < s.rows; ++i) {
    const int64_t position = at.block * s.rows + i;
    const bool padded =
        mask != nullptr && mask[at.b * p.sequence.mask_stride_b + position];
    const float sum = tiles->row_sum[i];
    const bool empty = padded || !(sum > 0.0f);
    const float factor = empty ? 0.0f : 1.0f / sum;
    for (int64_t a = 0; a < s.dim; ++a) {
      tiles->row[a] = tiles->ot[a * lanes + i] * factor;
    }
    StoreRowFast(tiles->row, p.dtype, s.dim,
                 RowAddress(p.out, p.dtype, at.b, position, at.h));
    if (p.lse != nullptr) {
      p.lse[at.b * p.lse_stride_b + at.h * p.lse_stride_h + position] =
          empty ? kMinusInf : (tiles->row_max[i] + std::log2(sum)) * kLn2;
    }
  }
}

// Whether a key block's scores need masking: the causal diagonal block, or
// a block with a padded key.
bool NeedsMask(const ForwardParams& p, const TileShape& s, const BlockAt& query,
               int64_t key_block) {
  if (p.is_causal && key_block == query.block) return true;
  const uint8_t* mask = p.sequence.key_padding_mask;
  if (mask == nullptr) return false;
  const uint8_t* keys =
      mask + query.b * p.sequence.mask_stride_b + key_block * s.rows;
  for (int64_t j = 0; j < s.rows; ++j) {
    if (keys[j] != 0) return true;
  }
  return false;
}

// AVX-512 only: tries the fused product for an unmasked key block after the
// query block's first, as flash_forward_avx512.cc does: the probabilities
// 2^(score - running max) are formed while the scores are in registers, and
// kept when no lane's sum exceeds 2^kMaxSlack (no score more than kMaxSlack
// above its running max, which then stays where it is). Returns false, with
// tiles->st holding garbage, when the max has to move.
bool FusedProbabilities(const TileShape& s, BlockTiles* tiles) {
  const int64_t lanes = s.padded_rows;
  float* tile_sum = tiles->reference;
  std::fill(tile_sum, tile_sum + lanes, 0.0f);
  TileGemmExp2Avx512(s.rows, lanes, s.dim, {tiles->k_rows, s.padded_dim, 1},
                     {tiles->qt, lanes}, {tiles->st, lanes}, tiles->row_max,
                     tile_sum);
  const __m256 limit = _mm256_set1_ps(1 << static_cast<int>(kMaxSlack));
  for (int64_t i8 = 0; i8 < lanes; i8 += 8) {
    // Not "<=": a NaN sum also takes the exact path.
    const __m256 over =
        _mm256_cmp_ps(_mm256_loadu_ps(tile_sum + i8), limit, _CMP_NLE_UQ);
    if (_mm256_movemask_ps(over) != 0) return false;
  }
  for (int64_t i8 = 0; i8 < lanes; i8 += 8) {
    _mm256_storeu_ps(tiles->row_sum + i8,
                     _mm256_add_ps(_mm256_loadu_ps(tiles->row_sum + i8),
                                   _mm256_loadu_ps(tile_sum + i8)));
  }
  return true;
}

// One thread's forward buffers: the block tiles, and k and v (seq_len x
// padded_dim each) of the key blocks it has loaded for the (batch, head) it
// works in, so that a key block many query blocks attend to is converted
// once per thread and head rather than once per pair.
struct ForwardScratch {
  ForwardScratch(const ForwardParams& p, const TileShape& s, int64_t num_blocks,
                 Carver* carver)
      : tiles(s, carver),
        k(carver->Take(p.seq_len * s.padded_dim)),
        v(carver->Take(p.seq_len * s.padded_dim)),
        loaded_for(num_blocks, -1) {}

  // Points tiles.k_rows and tiles.v_rows at key block `keys`, loading it
  // unless it is already there for the same (batch, head).
  void UseKeyBlock(const ForwardParams& p, const TileShape& s,
                   const BlockAt& keys) {
    const int64_t offset = keys.block * s.rows * s.padded_dim;
    const int64_t head = keys.b * p.num_heads + keys.h;
    if (loaded_for[keys.block] != head) {
      LoadRows(p, s, keys, p.k, k + offset);
      LoadRows(p, s, keys, p.v, v + offset);
      loaded_for[keys.block] = head;
    }
    tiles.k_rows = k + offset;
    tiles.v_rows = v + offset;
  }

  BlockTiles tiles;
  float* k;
  float* v;
  // Per key block, the (batch * heads + head) whose rows k and v hold; -1
  // for none yet.
  std::vector<int64_t> loaded_for;
};

void ForwardQueryBlock(const ForwardParams& p, const BlockLists& lists,
                       const TileShape& s, const BlockAt& at,
                       ForwardScratch* scratch) {
  BlockTiles* tiles = &scratch->tiles;
  const int64_t lanes = s.padded_rows;
  LoadQueryT(p, s, at, p.q, p.softmax_scale * kLog2e, tiles->qt, tiles->row);
  std::fill(tiles->ot, tiles->ot + s.padded_dim * lanes, 0.0f);
  std::fill(tiles->row_max, tiles->row_max + lanes, kMinusInf);
  std::fill(tiles->row_sum, tiles->row_sum + lanes, 0.0f);
  const bool fused = ActiveCpuPath() != CpuPath::kAvx2;
  bool first = true;
  const int64_t list = LayoutHead(lists, at.h) * lists.num_blocks + at.block;
  for (int32_t e = lists.row_begin[list]; e < lists.row_begin[list + 1]; ++e) {
    const int64_t key_block = lists.row_blocks[e];
    if (p.is_causal && key_block > at.block) continue;
    const BlockAt keys{at.b, at.h, key_block};
    scratch->UseKeyBlock(p, s, keys);
    if (fused && !first && !NeedsMask(p, s, at, key_block) &&
        FusedProbabilities(s, tiles)) {
      // O^T += V^T P^T: (dim x keys) by (keys x lanes).
      s.gemm(s.dim, lanes, s.rows, {tiles->v_rows, 1, s.padded_dim},
             {tiles->st, lanes}, {tiles->ot, lanes}, /*accumulate=*/true);
      continue;
    }
    Scores(p, s, at, key_block, tiles);
    FoldKeyBlock(s, tiles);
    first = false;
  }
  StoreQueryBlock(p, s, at, tiles);
}

}  // namespace

int64_t BlockSparseWorkspacePerThread(const ForwardParams& params,
                                      const BlockLists& lists) {
  Carver counter(nullptr);
  ForwardScratch layout(params, TileShape(params, lists), lists.num_blocks,
                        &counter);
  return counter.used();
}

void BlockSparseForward(const ForwardParams& p, const BlockLists& lists,
                        float* workspace, int num_threads) {
  const TileShape shape(p, lists);
  const int64_t per_thread = BlockSparseWorkspacePerThread(p, lists);
  const int64_t units = p.batch * p.num_heads * lists.num_blocks;
#pragma omp parallel num_threads(num_threads)
  {
    Carver carver(workspace + omp_get_thread_num() * per_thread);
    ForwardScratch scratch(p, shape, lists.num_blocks, &carver);
#pragma omp for schedule(dynamic, 1)
    for (int64_t unit = 0; unit < units; ++unit) {
      const BlockAt at{unit / (p.num_heads * lists.num_blocks),
                       unit / lists.num_blocks % p.num_heads,
                       unit % lists.num_blocks};
      ForwardQueryBlock(p, lists, shape, at, &scratch);
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
