// File: internal/cuda_util.h
//
// Helpers of the CUDA allocators: cudaError_t to absl::Status, and a scope
// that makes a device current. Included by .cc files of CUDA targets only.

#ifndef MEMORY_INTERNAL_CUDA_UTIL_H_
#define MEMORY_INTERNAL_CUDA_UTIL_H_

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace dilated {
namespace memory {
namespace memory_internal {

// Returns OK for cudaSuccess; ResourceExhausted for an allocation failure;
// InvalidArgument for a bad device or value; Internal otherwise. The message
// names `what` and the CUDA error. Clears CUDA's last error, so that a failed
// allocation does not poison later calls.
absl::Status CudaStatus(cudaError_t error, absl::string_view what);

// Returns OK if `device` is a valid device index on this machine, else
// InvalidArgument naming it and the device count.
absl::Status CheckCudaDevice(int device);

// Makes `device` current for the scope and restores the previous device.
class ScopedCudaDevice {
 public:
  explicit ScopedCudaDevice(int device);
  ~ScopedCudaDevice();
  ScopedCudaDevice(const ScopedCudaDevice&) = delete;
  ScopedCudaDevice& operator=(const ScopedCudaDevice&) = delete;

 private:
  int previous_ = -1;
  bool switched_ = false;
};

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_INTERNAL_CUDA_UTIL_H_
