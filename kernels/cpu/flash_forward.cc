// The forward pass: per query block, an online softmax over key tiles.
//
// Tiles are transposed so that queries run along the SIMD lanes: the scores
// S^T = K Q^T (keys x queries) and the output O^T (head_dim x queries). Then
// the row statistics (max, sum) of the softmax are per-lane values with no
// horizontal reduction, k and v tiles are the broadcast operand of TileGemm
// in their natural row layout (a plain row copy, no transpose), and only the
// query block is transposed, once.

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/cpu/flash_attention.h"
#include "kernels/cpu/flash_common.h"
#include "kernels/cpu/row_io.h"
#include "kernels/cpu/simd_convert.h"
#include "kernels/cpu/simd_exp.h"
#include "kernels/cpu/simd_transpose.h"
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
// Query blocks of one work unit: each key tile is loaded once for all of
// them, which divides the traffic for k and v (a strided walk over the whole
// segment per unit) by their number. Their q and output tiles are held to
// 512 KiB: 16 blocks at head_dim 64, 8 at 128, 1 from 1024 on.
constexpr int64_t kMaxBlocksPerUnit = 16;
constexpr int64_t kUnitTileBytes = 512 * 1024;

int64_t BlocksPerUnit(int64_t head_dim) {
  const int64_t per_block = 2 * head_dim * kBlockQ * sizeof(float);
  return std::max<int64_t>(
      1, std::min<int64_t>(kMaxBlocksPerUnit, kUnitTileBytes / per_block));
}
// Columns of one TileGemm panel; causal diagonal tiles are cut into panels so
// that keys after every query of a panel are never computed.
constexpr int64_t kPanel = 16;

// The running state of one query block; its arrays live in the workspace.
struct QueryBlock {
  int64_t i0 = 0;       // First row.
  int64_t rows = 0;     // Rows present (the last block may be short).
  int64_t key_end = 0;  // Keys it attends to: [0, key_end).
  float* qt = nullptr;  // head_dim x kBlockQ: q^T * scale * log2(e).
  float* ot = nullptr;  // head_dim x kBlockQ: unnormalised O^T.
  // kBlockQ reference maxima of the base-2 scores (within kMaxSlack of the
  // true ones).
  float* row_max = nullptr;
  float* row_sum = nullptr;  // kBlockQ running sums of 2^(score - row_max).
};

// One thread's tiles, cut from its part of the workspace.
struct ForwardScratch {
  ForwardScratch(int64_t head_dim, Carver* carver)
      : num_blocks(BlocksPerUnit(head_dim)) {
    for (int64_t b = 0; b < num_blocks; ++b) {
      blocks[b].qt = carver->Take(head_dim * kBlockQ);
      blocks[b].ot = carver->Take(head_dim * kBlockQ);
      blocks[b].row_max = carver->Take(kBlockQ);
      blocks[b].row_sum = carver->Take(kBlockQ);
    }
    st = carver->Take(kBlockK * kBlockQ);
    k_tile = carver->Take(kBlockK * head_dim);
    v_tile = carver->Take(kBlockK * head_dim);
    rows = carver->Take((head_dim + 7) / 8 * 8 * 8);
  }

  int64_t num_blocks;
  QueryBlock blocks[kMaxBlocksPerUnit];
  float* st;      // kBlockK x kBlockQ: scores, then P^T.
  float* k_tile;  // kBlockK x head_dim: k as float32.
  float* v_tile;  // kBlockK x head_dim: v as float32.
  // 8 rows of head_dim rounded up to 8 (zero padded): q or out rows on their
  // way through an 8 x 8 transpose.
  float* rows;
};

