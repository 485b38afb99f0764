// File: backend_registry.h
//
// Kernels registered per (implementation name, device type), the way kernels
// are keyed by (op, device) in TensorFlow: "improved" on CPU and "improved" on
// CUDA are two backends of one factory name. A CUDA backend lives in a
// CUDA-only target, so a CPU-only build simply has none and reports
// FailedPrecondition for CUDA tensors.
//
//   DA_REGISTER_BACKEND(
//       "standard", dilated::DeviceType::kCpu,
//       (dilated::Backend{&Forward, &Backward, /*priority=*/0}));

#ifndef ATTENTION_BACKEND_REGISTRY_H_
#define ATTENTION_BACKEND_REGISTRY_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "attention/tensor.h"
#include "factory/status_macros.h"
#include "kernels/dilated_params.h"
#include "memory/allocator.h"

namespace dilated {

struct ExecutionContext {
  Device device;
  void* stream = nullptr;  // cudaStream_t for CUDA backends.
  // Workspace memory in the device's space. Never null for CPU tensors;
  // null for CUDA tensors means stream-ordered cudaMallocAsync.
  memory::Allocator* workspace = nullptr;
};

using ForwardKernel = absl::Status (*)(const kernels::ForwardParams&,
                                       const ExecutionContext&);
using BackwardKernel = absl::Status (*)(const kernels::BackwardParams&,
                                        const ExecutionContext&);

struct Backend {
  ForwardKernel forward;
  BackwardKernel backward;
  // "auto" picks the registered backend with the highest priority for the
  // tensors' device.
  int priority;
};

// Stores `backend` for (name, device).
// REQUIRES: (name, device) is not registered yet; otherwise the process aborts
// naming both registration sites.
void RegisterBackend(absl::string_view name, DeviceType device,
                     const Backend& backend, const char* file, int line);

// Returns the backend for (name, device), or nullopt.
std::optional<Backend> FindBackend(absl::string_view name, DeviceType device);

// Returns the names with a backend for `device`, highest priority first.
std::vector<std::string> BackendNames(DeviceType device);

namespace internal {
struct BackendRegistration {
  BackendRegistration(absl::string_view name, DeviceType device,
                      const Backend& backend, const char* file, int line) {
    RegisterBackend(name, device, backend, file, line);
  }
};
}  // namespace internal

#define DA_REGISTER_BACKEND(name, device, backend)                            \
  static const ::dilated::internal::BackendRegistration DA_INTERNAL_CONCAT(   \
      da_backend_registration_, __COUNTER__)(name, device, backend, __FILE__, \
                                             __LINE__)

}  // namespace dilated

#endif  // ATTENTION_BACKEND_REGISTRY_H_
