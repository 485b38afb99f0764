#include "attention/attention.h"

#include "absl/strings/str_cat.h"
#include "attention/params_builder.h"
#include "factory/status_macros.h"
#include "memory/default_allocator.h"
#include "memory/pool_allocator.h"

namespace dilated {

absl::Status Attention::CheckOptions(const TensorView& q,
                                     const ForwardOptions& options) const {
  if (options.training && config_.dropout > 0.0 && !AppliesDropout()) {
    return absl::UnimplementedError(
        absl::StrCat("dropout ", config_.dropout,
                     " with training=true is not implemented by '", name_,
                     "'; use 'standard', 'improved' or 'auto', or set "
                     "dropout to 0 or training to false"));
  }
  if (q.device.type == DeviceType::kCpu && options.stream != nullptr) {
    return absl::InvalidArgumentError(
        "options.stream must be null for CPU tensors");
  }
  return absl::OkStatus();
}

absl::StatusOr<memory::Allocator*> Attention::WorkspaceAllocator(
    const Device& device, const ForwardOptions& options) {
  if (options.workspace_allocator != nullptr) {
    if (options.workspace_allocator->space() != device) {
      return absl::InvalidArgumentError(
          absl::StrCat("options.workspace_allocator allocates in ",
                       DeviceName(options.workspace_allocator->space()),
                       " but the tensors are on ", DeviceName(device)));
    }
    return options.workspace_allocator;
  }
  if (device.type == DeviceType::kCuda) {
    if (!config_.enable_memory_pool) {
      return memory::StreamOrderedAllocator(device);
    }
    return memory::DefaultAllocator(device);
  }
  DA_ASSIGN_OR_RETURN(memory::Allocator * host,
                      memory::DefaultAllocator(Device::Cpu()));
  if (!config_.enable_memory_pool) return host;
  absl::MutexLock lock(&host_pool_mutex_);
  if (host_pool_ == nullptr) {
    host_pool_ = std::make_unique<memory::PoolAllocator>(host);
  }
  return host_pool_.get();
}

absl::Status Attention::AgreeOnCall(const absl::Status& checked,
                                    const kernels::ForwardParams* /*params*/,
                                    bool /*backward*/) {
  return checked;
}

absl::Status Attention::Forward(const TensorView& q, const TensorView& k,
                                const TensorView& v, const TensorView& out,
                                const ForwardOptions& options,
                                const TensorView* lse) {
  absl::StatusOr<kernels::ForwardParams> params =
      MakeForwardParams(config_, q, k, v, out, lse, options);
  absl::Status checked = params.status();
  if (checked.ok()) checked = CheckOptions(q, options);
  DA_RETURN_IF_ERROR(AgreeOnCall(checked, params.ok() ? &*params : nullptr,
                                 /*backward=*/false));
  return DoForward(*params, q.device, options);
}

absl::Status Attention::Backward(
    const TensorView& q, const TensorView& k, const TensorView& v,
    const TensorView& out, const TensorView& lse, const TensorView& grad_out,
    const TensorView& grad_q, const TensorView& grad_k,
    const TensorView& grad_v, const ForwardOptions& options) {
  absl::StatusOr<kernels::BackwardParams> params = MakeBackwardParams(
      config_, q, k, v, out, lse, grad_out, grad_q, grad_k, grad_v, options);
  absl::Status checked = params.status();
  if (checked.ok()) checked = CheckOptions(q, options);
  DA_RETURN_IF_ERROR(AgreeOnCall(checked,
                                 params.ok() ? &params->forward : nullptr,
                                 /*backward=*/true));
  return DoBackward(*params, q.device, options);
}

}  // namespace dilated
