// File: dropout_tile.h
//
// The dropout factors of one tile of a fused kernel's problem, from the mask
// function of kernels/dropout_rng.h: 0 for a dropped probability, 1 / (1 - p)
// for a kept one. The kernels multiply their probability tiles by it; forward
// and backward fill the same (query, key) pairs with the same factors, which
// is what lets the backward pass regenerate the forward pass's mask.
//
// Compiled for the library's baseline instruction set (x86-64-v3), so that
// every path (AVX2, AVX-512, AMX) calls one definition.

#ifndef KERNELS_CPU_DROPOUT_TILE_H_
#define KERNELS_CPU_DROPOUT_TILE_H_

#include <cstdint>

#include "kernels/cpu/flash_common.h"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace cpu {

// The extent and layout of a factor tile: element (i, j) for query row i0 + i
// and key row j0 + j of the problem lives at i * query_stride +
// j * key_stride, for i < row_extent and j < key_extent.
struct DropoutTileLayout {
  int64_t row_extent;
  int64_t key_extent;
  int64_t query_stride;
  int64_t key_stride;
};

// Writes the factors of query rows i0 .. i0 + rows - 1 and key rows
// j0 .. j0 + keys - 1 of problem `s` (its head, sequence and positions) into
// `tile`, and 0 for the rest of the layout's extent, so that every element
// the kernels read is finite.
// Sixteen query rows at a time on AVX-512 (eight on the AVX2 path,
// cpu_path.h), one Philox call per row and block of 4 key positions.
// REQUIRES: p.dropout.enabled; rows <= layout.row_extent, a multiple of 8;
// keys <= layout.key_extent.
void FillDropoutTile(const ForwardParams& p, const Segment& s, int64_t i0,
                     int64_t rows, int64_t j0, int64_t keys,
                     const DropoutTileLayout& layout, float* tile);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_DROPOUT_TILE_H_
