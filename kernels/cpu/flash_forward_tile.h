// File: flash_forward_tile.h
//
// The inner step of the forward pass, folding one key tile into the online
// softmax of one query block, which exists once per instruction set:
// AttendToTileAvx2 (flash_forward_avx2.cc, x86-64-v3) and AttendToTileAvx512
// (flash_forward_avx512.cc, compiled with AVX-512 and called only when
// cpu_path.h says the CPU has it). flash_forward.cc does everything around
// it: work units, query packing, key tile loads, the epilogue.
//
// Tiles are transposed so that queries run along the SIMD lanes: the scores
// S^T = K Q^T (keys x queries) and the output O^T (head_dim x queries). The
// row statistics of the softmax are then per-lane values.
//
// This header holds declarations and constants only (no inline functions),
// so that nothing compiled for AVX-512 can be shared with the AVX2 code.

#ifndef KERNELS_CPU_FLASH_FORWARD_TILE_H_
#define KERNELS_CPU_FLASH_FORWARD_TILE_H_

#include <cstdint>

#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace cpu {

// 64 queries x 64 keys: the transposed q block, score tile and output tile
// take 16 KiB each at head_dim 64, so the working set stays in L1/L2; a
// multiple of the TileGemm panel widths.
inline constexpr int64_t kForwardBlockQ = 64;
inline constexpr int64_t kForwardBlockK = 64;

// How far (in log2 units) a tile's max may exceed the running max before the
// running max moves: probabilities are then up to 2^8 instead of 1, far from
// overflow, and the rescaling pass over the output tile is skipped for most
// tiles after the first few.
inline constexpr float kMaxSlack = 8.0f;

// The running state of one query block; its arrays live in the workspace.
struct QueryBlock {
  int64_t i0 = 0;       // First row.
  int64_t rows = 0;     // Rows present (the last block may be short).
  int64_t key_end = 0;  // Keys it attends to: [0, key_end).
  float* qt = nullptr;  // head_dim x kForwardBlockQ: q^T * scale * log2(e).
  float* ot = nullptr;  // head_dim x kForwardBlockQ: unnormalised O^T.
  // kForwardBlockQ reference maxima of the base-2 scores (within kMaxSlack
  // of the true ones).
  float* row_max = nullptr;
  // kForwardBlockQ running sums of 2^(score - row_max).
  float* row_sum = nullptr;
  // Dropout: the factors (dropout_tile.h) of the key tile being folded,
  // kForwardBlockK x kForwardBlockQ (key-major, like the score tile), which
  // multiply the probabilities after they enter row_sum and before they
  // weigh v; null without dropout.
  const float* dropout = nullptr;
};

// Folds keys j0 .. j0 + keys - 1 (rows of k_tile and v_tile, head_dim floats
// each) into `block`, using st (kForwardBlockK x kForwardBlockQ) as scratch.
// Under a causal mask, keys after a query are left out; tiles entirely after
// the block are not passed in. j0 == 0 is the block's first tile. With
// block->dropout set, its factors multiply the probabilities that weigh v.
// REQUIRES: 0 < keys <= kForwardBlockK; block->key_end > j0.
using AttendToTileFn = void (*)(const ForwardParams& p, int64_t j0,
                                int64_t keys, const float* k_tile,
                                const float* v_tile, float* st,
                                QueryBlock* block);

// AVX2 + FMA (x86-64-v3).
void AttendToTileAvx2(const ForwardParams& p, int64_t j0, int64_t keys,
                      const float* k_tile, const float* v_tile, float* st,
                      QueryBlock* block);

// AVX-512 F/DQ/BW/VL. REQUIRES: CpuHasAvx512().
void AttendToTileAvx512(const ForwardParams& p, int64_t j0, int64_t keys,
                        const float* k_tile, const float* v_tile, float* st,
                        QueryBlock* block);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_FLASH_FORWARD_TILE_H_
