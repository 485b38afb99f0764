// File: tile_gemm_amx.h
//
// The tile product of tile_gemm.h on the AMX matrix engine, for the backward
// pass of 16-bit tensors: A and B are packed into bfloat16 tiles (A
// row-major, B in pairs of rows), multiplied with TDPBF16PS and accumulated
// in float32 into C.
//
// TileGemmAmx rounds every operand to bfloat16, which is exact for values
// read from bfloat16 tensors and the usual FlashAttention rounding for the
// probabilities and their gradients. TileGemmAmxSplit keeps about 16
// significant bits: each operand is split into hi + lo bfloat16 values and
// the product is hi*hi + hi*lo + lo*hi (flash_amx.h), for float16 tensors.
//
// Callable only where CpuHasAmx() (cpu_path.h), between AmxBeginThread() and
// AmxEndThread() on the calling thread.
//
//   AmxBeginThread();
//   TileGemmAmx(rows, 64, head_dim, {q, dim, 1}, {kt, 64}, {s, 64}, false);
//   AmxEndThread();

#ifndef KERNELS_CPU_TILE_GEMM_AMX_H_
#define KERNELS_CPU_TILE_GEMM_AMX_H_

#include <cstdint>

#include "kernels/cpu/tile_gemm.h"

namespace dilated {
namespace kernels {
namespace cpu {

// Loads the tile configuration the products use on the calling thread.
void AmxBeginThread();

// Releases the calling thread's tile state.
void AmxEndThread();

// As TileGemm: C = A B (accumulate false) or C += A B (accumulate true),
// writing only the m x n elements of C. Any m, n and k >= 0.
void TileGemmAmx(int64_t m, int64_t n, int64_t k, const StridedOperand& a,
                 const RowOperand& b, const RowResult& c, bool accumulate);

// As TileGemmAmx with operands split into hi + lo bfloat16 pairs.
void TileGemmAmxSplit(int64_t m, int64_t n, int64_t k, const StridedOperand& a,
                      const RowOperand& b, const RowResult& c, bool accumulate);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_TILE_GEMM_AMX_H_
