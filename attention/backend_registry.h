// File: backend_registry.h
//
// Kernels registered per (implementation name, device type), the way kernels
// are keyed by (op, device) in TensorFlow: "improved" on CPU and "improved" on
// CUDA are two backends of one factory name. A CUDA backend lives in a
// CUDA-only target, so a CPU-only build simply has none and reports
// FailedPrecondition for CUDA tensors.
//
// Every backend says which calls it can run (Backend::supports); "auto"
// takes the highest-priority backend that can, and a backend asked by name
// for a call it cannot run answers with its reason. What a backend can only
// learn by reading device data (a device mask's layout) it may refuse as it
// runs, with Unimplemented and before it writes any output; "auto" then
// runs the next backend. No backend runs another
// one behind the caller's back.
//
//   DA_REGISTER_BACKEND(
//       "standard", dilated::DeviceType::kCpu,
//       (dilated::Backend{&Forward, &Backward, &Supports, /*priority=*/0}));

#ifndef ATTENTION_BACKEND_REGISTRY_H_
#define ATTENTION_BACKEND_REGISTRY_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "attention/tensor.h"
#include "factory/registry.h"
#include "factory/status_macros.h"
#include "kernels/dilated_params.h"
#include "memory/allocator.h"

namespace dilated {

struct ExecutionContext {
  Device device;
  void* stream = nullptr;  // cudaStream_t for CUDA backends.
  // Workspace memory in the device's space; never null. On a CUDA device it
  // is stream-ordered: pass `stream` to it.
  memory::Allocator* workspace = nullptr;
};

using ForwardKernel = absl::Status (*)(const kernels::ForwardParams&,
                                       const ExecutionContext&);
using BackwardKernel = absl::Status (*)(const kernels::BackwardParams&,
                                        const ExecutionContext&);
// Returns OK when the backend can run a forward pass with these parameters
// (`backward` null) or the backward pass `backward` (whose forward member is
// the first argument), else Unimplemented naming what it lacks.
using SupportsFn = absl::Status (*)(const kernels::ForwardParams& forward,
                                    const kernels::BackwardParams* backward);

struct Backend {
  ForwardKernel forward;
  BackwardKernel backward;
  SupportsFn supports;
  // "auto" picks the registered backend with the highest priority for the
  // tensors' device.
  int priority;
  // Whether backward takes each row's softmax statistics from forward.out
  // and forward.lse (flash-style) rather than recomputing them from the keys
  // it is given. Only such a backward can run a block of a row's keys on its
  // own (the sequence-parallel implementations split rows that way).
  bool backward_reads_forward_lse = false;
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

// Capability checks for SupportsFn implementations: OK, or Unimplemented
// "'<backend>' cannot run <what the call needs>".
//
// Refuses key geometry other than the front end's (key_seq_len == seq_len,
// key_position_offset == 0).
absl::Status RequireQueryKeyGeometry(absl::string_view backend,
                                     const kernels::ForwardParams& params);
// Refuses packed input, a key padding mask and partial segments.
absl::Status RequireFixedLayout(absl::string_view backend,
                                const kernels::ForwardParams& params);

#define DA_REGISTER_BACKEND(name, device, backend) \
  DA_REGISTER_AT_STARTUP(                          \
      ::dilated::RegisterBackend(name, device, backend, __FILE__, __LINE__))

}  // namespace dilated

#endif  // ATTENTION_BACKEND_REGISTRY_H_
