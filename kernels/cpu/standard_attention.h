// File: standard_attention.h
//
// The direct algorithm on the CPU: for every group, segment, batch and head,
// gather the selected rows of q, k, v into dense matrices, run softmax
// attention on them, and scatter the result (times 1/G) back. Simple and
// obviously right; the in-house peer of the fused kernels.

#ifndef KERNELS_CPU_STANDARD_ATTENTION_H_
#define KERNELS_CPU_STANDARD_ATTENTION_H_

#include "kernels/dilated_params.h"

namespace dilated {
namespace kernels {
namespace cpu {

// Writes params.out (every element) and, when not null, params.lse.
// REQUIRES: params were produced by the attention front end (validated).
void StandardForward(const ForwardParams& params);

// Writes grad_q, grad_k, grad_v (every element). Recomputes the attention
// probabilities from q and k; forward.out and forward.lse are not read.
void StandardBackward(const BackwardParams& params);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_STANDARD_ATTENTION_H_
