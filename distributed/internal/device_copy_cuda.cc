// device_copy.h over the CUDA runtime.

#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "base/cuda_util.h"
#include "distributed/internal/device_copy.h"
#include "factory/status_macros.h"

namespace dilated {
namespace distributed {
namespace internal {

absl::Status CopyAsync(void* dst, const void* src, size_t bytes,
                       const Device& device, void* stream) {
  ScopedCudaDevice scope(device.index);
  DA_RETURN_IF_ERROR(scope.status());
  // cudaMemcpyDefault: unified addressing tells host from device pointers.
  return CudaStatus(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault,
                                    static_cast<cudaStream_t>(stream)),
                    absl::StrCat("cudaMemcpyAsync of ", bytes, " bytes"));
}

absl::Status SynchronizeStream(const Device& device, void* stream) {
  ScopedCudaDevice scope(device.index);
  DA_RETURN_IF_ERROR(scope.status());
  return CudaStatus(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)),
                    "cudaStreamSynchronize");
}

absl::StatusOr<void*> AllocatePinned(size_t bytes) {
  void* pointer = nullptr;
  DA_RETURN_IF_ERROR(
      CudaStatus(cudaMallocHost(&pointer, bytes),
                 absl::StrCat("cudaMallocHost of ", bytes, " bytes")));
  return pointer;
}

void FreePinned(void* pointer) {
  if (pointer != nullptr) cudaFreeHost(pointer);
}

}  // namespace internal
}  // namespace distributed
}  // namespace dilated
