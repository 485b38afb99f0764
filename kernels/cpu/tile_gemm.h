// File: tile_gemm.h
//
// The one matrix product of the fused attention kernels, on float32 tiles
// that sit in cache:
//
//   C[m, n] (+)= sum_k A[m * a_m + k * a_k] * B[k * ldb + n]
//
// A is read one element at a time (broadcast), with any strides, so it can be
// a strided view of q, k, v or a transposed tile without a copy. B and C have
// contiguous rows and are read eight columns at a time (AVX2), which is why
// `n` must be a multiple of 8. Every attention product (Q K^T, P V and the
// five backward products) has this form with the right choice of operands.
//
//   // S^T = K Q^T for a key tile (rows of k, row stride ks) and a packed
//   // transposed query block qt (head_dim x 64):
//   TileGemm(keys, 64, head_dim, {k_rows, ks, 1}, {qt, 64}, {st, 64},
//            /*accumulate=*/false);

#ifndef KERNELS_CPU_TILE_GEMM_H_
#define KERNELS_CPU_TILE_GEMM_H_

#include <cstdint>

namespace dilated {
namespace kernels {
namespace cpu {

// A broadcast operand: element (m, k) at data[m * m_stride + k * k_stride].
struct StridedOperand {
  const float* data;
  int64_t m_stride;
  int64_t k_stride;
};

// A row-major operand with contiguous rows: element (row, col) at
// data[row * row_stride + col].
struct RowOperand {
  const float* data;
  int64_t row_stride;
};

// A row-major result.
struct RowResult {
  float* data;
  int64_t row_stride;
};

// Computes C = A B (accumulate false) or C += A B (accumulate true) for an
// m x k by k x n product. k may be 0 (C is then zeroed or left as is).
// REQUIRES: n % 8 == 0; every addressed element is readable (C writable).
void TileGemm(int64_t m, int64_t n, int64_t k, const StridedOperand& a,
              const RowOperand& b, const RowResult& c, bool accumulate);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_TILE_GEMM_H_
