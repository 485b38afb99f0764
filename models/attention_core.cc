#include "models/attention_core.h"

#include <algorithm>

#include "attention/config.h"
#include "attention/registry.h"
#include "distributed/communicator.h"

namespace dilated {
namespace models {

std::string DefaultAttentionCoreName() {
  const std::vector<std::string> names = RegisteredAttentionNames();
  const bool has_improved =
      std::find(names.begin(), names.end(), "improved") != names.end();
  return has_improved ? "improved" : "standard";
}

absl::StatusOr<std::unique_ptr<Attention>> CreateAttentionCore(
    const std::string& name, const std::vector<int64_t>& segment_lengths,
    const std::vector<int64_t>& dilation_rates,
    distributed::Communicator* communicator) {
  AttentionConfig config;
  config.segment_lengths = segment_lengths;
  config.dilation_rates = dilation_rates;
  config.communicator = communicator;
  return CreateAttention(name.empty() ? DefaultAttentionCoreName() : name,
                         config);
}

int64_t SequenceShards(const distributed::Communicator* communicator) {
  return communicator == nullptr ? 1 : communicator->size();
}

}  // namespace models
}  // namespace dilated
