#include "memory/internal/cuda_util.h"

#include "absl/strings/str_format.h"

namespace dilated {
namespace memory {
namespace memory_internal {

absl::Status CudaStatus(cudaError_t error, absl::string_view what) {
  if (error == cudaSuccess) return absl::OkStatus();
  cudaGetLastError();  // Clear the error so that it does not stick.
  const std::string message = absl::StrFormat(
      "%s: %s (%s)", what, cudaGetErrorString(error), cudaGetErrorName(error));
  switch (error) {
    case cudaErrorMemoryAllocation:
      return absl::ResourceExhaustedError(message);
    case cudaErrorInvalidDevice:
    case cudaErrorInvalidValue:
      return absl::InvalidArgumentError(message);
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status CheckCudaDevice(int device) {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) return CudaStatus(error, "cudaGetDeviceCount");
  if (device < 0 || device >= count) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "device %d does not exist: this machine has %d CUDA devices", device,
        count));
  }
  return absl::OkStatus();
}

ScopedCudaDevice::ScopedCudaDevice(int device) {
  if (cudaGetDevice(&previous_) == cudaSuccess && previous_ != device) {
    switched_ = cudaSetDevice(device) == cudaSuccess;
  }
}

ScopedCudaDevice::~ScopedCudaDevice() {
  if (switched_) cudaSetDevice(previous_);
}

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated
