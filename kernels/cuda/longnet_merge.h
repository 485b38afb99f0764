// File: longnet_merge.h
//
// The row-wise pieces of "longnet" on CUDA (docs/LONGNET_MIXING.md) around
// the fused kernels that run its branches: the merge of the branches'
// outputs by their log-sum-exp, and the float32 sum of the branches'
// gradients. One warp per (row, head); any strides, all three dtypes.
//
//   kernels::LongNetBranchOutputs branches = ...;  // out and lse
//   cudaError_t error = LongNetMerge(params, branches, stream);

#ifndef KERNELS_CUDA_LONGNET_MERGE_H_
#define KERNELS_CUDA_LONGNET_MERGE_H_

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/dilated_params.h"
#include "kernels/longnet_params.h"

namespace dilated {
namespace kernels {
namespace gpu {

// Writes params.out = sum_i w_i out_i with w_i = exp(lse_i) / sum_j
// exp(lse_j) and, when params.lse is not null, lse = log sum_i exp(lse_i);
// rows where every lse_i is -inf get 0 and -inf.
cudaError_t LongNetMerge(const ForwardParams& params,
                         const LongNetBranchOutputs& branches,
                         cudaStream_t stream);

// Adds the tensor `t` (geometry and dtype of params.q) to the contiguous
// float32 [rows, heads, head_dim] `sum`.
cudaError_t LongNetAccumulate(const ForwardParams& params,
                              const TensorParams& t, float* sum,
                              cudaStream_t stream);

// Stores the float32 `sum` (as LongNetAccumulate) into the tensor `t`.
cudaError_t LongNetStore(const ForwardParams& params, const float* sum,
                         const TensorParams& t, cudaStream_t stream);

}  // namespace gpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CUDA_LONGNET_MERGE_H_
