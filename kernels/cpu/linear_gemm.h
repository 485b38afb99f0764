// File: linear_gemm.h
//
// The float32 product of a linear layer, y = x W^T + b (PyTorch's
// nn.Linear: W is [out, in] row-major), as a blocked GEMM: W^T is packed once
// per call into panels of columns, output tiles accumulate in registers over
// blocks of products (x read in place, its rows broadcast), and the tiles of
// one call run on OpenMP threads by blocks of rows. On AVX-512 the tiles are
// 14 x 32, on AVX2 6 x 16 (cpu_path.h chooses). The sum of each output runs
// over the `in` products in order within a block and block by block, so a
// result does not depend on the thread count. Calls with few rows
// (LinearDirectRows() in linear_direct.h) skip the packing and run as dot
// products, in an order of their own.
//
// The models call it for every float32 linear layer.
//
// Like PyTorch (torch.set_float32_matmul_precision), a process may allow
// reduced internal precision for these products; on the AMX path
// (linear_gemm_amx.h) they then run as bfloat16 tile products.

#ifndef KERNELS_CPU_LINEAR_GEMM_H_
#define KERNELS_CPU_LINEAR_GEMM_H_

#include <cstdint>

namespace dilated {
namespace kernels {
namespace cpu {

// The internal precision float32 products may use:
//   kHighest  float32 multiplies and adds (the default).
//   kHigh     each operand split into two bfloat16 values, hi + lo (about 16
//             significant bits; the error is the lo*lo term and the split's
//             remainder, near 2^-17 of each product), three tile products.
//   kMedium   operands rounded to bfloat16 (8 significant bits), one tile
//             product.
// Accumulation is float32 in every case. kHigh and kMedium permit, not
// demand: without AMX (cpu_path.h) the products stay float32.
enum class MatmulPrecision { kHighest, kHigh, kMedium };

// Sets the precision for every later call, process-wide (thread-safe).
void SetFloat32MatmulPrecision(MatmulPrecision precision);
MatmulPrecision Float32MatmulPrecision();

// Returns "highest", "high" or "medium".
const char* MatmulPrecisionName(MatmulPrecision precision);

// Sets *precision from its name; returns false (changing nothing) for any
// other name.
bool ParseMatmulPrecision(const char* name, MatmulPrecision* precision);

// What is applied to x W^T before the store.
struct LinearEpilogue {
  // [out] values added to every row; null for none.
  const float* bias = nullptr;
  // max(y, 0) after the bias.
  bool relu = false;
};

// Writes y[rows, out] (row stride ldy) = epilogue(x[rows, in] (row stride
// ldx) . w[out, in]^T (row stride `in`)). y must not overlap x or w; its
// old values are never read. Returns false, touching nothing, when the
// packed weights cannot be allocated.
// REQUIRES: rows, in, out >= 1; ldx >= in; ldy >= out.
bool LinearGemmFloat32(const float* x, int64_t rows, int64_t in, int64_t ldx,
                       const float* w, int64_t out,
                       const LinearEpilogue& epilogue, float* y, int64_t ldy);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_LINEAR_GEMM_H_
