// File: attention_core.h
//
// The dilated-attention core inside the multihead modules, made by the
// attention factory (attention/registry.h) from a factory name. Unless the
// caller names one, the core is "improved" when an implementation of that
// name is registered, and "standard" otherwise.
//
//   absl::StatusOr<std::unique_ptr<dilated::Attention>> core =
//       dilated::models::CreateAttentionCore("", {2048, 4096}, {1, 2});

#ifndef MODELS_ATTENTION_CORE_H_
#define MODELS_ATTENTION_CORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "attention/attention.h"

namespace dilated {
namespace models {

// Returns "improved" if RegisteredAttentionNames() contains it, else
// "standard".
std::string DefaultAttentionCoreName();

// Returns the attention registered as `name` (DefaultAttentionCoreName() when
// empty) configured with the given groups, the default softmax scale and
// `communicator` (AttentionConfig::communicator: the ranks a
// sequence-parallel core spreads the sequence over; null for one process);
// InvalidArgument for a bad configuration, NotFound for an unknown name.
absl::StatusOr<std::unique_ptr<Attention>> CreateAttentionCore(
    const std::string& name, const std::vector<int64_t>& segment_lengths,
    const std::vector<int64_t>& dilation_rates,
    distributed::Communicator* communicator = nullptr);

// Returns the number of shards a module's input holds of the sequence: the
// communicator's size, or 1 without one. Modules check segment lengths
// against the whole sequence, shards times their input's length.
int64_t SequenceShards(const distributed::Communicator* communicator);

}  // namespace models
}  // namespace dilated

#endif  // MODELS_ATTENTION_CORE_H_