// Packs the rows of `block` of q, transposed and scaled, into block->qt,
// eight rows at a time through `rows` (8 x round_up(head_dim, 8)); the lanes
// of missing rows are zero.
void PackQueries(const ForwardParams& p, const Segment& s, float* rows,
                 QueryBlock* block) {
  const int64_t d = p.head_dim;
  const int64_t padded = (d + 7) / 8 * 8;
  const __m256 scale = _mm256_set1_ps(p.softmax_scale * kLog2e);
  float* qt = block->qt;
  for (int64_t i8 = 0; i8 < kBlockQ; i8 += 8) {
    for (int64_t r = 0; r < 8; ++r) {
      const int64_t i = i8 + r;
      float* row = rows + r * padded;
      if (i + kRowsAhead < block->rows) {
        PrefetchRow<_MM_HINT_T0>(p.q, p.dtype, d, s,
                                 block->i0 + i + kRowsAhead);
      }
      if (i < block->rows) {
        LoadRowFast(SegmentRow(p.q, p.dtype, s, block->i0 + i), p.dtype, d,
                    row);
        std::fill(row + d, row + padded, 0.0f);
      } else {
        std::fill(row, row + padded, 0.0f);
      }
    }
    for (int64_t a8 = 0; a8 < padded; a8 += 8) {
      __m256 x[8];
      for (int r = 0; r < 8; ++r)
        x[r] = _mm256_loadu_ps(rows + r * padded + a8);
      Transpose8x8(x);
      for (int64_t t = 0; t < 8 && a8 + t < d; ++t) {
        _mm256_storeu_ps(qt + (a8 + t) * kBlockQ + i8,
                         _mm256_mul_ps(x[t], scale));
      }
    }
  }
}

// Converts k or v rows j0 .. j0 + keys - 1 to float32 into the contiguous
// `tile` (head_dim floats per row). The copy is made for float32 too: rows of
// a dilated view lie a multiple of 2 KiB apart in typical layouts and would
// map to a few L1 sets.
void LoadKeyTile(const ForwardParams& p, const TensorParams& t,
                 const Segment& s, int64_t j0, int64_t keys, float* tile) {
  for (int64_t j = 0; j < keys; ++j) {
    if (j + kRowsAhead < keys) {
      PrefetchRow<_MM_HINT_T0>(t, p.dtype, p.head_dim, s, j0 + j + kRowsAhead);
    }
    LoadRowFast(SegmentRow(t, p.dtype, s, j0 + j), p.dtype, p.head_dim,
                tile + j * p.head_dim);
  }
}

