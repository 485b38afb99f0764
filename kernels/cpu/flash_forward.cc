// The forward pass: per query block, an online softmax over key tiles.
//
// Tiles are transposed so that queries run along the SIMD lanes: the scores
// S^T = K Q^T (keys x queries) and the output O^T (head_dim x queries). Then
// the row statistics (max, sum) of the softmax are per-lane values with no
// horizontal reduction, k and v tiles are the broadcast operand of the tile
// products in their natural row layout (a plain row copy, no transpose), and
// only the query block is transposed, once. The step per key tile is chosen
// once per call by instruction set (flash_forward_tile.h, cpu_path.h).

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/cpu/cpu_path.h"
#include "kernels/cpu/dropout_tile.h"
#include "kernels/cpu/flash_amx.h"
#include "kernels/cpu/flash_attention.h"
#include "kernels/cpu/flash_common.h"
#include "kernels/cpu/flash_forward_tile.h"
#include "kernels/cpu/row_io.h"
#include "kernels/cpu/simd_convert.h"
#include "kernels/cpu/simd_transpose.h"

namespace dilated {
namespace kernels {
namespace cpu {
namespace {

constexpr int64_t kBlockQ = kForwardBlockQ;
constexpr int64_t kBlockK = kForwardBlockK;
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
// One thread's tiles, cut from its part of the workspace.
struct ForwardScratch {
  ForwardScratch(int64_t head_dim, bool dropout, Carver* carver)
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
    dropout_factors = dropout ? carver->Take(kBlockK * kBlockQ) : nullptr;
  }

  int64_t num_blocks;
  QueryBlock blocks[kMaxBlocksPerUnit];
  float* st;      // kBlockK x kBlockQ: scores, then P^T.
  float* k_tile;  // kBlockK x head_dim: k as float32.
  float* v_tile;  // kBlockK x head_dim: v as float32.
  // 8 rows of head_dim rounded up to 8 (zero padded): q or out rows on their
  // way through an 8 x 8 transpose.
  float* rows;
  // kBlockK x kBlockQ dropout factors of one block and key tile, or null
  // without dropout.
  float* dropout_factors;
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
      StoreRowFast(rows + r * padded, p.dtype, d,
                   SegmentRow(p.out, p.dtype, s, i));
      if (lse_row != nullptr) {
        lse_row[s.problem->Position(i)] =
            (block.row_max[i8 + r] + std::log2(block.row_sum[i8 + r])) * kLn2;
      }
    }
  }
}

// Computes the rows of `unit` (num_blocks query blocks) of problem s into
// out (and lse), and zeroes the unselected positions that follow them.
void ForwardUnit(const ForwardParams& p, const Segment& s, int64_t unit,
                 AttendToTileFn attend, ForwardScratch* scratch) {
  const int64_t length = s.problem->length;
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
      if (p.dropout.enabled) {
        FillDropoutTile(p, s, block.i0, block.rows, j0, keys,
                        {kBlockQ, kBlockK, 1, kBlockQ},
                        scratch->dropout_factors);
        block.dropout = scratch->dropout_factors;
      }
      attend(p, j0, std::min(keys, block.key_end - j0), scratch->k_tile,
             scratch->v_tile, scratch->st, &block);
    }
  }
  for (int64_t b = 0; b < num_blocks; ++b) {
    StoreBlock(p, s, scratch->blocks[b], scratch->rows);
  }
}

}  // namespace

// Both layouts fit for 16-bit tensors, so that the workspace sized before a
// call suits whichever path runs it.
int64_t FlashForwardWorkspacePerThread(const ForwardParams& p) {
  Carver counter(nullptr);
  ForwardScratch layout(p.head_dim, p.dropout.enabled, &counter);
  if (p.dtype == DataType::kFloat32) return counter.used();
  return std::max(counter.used(), FlashForwardAmxWorkspacePerThread(p));
}

void FlashForward(const ForwardParams& p, float* workspace, int num_threads) {
  if (ActiveCpuPath() == CpuPath::kAmx && p.dtype != DataType::kFloat32) {
    FlashForwardAmx(p, workspace, num_threads);
    return;
  }
  const ProblemList problems(p);
  const WorkList work(problems, kBlockQ * BlocksPerUnit(p.head_dim));
  const int64_t per_thread = FlashForwardWorkspacePerThread(p);
  const AttendToTileFn attend = ActiveCpuPath() != CpuPath::kAvx2
                                    ? &AttendToTileAvx512
                                    : &AttendToTileAvx2;
#pragma omp parallel num_threads(num_threads)
  {
    Carver carver(workspace + omp_get_thread_num() * per_thread);
    ForwardScratch scratch(p.head_dim, p.dropout.enabled, &carver);
#pragma omp for schedule(dynamic, 1)
    for (int64_t index = 0; index < work.size(); ++index) {
      int64_t unit;
      const Segment s = work.Decode(index, &unit);
      ForwardUnit(p, s, unit, attend, &scratch);
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated
