#include "attention/kernel_attention.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "factory/status_macros.h"

namespace dilated {

KernelAttention::KernelAttention(std::string name, AttentionConfig config,
                                 std::optional<std::string> backend_name)
    : Attention(std::move(name), std::move(config)),
      backend_name_(std::move(backend_name)) {}

absl::StatusOr<Backend> KernelAttention::Resolve(
    const kernels::ForwardParams& params,
    const kernels::BackwardParams* backward, const Device& device) const {
  const std::vector<std::string> names =
      backend_name_.has_value() ? std::vector<std::string>{*backend_name_}
                                : BackendNames(device.type);
  std::vector<std::string> refusals;
  for (const std::string& backend_name : names) {
    std::optional<Backend> backend = FindBackend(backend_name, device.type);
    if (!backend.has_value()) continue;
    const absl::Status supported = backend->supports(params, backward);
    if (supported.ok()) return *backend;
    if (backend_name_.has_value()) return supported;
    refusals.push_back(std::string(supported.message()));
  }
  if (!refusals.empty()) {
    return absl::UnimplementedError(absl::StrCat(
        "'", name(), "' found no backend for ", DeviceName(device),
        " that can run this call: ", absl::StrJoin(refusals, "; ")));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("'", name(), "' has no backend for ", DeviceName(device),
                   " tensors in this build",
                   device.type == DeviceType::kCuda
                       ? " (CUDA kernels are built with --config=cuda)"
                       : ""));
}

absl::Status KernelAttention::DoForward(const kernels::ForwardParams& params,
                                        const Device& device,
                                        const ForwardOptions& options) {
  DA_ASSIGN_OR_RETURN(Backend backend, Resolve(params, nullptr, device));
  DA_ASSIGN_OR_RETURN(memory::Allocator * workspace,
                      WorkspaceAllocator(device, options));
  return backend.forward(params,
                         ExecutionContext{device, options.stream, workspace});
}

absl::Status KernelAttention::DoBackward(const kernels::BackwardParams& params,
                                         const Device& device,
                                         const ForwardOptions& options) {
  DA_ASSIGN_OR_RETURN(Backend backend,
                      Resolve(params.forward, &params, device));
  DA_ASSIGN_OR_RETURN(memory::Allocator * workspace,
                      WorkspaceAllocator(device, options));
  return backend.backward(params,
                          ExecutionContext{device, options.stream, workspace});
}

std::unique_ptr<Attention> MakeKernelAttention(const std::string& name,
                                               const AttentionConfig& config) {
  return std::make_unique<KernelAttention>(name, config, name);
}

}  // namespace dilated
