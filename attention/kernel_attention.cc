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

absl::StatusOr<Backend> KernelAttention::Resolve(const Device& device) const {
  if (backend_name_.has_value()) {
    std::optional<Backend> backend = FindBackend(*backend_name_, device.type);
    if (backend.has_value()) return *backend;
  } else {
    const std::vector<std::string> names = BackendNames(device.type);
    if (!names.empty()) return *FindBackend(names.front(), device.type);
  }
  return absl::FailedPreconditionError(
      absl::StrCat("'", name(), "' has no backend for ", DeviceName(device),
                   " tensors in this build",
                   device.type == DeviceType::kCuda
                       ? " (CUDA kernels are built with --config=cuda)"
                       : ""));
}

absl::Status KernelAttention::DoForward(const kernels::ForwardParams& params,
                                        const Device& device, void* stream,
                                        memory::Allocator* workspace) {
  DA_ASSIGN_OR_RETURN(Backend backend, Resolve(device));
  return backend.forward(params, ExecutionContext{device, stream, workspace});
}

absl::Status KernelAttention::DoBackward(const kernels::BackwardParams& params,
                                         const Device& device, void* stream,
                                         memory::Allocator* workspace) {
  DA_ASSIGN_OR_RETURN(Backend backend, Resolve(device));
  return backend.backward(params, ExecutionContext{device, stream, workspace});
}

std::unique_ptr<Attention> MakeKernelAttention(const std::string& name,
                                               const AttentionConfig& config) {
  return std::make_unique<KernelAttention>(name, config, name);
}

}  // namespace dilated
