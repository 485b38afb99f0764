// File: longnet_merge.h
//
// The row-wise pieces of "longnet" on the CPU (docs/LONGNET_MIXING.md)
// around the fused kernels that run its branches: the merge of the
// branches' outputs by their log-sum-exp, and the float32 sum of the
// branches' gradients. OpenMP over (row, head); any strides, all three
// dtypes; results do not depend on the thread count.
//
//   kernels::LongNetBranchOutputs branches = ...;  // out and lse
//   kernels::cpu::LongNetMerge(params, branches);

#ifndef KERNELS_CPU_LONGNET_MERGE_H_
#define KERNELS_CPU_LONGNET_MERGE_H_

#include "kernels/dilated_params.h"
#include "kernels/longnet_params.h"

namespace dilated {
namespace kernels {
namespace cpu {

// Writes params.out = sum_i w_i out_i with w_i = exp(lse_i) / sum_j
// exp(lse_j) and, when params.lse is not null, lse = log sum_i exp(lse_i);
// rows where every lse_i is -inf get 0 and -inf.
// REQUIRES: 1 <= branches.count <= kMaxGroups.
void LongNetMerge(const ForwardParams& params,
                  const LongNetBranchOutputs& branches);

// Adds the tensor `t` (geometry and dtype of params.q) to the contiguous
// float32 [rows, heads, head_dim] `sum`.
void LongNetAccumulate(const ForwardParams& params, const TensorParams& t,
                       float* sum);

// Stores the float32 `sum` (as LongNetAccumulate) into the tensor `t`.
void LongNetStore(const ForwardParams& params, const float* sum,
                  const TensorParams& t);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_LONGNET_MERGE_H_
