#include "models/registry.h"

namespace dilated {
namespace models {

MultiheadRegistry& GlobalMultiheadRegistry() {
  static MultiheadRegistry* registry = new MultiheadRegistry();
  return *registry;
}

absl::StatusOr<std::unique_ptr<MultiheadAttention>> CreateMultiheadAttention(
    absl::string_view name, const MultiheadConfig& config) {
  DA_RETURN_IF_ERROR(config.Validate());
  return GlobalMultiheadRegistry().Create(name, config);
}

std::vector<std::string> RegisteredMultiheadNames() {
  return GlobalMultiheadRegistry().Names();
}

}  // namespace models
}  // namespace dilated
