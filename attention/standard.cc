// "standard": the direct algorithm (gather each group, dense attention,
// scatter, times 1/G). Registers the factory name and the CPU backend.

#include "absl/status/status.h"
#include "attention/backend_registry.h"
#include "attention/kernel_attention.h"
#include "attention/registry.h"
#include "attention/workspace.h"
#include "kernels/cpu/row_io.h"
#include "kernels/cpu/standard_attention.h"

namespace dilated {
namespace {

absl::Status StandardForwardCpu(const kernels::ForwardParams& params,
                                const ExecutionContext& context) {
  const int threads = kernels::cpu::MaxThreads();
  DA_ASSIGN_OR_RETURN(
      HostWorkspace workspace,
      HostWorkspace::Allocate(
          context.workspace,
          threads * kernels::cpu::StandardWorkspacePerThread(params, false)));
  kernels::cpu::StandardForward(params, workspace.data(), threads);
  return absl::OkStatus();
}

absl::Status StandardBackwardCpu(const kernels::BackwardParams& params,
                                 const ExecutionContext& context) {
  const int threads = kernels::cpu::MaxThreads();
  DA_ASSIGN_OR_RETURN(
      HostWorkspace workspace,
      HostWorkspace::Allocate(
          context.workspace, threads * kernels::cpu::StandardWorkspacePerThread(
                                           params.forward, true)));
  kernels::cpu::StandardBackward(params, workspace.data(), threads);
  return absl::OkStatus();
}

// Every layout, dtype and segment geometry of the front end.
absl::Status StandardSupportsCpu(const kernels::ForwardParams& params,
                                 const kernels::BackwardParams* /*backward*/) {
  return RequireQueryKeyGeometry("standard", params);
}

absl::StatusOr<std::unique_ptr<Attention>> CreateStandard(
    const AttentionConfig& config) {
  return MakeKernelAttention("standard", config);
}

}  // namespace

DA_REGISTER_ATTENTION("standard", CreateStandard);
DA_REGISTER_BACKEND("standard", DeviceType::kCpu,
                    (Backend{&StandardForwardCpu, &StandardBackwardCpu,
                             &StandardSupportsCpu,
                             /*priority=*/0}));

}  // namespace dilated
