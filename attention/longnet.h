// File: longnet.h
//
// "longnet" (docs/LONGNET_MIXING.md): the LongNet paper's mixing of dilated
// branches, in microsoft/torchscale's convention. Every branch (s_i, r_i) of
// the config runs on EVERY head; head a uses offset a / ceil(heads / r_i)
// (heads in r_i contiguous groups, group c at offset c). Each branch gives
// out_i and lse_i per row (lse_i = -inf where it selects no key for the row)
// and the result is sum_i w_i out_i with w_i = exp(lse_i) / sum_j exp(lse_j):
// exactly one softmax over the union (with multiplicity) of the branches'
// keys, so the gradients flow through the weights. Partial segments, key
// padding and packed sequences as in "improved", whose fused kernels run the
// branches; the merge is one pass over the rows.
//
//   dilated::AttentionConfig config;
//   config.segment_lengths = {2048, 4096, 8192};
//   config.dilation_rates = {1, 2, 4};
//   auto attention = dilated::CreateAttention("longnet", config);
//
// As for every name, heads >= len(segment_lengths). CUDA tensors run the
// fused CUDA kernels of "improved" (float16 and bfloat16) in builds with
// --config=cuda (longnet_device.h; FailedPrecondition otherwise).

#ifndef ATTENTION_LONGNET_H_
#define ATTENTION_LONGNET_H_

#include <cstdint>
#include <vector>

#include "kernels/dilated_params.h"

namespace dilated {

// Returns the groups that run branch (segment_length, rate) on every one of
// num_heads heads with torchscale's offsets: min(rate, heads) groups of
// ceil(heads / rate) heads (the last one may be short), group c at offset c;
// groups without heads are left out.
std::vector<kernels::GroupParams> LongNetBranchGroups(int64_t segment_length,
                                                      int64_t rate,
                                                      int64_t num_heads);

}  // namespace dilated

#endif  // ATTENTION_LONGNET_H_
