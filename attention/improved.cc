// "improved": the fused strided kernel (ARCHITECTURE.md section 1). Every
// group is computed in place as a strided view by a flash-attention kernel;
// no gather, scatter or temporaries. Registers the factory name and the CPU
// backend, whose priority makes "auto" prefer it on the CPU.

#include "absl/status/status.h"
#include "attention/backend_registry.h"
#include "attention/kernel_attention.h"
#include "attention/registry.h"
#include "kernels/cpu/flash_attention.h"

namespace dilated {
namespace {

absl::Status ImprovedForwardCpu(const kernels::ForwardParams& params,
                                const ExecutionContext&) {
  kernels::cpu::FlashForward(params);
  return absl::OkStatus();
}

absl::Status ImprovedBackwardCpu(const kernels::BackwardParams& params,
                                 const ExecutionContext&) {
  kernels::cpu::FlashBackward(params);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Attention>> CreateImproved(
    const AttentionConfig& config) {
  return MakeKernelAttention("improved", config);
}

}  // namespace

DA_REGISTER_ATTENTION("improved", CreateImproved);
DA_REGISTER_BACKEND("improved", DeviceType::kCpu,
                    (Backend{&ImprovedForwardCpu, &ImprovedBackwardCpu,
                             /*priority=*/10}));

}  // namespace dilated
