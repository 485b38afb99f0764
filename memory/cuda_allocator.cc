#include "memory/cuda_allocator.h"

#include <cuda_runtime.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/cuda_util.h"

namespace dilated {
namespace memory {

absl::StatusOr<std::unique_ptr<CudaAllocator>> CudaAllocator::Create(
    int device) {
  absl::Status status = CheckCudaDevice(device);
  if (!status.ok()) return status;
  return std::unique_ptr<CudaAllocator>(new CudaAllocator(device));
}

CudaAllocator::CudaAllocator(int device)
    : Allocator(Device::Cuda(device), kMaxAlignment,
                absl::StrCat("cudaMalloc(cuda:", device, ")")),
      device_(device) {}

absl::StatusOr<void*> CudaAllocator::DoAllocate(size_t bytes,
                                                size_t /*alignment*/,
                                                StreamHandle /*stream*/) {
  ScopedCudaDevice scope(device_);
  void* ptr = nullptr;
  absl::Status status =
      CudaStatus(cudaMalloc(&ptr, bytes),
                 absl::StrFormat("%s: cudaMalloc(%d)", name(), bytes));
  if (!status.ok()) return status;
  live_.Insert(ptr, bytes, name());
  stats_.OnAllocate(static_cast<int64_t>(bytes));
  return ptr;
}

void CudaAllocator::DoDeallocate(void* ptr, size_t bytes, size_t /*alignment*/,
                                 StreamHandle /*stream*/) noexcept {
  live_.EraseOrDie(ptr, bytes, name());
  stats_.OnDeallocate(static_cast<int64_t>(bytes));
  ScopedCudaDevice scope(device_);
  const cudaError_t error = cudaFree(ptr);
  if (error != cudaSuccess) {
    // The context is broken (e.g. a kernel faulted); the memory goes with it.
    std::fprintf(stderr, "%s: cudaFree(%p) failed: %s\n", name().c_str(), ptr,
                 cudaGetErrorString(error));
    cudaGetLastError();
  }
}

}  // namespace memory
}  // namespace dilated
