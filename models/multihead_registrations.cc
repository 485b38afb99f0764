// Registers the multihead modules under the reference's factory names.

#include <memory>

#include "models/fused_multihead_dilated_attention.h"
#include "models/multihead_dilated_attention.h"
#include "models/registry.h"

namespace dilated {
namespace models {
namespace {

absl::StatusOr<std::unique_ptr<MultiheadAttention>> CreateStandard(
    const MultiheadConfig& config) {
  DA_ASSIGN_OR_RETURN(std::unique_ptr<MultiheadDilatedAttention> module,
                      MultiheadDilatedAttention::Create(config));
  return std::unique_ptr<MultiheadAttention>(std::move(module));
}

absl::StatusOr<std::unique_ptr<MultiheadAttention>> CreateFused(
    const MultiheadConfig& config) {
  DA_ASSIGN_OR_RETURN(std::unique_ptr<FusedMultiheadDilatedAttention> module,
                      FusedMultiheadDilatedAttention::Create(config));
  return std::unique_ptr<MultiheadAttention>(std::move(module));
}

absl::StatusOr<std::unique_ptr<MultiheadAttention>> CreateAuto(
    const MultiheadConfig& config) {
  MultiheadConfig with_core = config;
  if (with_core.attention_core.empty()) with_core.attention_core = "auto";
  return CreateFused(with_core);
}

}  // namespace

DA_REGISTER_MULTIHEAD("multihead_standard", CreateStandard);
DA_REGISTER_MULTIHEAD("multihead_improved", CreateFused);
DA_REGISTER_MULTIHEAD("multihead_auto", CreateAuto);

}  // namespace models
}  // namespace dilated
