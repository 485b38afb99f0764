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

absl::StatusOr<std::vector<Backend>> KernelAttention::Candidates(
    const kernels::ForwardParams& params,
    const kernels::BackwardParams* backward, const Device& device) const {
  const std::vector<std::string> names =
      backend_name_.has_value() ? std::vector<std::string>{*backend_name_}
                                : BackendNames(device.type);
  std::vector<Backend> candidates;
  std::vector<std::string> refusals;
  for (const std::string& backend_name : names) {
    std::optional<Backend> backend = FindBackend(backend_name, device.type);
    if (!backend.has_value()) continue;
    const absl::Status supported = backend->supports(params, backward);
    if (supported.ok()) {
      candidates.push_back(*backend);
    } else if (backend_name_.has_value()) {
      return supported;
    } else {
      refusals.push_back(std::string(supported.message()));
    }
  }
  if (!candidates.empty()) return candidates;
  if (!refusals.empty()) return NoBackendCanRun(device, refusals);
  return absl::FailedPreconditionError(
      absl::StrCat("'", name(), "' has no backend for ", DeviceName(device),
                   " tensors in this build",
                   device.type == DeviceType::kCuda
                       ? " (CUDA kernels are built with --config=cuda)"
                       : ""));
}

absl::Status KernelAttention::NoBackendCanRun(
    const Device& device, const std::vector<std::string>& refusals) const {
  return absl::UnimplementedError(
      absl::StrCat("'", name(), "' found no backend for ", DeviceName(device),
                   " that can run this call: ", absl::StrJoin(refusals, "; ")));
}

template <typename Params, typename Run>
absl::Status KernelAttention::RunFirstThatCan(
    const kernels::ForwardParams& forward, const Params* backward,
    const Device& device, const ForwardOptions& options, Run run) {
  DA_ASSIGN_OR_RETURN(std::vector<Backend> candidates,
                      Candidates(forward, backward, device));
  DA_ASSIGN_OR_RETURN(memory::Allocator * workspace,
                      WorkspaceAllocator(device, options));
  const ExecutionContext context{device, options.stream, workspace};
  std::vector<std::string> refusals;
  absl::Status status;
  for (const Backend& backend : candidates) {
    status = run(backend, context);
    // A backend that finds out only when it runs (a device mask it has to
    // read) refuses before it writes anything; "auto" tries the next one.
    if (status.code() != absl::StatusCode::kUnimplemented ||
        backend_name_.has_value()) {
      return status;
    }
    refusals.push_back(std::string(status.message()));
  }
  return refusals.size() == 1 ? status : NoBackendCanRun(device, refusals);
}

absl::Status KernelAttention::DoForward(const kernels::ForwardParams& params,
                                        const Device& device,
                                        const ForwardOptions& options) {
  return RunFirstThatCan(
      params, static_cast<const kernels::BackwardParams*>(nullptr), device,
      options, [&](const Backend& backend, const ExecutionContext& context) {
        return backend.forward(params, context);
      });
}

absl::Status KernelAttention::DoBackward(const kernels::BackwardParams& params,
                                         const Device& device,
                                         const ForwardOptions& options) {
  return RunFirstThatCan(
      params.forward, &params, device, options,
      [&](const Backend& backend, const ExecutionContext& context) {
        return backend.backward(params, context);
      });
}

std::unique_ptr<Attention> MakeKernelAttention(const std::string& name,
                                               const AttentionConfig& config) {
  return std::make_unique<KernelAttention>(name, config, name);
}

}  // namespace dilated
