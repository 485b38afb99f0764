// File: block_sparse_tiles.h
//
// What the block-sparse forward and backward passes share: the tile shapes of
// a call, the per-thread tiles, loading blocks of q, k, v as float32 tiles,
// and the scores of one (key block, query block) pair with the causal and
// key-padding masks applied.
//
// Tiles are transposed so that queries run along the SIMD lanes, as in the
// dilated kernels (flash_forward.cc): scores are S^T (keys x queries), query
// blocks are packed as q^T (head_dim x queries), and k, v stay in their row
// layout (keys x head_dim). Every width is rounded up to a multiple of 16
// (the AVX-512 TileGemm panel) and padded with zeros.

#ifndef KERNELS_CPU_BLOCK_SPARSE_TILES_H_
#define KERNELS_CPU_BLOCK_SPARSE_TILES_H_

#include <cstdint>

#include "kernels/block_sparse_params.h"
#include "kernels/cpu/flash_common.h"
#include "kernels/cpu/tile_gemm.h"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace cpu {

// The tile product of the instruction set in use (cpu_path.h): TileGemm
// (AVX2) or TileGemmAvx512 (AVX-512 and AMX paths).
using TileGemmFn = void (*)(int64_t m, int64_t n, int64_t k,
                            const StridedOperand& a, const RowOperand& b,
                            const RowResult& c, bool accumulate);

// The widths of a call's tiles and the tile product that runs them.
struct TileShape {
  TileShape(const ForwardParams& p, const BlockLists& lists);

  int64_t rows;         // Tokens per block.
  int64_t padded_rows;  // Query lanes.
  int64_t dim;
  int64_t padded_dim;
  TileGemmFn gemm;
  // Whether TileGemmExp2Avx512 may run: on the AVX-512 and AMX paths (the
  // block-sparse kernels compute in float32, so AMX means AVX-512 here).
  bool fused_exp2;
};

// One thread's tiles; the forward pass uses the first group, the backward
// pass all of them. Carved in one fixed order, so that counting with a null
// Carver gives the size.
struct BlockTiles {
  BlockTiles(const TileShape& s, Carver* carver);

  float* qt;  // padded_dim x padded_rows: q^T (scaled, see LoadQueryT).
  // rows x padded_dim each; the forward pass points them at its copy of the
  // key block instead (block_sparse_forward.cc).
  float* k_rows;
  float* v_rows;
  float* st;         // rows x padded_rows: S^T, then P^T (backward: S, P).
  float* ot;         // padded_dim x padded_rows: unnormalised O^T.
  float* row_max;    // padded_rows: running max of base-2 scores.
  float* row_sum;    // padded_rows: running sum of 2^(score - max).
  float* reference;  // padded_rows: what a key block's scores are taken from.
  float* row;        // padded_dim: one row on its way in or out.
  // Backward only.
  float* dpt;    // rows x padded_rows: dP, then dS (queries x keys).
  float* acc_a;  // rows x padded_dim: dK.
  float* acc_b;  // rows x padded_dim: dV.
  float* kt;     // padded_dim x padded_rows: k^T of the key block.
  float* vt;     // padded_dim x padded_rows: v^T of the key block.
};

// The position of block `block` of (batch b, head h) in the tensors.
struct BlockAt {
  int64_t b;
  int64_t h;
  int64_t block;
};

// Loads the block's q rows into tiles->qt, transposed, times `factor`; lanes
// of padding stay zero.
void LoadQueryT(const ForwardParams& p, const TileShape& s, const BlockAt& at,
                const TensorParams& t, float factor, float* tile_t, float* row);

// Loads the block's rows of `t` into `tile` (rows x padded_dim), zero
// padded.
void LoadRows(const ForwardParams& p, const TileShape& s, const BlockAt& at,
              const TensorParams& t, float* tile);

// Computes S^T = K Q^T for key block `key_block` and the query block of
// `query` into tiles->st (base-2 scores when qt holds q * scale * log2 e),
// and sets to -inf the scores of padded keys and, when causal on the
// diagonal block, of keys after their query.
void Scores(const ForwardParams& p, const TileShape& s, const BlockAt& query,
            int64_t key_block, BlockTiles* tiles);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_BLOCK_SPARSE_TILES_H_
