// File: linear_gemm_amx.h
//
// The AMX path of linear_gemm.h for the reduced float32 matmul precisions:
// x and W rounded to bfloat16 planes (hi, and for "high" the remainder lo,
// so that each float32 is hi + lo to about 16 significant bits), products
// as TDPBF16PS tile products accumulating in float32 (hi*hi, plus hi*lo and
// lo*hi for "high"). W is packed once per call (pairs of its rows' values,
// the B operand of the tiles); x is converted by blocks of 256 rows, which
// then meet the weights by chunks that fit in L2.

#ifndef KERNELS_CPU_LINEAR_GEMM_AMX_H_
#define KERNELS_CPU_LINEAR_GEMM_AMX_H_

#include <cstdint>

#include "kernels/cpu/linear_gemm.h"

namespace dilated {
namespace kernels {
namespace cpu {

// As LinearGemmFloat32 with `planes` 2 ("high") or 1 ("medium").
// REQUIRES: CpuHasAmx(); the arguments as LinearGemmFloat32.
void LinearGemmAmx(const float* x, int64_t rows, int64_t in, int64_t ldx,
                   const float* w, int64_t out, const LinearEpilogue& epilogue,
                   int planes, float* y, int64_t ldy);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_LINEAR_GEMM_AMX_H_
