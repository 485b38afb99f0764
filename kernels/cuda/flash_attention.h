// File: flash_attention.h
//
// The fused strided flash-attention kernels on CUDA ("improved"): forward and
// backward over every group of a call, reading q, k, v (and grad_out) and
// writing out, lse (and the gradients) through the strided views of
// docs/ARCHITECTURE.md section 1. float16 and bfloat16 storage, float32
// accumulation; head_dim 32, 64 and 128 run on their own tile shapes, other
// multiples of 8 up to 256 on the next larger one.
//
//   if (FlashSupports(params)) {
//     cudaError_t error = FlashForward(params, stream);
//   }
//
// Nothing here synchronizes the device or allocates memory: the backward
// pass takes its scratch from the caller.

#ifndef KERNELS_CUDA_FLASH_ATTENTION_H_
#define KERNELS_CUDA_FLASH_ATTENTION_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

// Largest head_dim the fused kernels handle.
inline constexpr int64_t kFlashMaxHeadDim = 256;

// Returns true when `dtype` and `head_dim` have a fused kernel: float16 or
// bfloat16, head_dim a multiple of 8 in [8, 256]. The caller also guarantees
// 16-byte aligned data pointers and strides that are multiples of 8
// elements (every row access is a 16-byte vector).
bool FlashSupports(DataType dtype, int64_t head_dim);

// Writes params.out (every element: selected rows get (1 / G) * attention,
// the others zero) and, when not null, params.lse, on `stream`.
// REQUIRES: FlashSupports(params.dtype, params.head_dim), alignment above.
cudaError_t FlashForward(const ForwardParams& params, cudaStream_t stream);

// Returns whether FlashForward runs the warpgroup (wgmma) kernels on the
// current device: it runs this library's sm_90a code (compute capability 9.0)
// and DA_DISABLE_WGMMA=1 is not set in the environment (read once; for
// comparing against the mma.sync kernels). Otherwise every head_dim runs on
// mma.sync kernels.
bool WgmmaAvailable();

// Returns the scratch bytes FlashBackward needs: one float per (batch, head,
// position).
size_t FlashBackwardWorkspaceBytes(const BackwardParams& params);

// Writes grad_q, grad_k and grad_v (every element) on `stream`, recomputing
// the probabilities from forward.lse. Deterministic (no atomics).
// REQUIRES: as FlashForward; forward.lse is not null; `workspace` holds
// FlashBackwardWorkspaceBytes(params) bytes, 4-byte aligned, on the device.
cudaError_t FlashBackward(const BackwardParams& params, void* workspace,
                          cudaStream_t stream);

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_FLASH_ATTENTION_H_
