// File: flash_amx.h
//
// The fused kernels of flash_attention.h for bfloat16 and float16 tensors on
// the AMX matrix engine: the products Q K^T and P V run as AMX tile products
// (bfloat16 inputs, float32 accumulation), the online softmax in float32 with
// AVX-512, and P is rounded to bfloat16 for the second product, as
// FlashAttention does with 16-bit inputs.
//
// bfloat16 tensors enter the products as they are stored. float16 values do
// not fit bfloat16's 8-bit significand, so each is split into two bfloat16
// values, x = hi + lo exactly (hi = bf16(x), lo = bf16(x - hi): float16's
// 11 significant bits leave at most 3 for lo). A product is then the three
// tile products hi*hi + hi*lo + lo*hi, whose dropped lo*lo term is below
// 2^-16 of it; P is split the same way. float16 thus costs three times the
// tile work of bfloat16 and keeps float16's accuracy, where a plain
// conversion to bfloat16 would lose three bits of every input.
//
// Called by FlashForward and FlashBackward when ActiveCpuPath() is kAmx
// (cpu_path.h).

#ifndef KERNELS_CPU_FLASH_AMX_H_
#define KERNELS_CPU_FLASH_AMX_H_

#include <cstdint>

#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace cpu {

// Returns the float32 workspace (in floats) one thread of FlashForwardAmx
// needs: tiles only, about 1.1 MiB whatever the sequence length (1 MiB of
// q, output and sum tiles, plus one key tile).
int64_t FlashForwardAmxWorkspacePerThread(const ForwardParams& params);

// As FlashForward (flash_attention.h).
// REQUIRES: CpuHasAmx(); params.dtype is kBFloat16 or kFloat16; `workspace`
// holds num_threads * FlashForwardAmxWorkspacePerThread(params) floats,
// 64-byte aligned.
void FlashForwardAmx(const ForwardParams& params, float* workspace,
                     int num_threads);

// Returns the float32 workspace (in floats) one thread of FlashBackwardAmx
// needs: the packed query side of the longest problem plus tiles.
int64_t FlashBackwardAmxWorkspacePerThread(const ForwardParams& params);

// As FlashBackward (flash_attention.h).
// REQUIRES: as FlashForwardAmx, with FlashBackwardAmxWorkspacePerThread(
// params.forward).
void FlashBackwardAmx(const BackwardParams& params, float* workspace,
                      int num_threads);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_FLASH_AMX_H_
