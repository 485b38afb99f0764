// "improved": the fused strided kernel (docs/ARCHITECTURE.md section 1). Every
// group is computed in place as a strided view by a flash-attention kernel;
// no gather, scatter or temporaries. Registers the factory name and the CPU
// backend, whose priority makes "auto" prefer it on the CPU.

#include "absl/status/status.h"
#include "attention/backend_registry.h"
#include "attention/kernel_attention.h"
#include "attention/registry.h"
#include "attention/workspace.h"
#include "factory/status_macros.h"
#include "kernels/cpu/flash_attention.h"
#include "kernels/cpu/row_io.h"

namespace dilated {
namespace {

absl::Status ImprovedForwardCpu(const kernels::ForwardParams& params,
                                const ExecutionContext& context) {
  const int threads = kernels::cpu::MaxThreads();
  DA_ASSIGN_OR_RETURN(
      HostWorkspace workspace,
      HostWorkspace::Allocate(
          context.workspace,
          threads * kernels::cpu::FlashForwardWorkspacePerThread(params)));
  kernels::cpu::FlashForward(params, workspace.data(), threads);
  return absl::OkStatus();
}

absl::Status ImprovedBackwardCpu(const kernels::BackwardParams& params,
                                 const ExecutionContext& context) {
  const int threads = kernels::cpu::MaxThreads();
  DA_ASSIGN_OR_RETURN(
      HostWorkspace workspace,
      HostWorkspace::Allocate(
          context.workspace,
          threads *
              kernels::cpu::FlashBackwardWorkspacePerThread(params.forward)));
  kernels::cpu::FlashBackward(params, workspace.data(), threads);
  return absl::OkStatus();
}

// Every layout, dtype and segment geometry of the front end.
absl::Status ImprovedSupportsCpu(const kernels::ForwardParams& params,
                                 const kernels::BackwardParams* /*backward*/) {
  return RequireQueryKeyGeometry("improved", params);
}

absl::StatusOr<std::unique_ptr<Attention>> CreateImproved(
    const AttentionConfig& config) {
  return MakeKernelAttention("improved", config);
}

}  // namespace

DA_REGISTER_ATTENTION("improved", CreateImproved);
DA_REGISTER_BACKEND("improved", DeviceType::kCpu,
                    (Backend{&ImprovedForwardCpu, &ImprovedBackwardCpu,
                             &ImprovedSupportsCpu,
                             /*priority=*/10,
                             /*backward_reads_forward_lse=*/true}));

}  // namespace dilated
