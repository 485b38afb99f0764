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

// Returns the float32 elements of workspace one thread needs for the forward
// (backward = false) or backward pass: the dense matrices of the largest
// group.
int64_t StandardWorkspacePerThread(const ForwardParams& params, bool backward);

// Writes params.out (every element) and, when not null, params.lse, with
// `num_threads` OpenMP threads.
// REQUIRES: params were produced by the attention front end (validated);
// `workspace` holds num_threads * StandardWorkspacePerThread(params, false)
// floats, aligned to 64 bytes.
void StandardForward(const ForwardParams& params, float* workspace,
                     int num_threads);

// Writes grad_q, grad_k, grad_v (every element). Recomputes the attention
// probabilities from q and k; forward.out and forward.lse are not read.
// REQUIRES: as StandardForward, with StandardWorkspacePerThread(params, true).
void StandardBackward(const BackwardParams& params, float* workspace,
                      int num_threads);

}  // namespace cpu
}  // namespace kernels
}  // namespace dilated

#endif  // KERNELS_CPU_STANDARD_ATTENTION_H_
