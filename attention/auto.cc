// "auto": for every call, the highest-priority backend registered for the
// tensors' device (on the CPU: "improved" when linked, else "standard").

#include <optional>

#include "attention/kernel_attention.h"
#include "attention/registry.h"

namespace dilated {
namespace {

absl::StatusOr<std::unique_ptr<Attention>> CreateAuto(
    const AttentionConfig& config) {
  return std::make_unique<KernelAttention>("auto", config, std::nullopt);
}

}  // namespace

DA_REGISTER_ATTENTION("auto", CreateAuto);

}  // namespace dilated
