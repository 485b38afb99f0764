// File: longnet_params.h
//
// The outputs of the branches of a "longnet" call (docs/LONGNET_MIXING.md),
// as the merge kernels (kernels/cpu/longnet_merge.h,
// kernels/cuda/longnet_merge.h) read them. Plain pointers and strides, so .cu
// files can include it.

#ifndef KERNELS_LONGNET_PARAMS_H_
#define KERNELS_LONGNET_PARAMS_H_

#include <cstdint>

#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {

// Branch i wrote out[i] (the geometry and dtype of the call's out) and lse[i]
// ([storage batch, heads, seq] with strides lse_stride_b, lse_stride_h; -inf
// where the branch selects no key for the row).
struct LongNetBranchOutputs {
  int32_t count;
  TensorParams out[kMaxGroups];
  const float* lse[kMaxGroups];
  int64_t lse_stride_b;
  int64_t lse_stride_h;
};

}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_LONGNET_PARAMS_H_
