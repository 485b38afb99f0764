// "standard": the direct algorithm (gather each group, dense attention,
// scatter, times 1/G). Registers the factory name and the CPU backend.

#include "absl/status/status.h"
#include "attention/backend_registry.h"
#include "attention/kernel_attention.h"
#include "attention/registry.h"
#include "kernels/cpu/standard_attention.h"

namespace dilated {
namespace {

absl::Status StandardForwardCpu(const kernels::ForwardParams& params,
                                const ExecutionContext&) {
  kernels::cpu::StandardForward(params);
  return absl::OkStatus();
}

absl::Status StandardBackwardCpu(const kernels::BackwardParams& params,
                                 const ExecutionContext&) {
  kernels::cpu::StandardBackward(params);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Attention>> CreateStandard(
    const AttentionConfig& config) {
  return MakeKernelAttention("standard", config);
}

}  // namespace

DA_REGISTER_ATTENTION("standard", CreateStandard);
DA_REGISTER_BACKEND("standard", DeviceType::kCpu,
                    (Backend{&StandardForwardCpu, &StandardBackwardCpu,
                             /*priority=*/0}));

}  // namespace dilated