// Asks for k and v rows begin .. end - 1 to be brought into L2 while the
// current tile is computed.
void PrefetchKeyRows(const ForwardParams& p, const Segment& s, int64_t begin,
                     int64_t end) {
  for (int64_t j = begin; j < end; ++j) {
    PrefetchRow<_MM_HINT_T1>(p.k, p.dtype, p.head_dim, s, j);
    PrefetchRow<_MM_HINT_T1>(p.v, p.dtype, p.head_dim, s, j);
  }
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

// How far (in log2 units) a tile's max may exceed the running max before the
// running max moves: probabilities are then up to 2^8 instead of 1, far from
// overflow, and the rescaling pass over the output tile is skipped for most
// tiles after the first few.
constexpr float kMaxSlack = 8.0f;

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

// Folds key tile j0 .. j0 + keys - 1 (k_tile, v_tile) into `block`.
void AttendToTile(const ForwardParams& p, int64_t j0, int64_t keys,
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
  for (int64_t c0 = 0; c0 < kBlockQ; c0 += kPanel) {
    const int64_t visible = std::min(keys, i0 + c0 + kPanel - j0);
    if (visible <= 0) continue;
    TileGemm(d, kPanel, visible, v_op, {st + c0, kBlockQ}, {ot + c0, kBlockQ},
             true);
  }
}

// Normalises `block`, applies 1/G and stores its rows of out, eight at a
// time through an 8 x 8 transpose into `rows`; writes
// lse = ln 2 * (max + log2(sum)).
void StoreBlock(const ForwardParams& p, const Segment& s,
                const QueryBlock& block, float* rows) {
  const int64_t d = p.head_dim;
  const int64_t padded = (d + 7) / 8 * 8;
  float* lse_row = LseRow(p, s);
  const float* ot = block.ot;
  for (int64_t i8 = 0; i8 < block.rows; i8 += 8) {
    for (int64_t r = 0; r < 8; ++r) {
      const int64_t ahead = i8 + r + kRowsAhead;
      if (ahead < block.rows) {
        PrefetchRow<_MM_HINT_T0>(p.out, p.dtype, d, s, block.i0 + ahead);
      }
    }
    const __m256 factor = _mm256_div_ps(_mm256_set1_ps(p.output_scale),
                                        _mm256_loadu_ps(block.row_sum + i8));
    for (int64_t a8 = 0; a8 < padded; a8 += 8) {
      __m256 x[8];
      for (int64_t t = 0; t < 8; ++t) {
        x[t] = a8 + t < d
                   ? _mm256_mul_ps(
                         _mm256_loadu_ps(ot + (a8 + t) * kBlockQ + i8), factor)
                   : _mm256_setzero_ps();
      }
      Transpose8x8(x);
      for (int r = 0; r < 8; ++r)
        _mm256_storeu_ps(rows + r * padded + a8, x[r]);
    }
    for (int64_t r = 0; r < 8 && i8 + r < block.rows; ++r) {
      const int64_t i = block.i0 + i8 + r;
      StoreRow(rows + r * padded, p.dtype, d, SegmentRow(p.out, p.dtype, s, i));
      if (lse_row != nullptr) {
        lse_row[s.first + i * s.step] =
            (block.row_max[i8 + r] + std::log2(block.row_sum[i8 + r])) * kLn2;
      }
    }
  }
}

// Computes the rows of `unit` (num_blocks query blocks) of problem s into
// out (and lse), and zeroes the unselected positions that follow them.
void ForwardUnit(const ForwardParams& p, const Segment& s, int64_t unit,
                 ForwardScratch* scratch) {
  const int64_t length = s.group->positions;
  const int64_t unit_rows = kBlockQ * scratch->num_blocks;
  const int64_t unit_begin = unit * unit_rows;
  const int64_t unit_end = std::min(length, unit_begin + unit_rows);
  ZeroUnselected(p.out, p.dtype, p.head_dim, s, unit_begin,
                 std::max(unit_begin, unit_end), LseRow(p, s));
  if (unit_end <= unit_begin) return;

  int64_t num_blocks = 0;
  int64_t key_end = 0;
  for (int64_t i0 = unit_begin; i0 < unit_end; i0 += kBlockQ) {
    QueryBlock& block = scratch->blocks[num_blocks++];
    block.i0 = i0;
    block.rows = std::min(kBlockQ, unit_end - i0);
    // Causal: keys up to the block's last query; later tiles are skipped.
    block.key_end = p.is_causal ? i0 + block.rows : length;
    key_end = std::max(key_end, block.key_end);
    PackQueries(p, s, scratch->rows, &block);
    std::fill(block.ot, block.ot + p.head_dim * kBlockQ, 0.0f);
    std::fill(block.row_max, block.row_max + kBlockQ,
              -std::numeric_limits<float>::infinity());
  }

  for (int64_t j0 = 0; j0 < key_end; j0 += kBlockK) {
    const int64_t keys = std::min(kBlockK, key_end - j0);
    LoadKeyTile(p, p.k, s, j0, keys, scratch->k_tile);
    LoadKeyTile(p, p.v, s, j0, keys, scratch->v_tile);
    // The next tile is fetched in slices, one per block, so that the
    // requests stay few at a time and overlap the arithmetic.
    const int64_t next_end = std::min(key_end, j0 + 2 * kBlockK);
    const int64_t slice = (kBlockK + num_blocks - 1) / num_blocks;
    for (int64_t b = 0; b < num_blocks; ++b) {
      const int64_t prefetch_begin = j0 + kBlockK + b * slice;
      PrefetchKeyRows(p, s, prefetch_begin,
                      std::min(next_end, prefetch_begin + slice));
      QueryBlock& block = scratch->blocks[b];
      if (j0 >= block.key_end) continue;
      AttendToTile(p, j0, std::min(keys, block.key_end - j0), scratch->k_tile,
                   scratch->v_tile, scratch->st, &block);
    }
  }
  for (int64_t b = 0; b < num_blocks; ++b) {
    StoreBlock(p, s, scratch->blocks[b], scratch->rows);
  }
}

}  // namespace

int64_t FlashForwardWorkspacePerThread(const ForwardParams& p) {
  Carver counter(nullptr);
  ForwardScratch layout(p.head_dim, &counter);
  return counter.used();
}

void FlashForward(const ForwardParams& p, float* workspace, int num_threads) {
  const WorkList work(p, kBlockQ * BlocksPerUnit(p.head_dim));
  const int64_t per_thread = FlashForwardWorkspacePerThread(p);
#pragma omp parallel num_threads(num_threads)
  {
    Carver carver(workspace + omp_get_thread_num() * per_thread);
    ForwardScratch scratch(p.head_dim, &carver);
#pragma omp for schedule(dynamic, 1)
    for (int64_t index = 0; index < work.size(); ++index) {
      int64_t unit;
      const Segment s = work.Decode(index, &unit);
      ForwardUnit(p, s, unit, &scratch);
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
