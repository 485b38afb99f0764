// File: tile_gemm_avx512.h
//
// The tile product of tile_gemm.h on AVX-512 (sixteen columns per vector, 32
// registers), plus a variant that turns the product into softmax
// probabilities while it is still in registers:
//
//   C[m, n] = 2^(sum_k A[m * a_m + k * a_k] * B[k * ldb + n] - ref[n])
//
// which also adds the column sums of C to col_sum. With queries along the
// columns (the forward pass's S^T = K Q^T) that is the whole online-softmax
// pass over a score tile, done without reading the tile back: a column sum
// <= 2^e proves that no exponent of the column exceeds e.
//
// Callable only where CpuHasAvx512() (cpu_path.h) is true.
//
//   TileGemmExp2(keys, 64, head_dim, {k_rows, head_dim, 1}, {qt, 64},
//                {pt, 64}, row_max, tile_sum);

#ifndef KERNELS_CPU_TILE_GEMM_AVX512_H_
#define KERNELS_CPU_TILE_GEMM_AVX512_H_

#include <cstdint>

#include "kernels/cpu/tile_gemm.h"

namespace dilated {
namespace kernels {
namespace cpu {

// As TileGemm: C = A B (accumulate false) or C += A B (accumulate true).
// REQUIRES: n % 16 == 0; every addressed element is readable (C writable).
void TileGemmAvx512(int64_t m, int64_t n, int64_t k, const StridedOperand& a,
                    const RowOperand& b, const RowResult& c, bool accumulate);

// Stores C = 2^(A B - ref) (ref[col] subtracted from column col) and adds
// the sum over rows of C[., col] to col_sum[col], rows in a fixed order
// (deterministic). Exponents above 128 give +inf in C and in the sums;
// those below -126 give exactly 0, never a subnormal (Exp2x16,
// simd_exp_avx512.h): subnormal probabilities would slow every later product
// that reads them several times over on CPUs that handle them in microcode,
// which real activations (after layer norms and projections) reach.
// REQUIRES: n % 16 == 0.
void TileGemmExp2Avx512(int64_t m, int64_t n, int64_t k,
                        const StridedOperand& a, const RowOperand& b,
                        const RowResult& c, const float* ref, float* col_sum);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_TILE_GEMM_AVX512_H_
