#include "attention/registry.h"

#include "factory/status_macros.h"

namespace dilated {

AttentionRegistry& GlobalAttentionRegistry() {
  static AttentionRegistry* registry = new AttentionRegistry();
  return *registry;
}

absl::StatusOr<std::unique_ptr<Attention>> CreateAttention(
    absl::string_view name, const AttentionConfig& config) {
  DA_RETURN_IF_ERROR(config.Validate());
  return GlobalAttentionRegistry().Create(name, config);
}

std::vector<std::string> RegisteredAttentionNames() {
  return GlobalAttentionRegistry().Names();
}

std::vector<std::string> DilatedAttentionNames() {
  std::vector<std::string> names;
  for (std::string& name : RegisteredAttentionNames()) {
    if (name != "block_sparse" && name != "longnet") {
      names.push_back(std::move(name));
    }
  }
  return names;
}

}  // namespace dilated
