// File: block_sparse_attention.h
//
// The block-sparse attention on CUDA ("block_sparse", docs/BLOCK_SPARSE.md):
// the function of kernels/cpu/block_sparse_attention.h on device tensors,
// walking the same compact lists of active blocks (kernels/
// block_sparse_params.h, in device memory). One warp per row: a query row
// in the forward pass (online softmax over the keys of its block's list) and
// the dQ sweep, a key row in the dK/dV sweep (over the query blocks of its
// block's column list); every gradient element has one writer, so results
// are deterministic. float32, float16 and bfloat16 storage, float32
// arithmetic, head_dim up to 256, any strides. Scalar FMA code, no tensor
// cores: a correct reference path for the device, not a tuned one.
//
//   cudaError_t error = BlockSparseForwardCuda(params, device_lists, stream);

#ifndef KERNELS_CUDA_BLOCK_SPARSE_ATTENTION_H_
#define KERNELS_CUDA_BLOCK_SPARSE_ATTENTION_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/block_sparse_params.h"
#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

// Largest head_dim the block-sparse kernels handle (8 floats per lane).
inline constexpr int64_t kBlockSparseMaxHeadDim = 256;

// Writes every element of p.out and, when p.lse is not null, every row's
// natural log-sum-exp (-inf for rows with no key), as BlockSparseForward
// on the CPU does. Returns cudaErrorInvalidValue for head_dim above
// kBlockSparseMaxHeadDim.
// REQUIRES: fixed-length layout; lists.* point to device memory.
cudaError_t BlockSparseForwardCuda(const ForwardParams& p,
                                   const BlockLists& lists,
                                   cudaStream_t stream);

// Returns the device scratch bytes BlockSparseBackwardCuda needs: one float
// per (batch, head, row) for D = rowsum(grad_out * out).
size_t BlockSparseBackwardWorkspaceBytes(const ForwardParams& p);

// Writes every element of grad_q, grad_k and grad_v from forward.out and
// forward.lse (required). `delta` is device scratch of
// BlockSparseBackwardWorkspaceBytes bytes ordered on `stream`.
cudaError_t BlockSparseBackwardCuda(const BackwardParams& p,
                                    const BlockLists& lists, float* delta,
                                    cudaStream_t stream);

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_BLOCK_SPARSE_ATTENTION_H_
