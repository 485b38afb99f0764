// File: params_builder.h
//
// Turns a validated configuration and tensor views into the kernels' POD
// parameter structs, checking every tensor-dependent rule on the way.

#ifndef ATTENTION_PARAMS_BUILDER_H_
#define ATTENTION_PARAMS_BUILDER_H_

#include <vector>

#include "absl/status/statusor.h"
#include "attention/config.h"
#include "attention/options.h"
#include "attention/tensor.h"
#include "kernels/dilated_params.h"

namespace dilated {

// Returns the groups of docs/ARCHITECTURE.md section 1 for `num_heads` heads:
// front-loaded head split, offset i mod r_i, positions per segment.
// REQUIRES: config.Validate() is OK and num_heads >= config.num_groups().
std::vector<kernels::GroupParams> PartitionHeads(const AttentionConfig& config,
                                                 int64_t num_heads);

// Returns the forward parameters, or InvalidArgument naming the tensor and the
// value at fault. `lse` may be null. The layout (packed, padded) and the
// causal flag come from `options`; cu_seqlens and key_padding_mask must stay
// alive while the parameters are used.
// REQUIRES: config.Validate() is OK.
absl::StatusOr<kernels::ForwardParams> MakeForwardParams(
    const AttentionConfig& config, const TensorView& q, const TensorView& k,
    const TensorView& v, const TensorView& out, const TensorView* lse,
    const ForwardOptions& options);

// As MakeForwardParams, plus grad_out, grad_q, grad_k, grad_v (same shape,
// dtype and device as q) and a required lse.
absl::StatusOr<kernels::BackwardParams> MakeBackwardParams(
    const AttentionConfig& config, const TensorView& q, const TensorView& k,
    const TensorView& v, const TensorView& out, const TensorView& lse,
    const TensorView& grad_out, const TensorView& grad_q,
    const TensorView& grad_k, const TensorView& grad_v,
    const ForwardOptions& options);

// Checks the cu_seqlens of packed `params` where they are host-readable
// (MakeForwardParams checks only those given on the CPU; a backend that
// copies device-resident ones to the host checks its copy): cu_seqlens[0]
// is 0, the values never decrease and cu_seqlens[batch] is the total rows.
// OK for fixed-length params.
absl::Status CheckHostCuSeqlens(const kernels::ForwardParams& params);

}  // namespace dilated

#endif  // ATTENTION_PARAMS_BUILDER_H_
