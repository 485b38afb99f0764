// File: cuda_util.h
//
// The CUDA runtime helpers every package uses (memory/, attention/, models/,
// tools/): cudaError_t and cublasStatus_t as absl::Status, a device check,
// and a scope that makes a device current. Host code of CUDA targets only.
//
//   ScopedCudaDevice device(index);
//   DA_RETURN_IF_ERROR(device.status());
//   DA_RETURN_IF_ERROR(CudaStatus(cudaMemsetAsync(p, 0, n, stream),
//                                 "cudaMemsetAsync"));

#ifndef BASE_CUDA_UTIL_H_
#define BASE_CUDA_UTIL_H_

#include <cublas_api.h>
#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace dilated {

// Returns OK for cudaSuccess; ResourceExhausted for an allocation failure,
// InvalidArgument for a bad device, value or launch configuration,
// FailedPrecondition without a device or a recent enough driver, Internal
// otherwise. The message names `what` and the CUDA error. Clears CUDA's last
// error, so that a failed call does not poison later launches.
absl::Status CudaStatus(cudaError_t error, absl::string_view what);

// Returns OK for CUBLAS_STATUS_SUCCESS, ResourceExhausted for allocation
// failures and Internal otherwise, naming `what`.
absl::Status CublasStatus(cublasStatus_t status, absl::string_view what);

// Returns OK if `device` is a valid device index on this machine, else
// InvalidArgument naming it and the device count.
absl::Status CheckCudaDevice(int device);

// Makes `device` current for the lifetime of the object and restores the
// previous device afterwards.
class ScopedCudaDevice {
 public:
  explicit ScopedCudaDevice(int device);
  ~ScopedCudaDevice();
  ScopedCudaDevice(const ScopedCudaDevice&) = delete;
  ScopedCudaDevice& operator=(const ScopedCudaDevice&) = delete;

  // Returns whether switching succeeded.
  const absl::Status& status() const { return status_; }

 private:
  int previous_ = -1;
  bool switched_ = false;
  absl::Status status_;
};

}  // namespace dilated

#endif  // BASE_CUDA_UTIL_H_
