// File: flash_attention_instances.h
//
// The per-(dtype, padded head_dim) entry points of the fused kernels. Each
// is defined in its own translation unit (flash_{fwd,bwd}_hdim*_*.cu) so
// that the instantiations compile in parallel; flash_attention.cu dispatches
// to them.

#ifndef KERNELS_CUDA_FLASH_ATTENTION_INSTANCES_H_
#define KERNELS_CUDA_FLASH_ATTENTION_INSTANCES_H_

#include <cuda_runtime_api.h>

#include "kernels/block_sparse_params.h"
#include "kernels/cuda/flash_attention.h"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

// Runs the forward kernel with head_dim padded to kHeadDim; `problems` as
// for FlashForward; `sparse` the device lists of a block-sparse call
// (FlashBlockSparseForward), row_begin null for dense attention.
template <DataType kDtype, int kHeadDim>
cudaError_t RunFlashForward(const ForwardParams& params,
                            const FlashProblems* problems,
                            const BlockLists& sparse, cudaStream_t stream);

// Runs the backward kernels; `delta` is FlashBackwardWorkspaceBytes of
// scratch; `sparse` as for RunFlashForward.
template <DataType kDtype, int kHeadDim>
cudaError_t RunFlashBackward(const BackwardParams& params,
                             const FlashProblems* problems,
                             const BlockLists& sparse, float* delta,
                             cudaStream_t stream);

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_FLASH_ATTENTION_INSTANCES_H_
