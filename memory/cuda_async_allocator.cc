#include "memory/cuda_async_allocator.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/cuda_util.h"

namespace dilated {
namespace memory {

namespace {

cudaMemPool_t AsPool(void* pool) { return static_cast<cudaMemPool_t>(pool); }

cudaStream_t AsStream(StreamHandle stream) {
  return static_cast<cudaStream_t>(stream);
}

}  // namespace

absl::StatusOr<std::unique_ptr<CudaAsyncAllocator>> CudaAsyncAllocator::Create(
    int device, CudaAsyncOptions options) {
  absl::Status status = CheckCudaDevice(device);
  if (!status.ok()) return status;
  int supported = 0;
  status = CudaStatus(cudaDeviceGetAttribute(
                          &supported, cudaDevAttrMemoryPoolsSupported, device),
                      "cudaDeviceGetAttribute(MemoryPoolsSupported)");
  if (!status.ok()) return status;
  if (!supported) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "cuda:%d does not support stream-ordered memory pools", device));
  }
  cudaMemPoolProps props;
  std::memset(&props, 0, sizeof(props));
  props.allocType = cudaMemAllocationTypePinned;
  props.handleTypes = cudaMemHandleTypeNone;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = device;
  cudaMemPool_t pool = nullptr;
  status = CudaStatus(cudaMemPoolCreate(&pool, &props), "cudaMemPoolCreate");
  if (!status.ok()) return status;
  uint64_t threshold = options.release_threshold;
  status = CudaStatus(cudaMemPoolSetAttribute(
                          pool, cudaMemPoolAttrReleaseThreshold, &threshold),
                      "cudaMemPoolSetAttribute(ReleaseThreshold)");
  if (!status.ok()) {
    cudaMemPoolDestroy(pool);
    return status;
  }
  return std::unique_ptr<CudaAsyncAllocator>(
      new CudaAsyncAllocator(device, pool));
}

CudaAsyncAllocator::CudaAsyncAllocator(int device, void* pool)
    : Allocator(Device::Cuda(device), kMaxAlignment,
                absl::StrCat("cudaMallocAsync(cuda:", device, ")")),
      device_(device),
      pool_(pool) {}

CudaAsyncAllocator::~CudaAsyncAllocator() {
  ScopedCudaDevice scope(device_);
  cudaDeviceSynchronize();
  cudaMemPoolDestroy(AsPool(pool_));
}

absl::StatusOr<void*> CudaAsyncAllocator::DoAllocate(size_t bytes,
                                                     size_t /*alignment*/,
                                                     StreamHandle stream) {
  void* ptr = nullptr;
  absl::Status status = CudaStatus(
      cudaMallocFromPoolAsync(&ptr, bytes, AsPool(pool_), AsStream(stream)),
      absl::StrFormat("%s: cudaMallocFromPoolAsync(%d)", name(), bytes));
  if (!status.ok()) return status;
  live_.Insert(ptr, bytes, name());
  stats_.OnAllocate(static_cast<int64_t>(bytes));
  return ptr;
}

void CudaAsyncAllocator::DoDeallocate(void* ptr, size_t bytes,
                                      size_t /*alignment*/,
                                      StreamHandle stream) noexcept {
  live_.EraseOrDie(ptr, bytes, name());
  stats_.OnDeallocate(static_cast<int64_t>(bytes));
  const cudaError_t error = cudaFreeAsync(ptr, AsStream(stream));
  if (error != cudaSuccess) {
    std::fprintf(stderr, "%s: cudaFreeAsync(%p) failed: %s\n", name().c_str(),
                 ptr, cudaGetErrorString(error));
    cudaGetLastError();
  }
}

size_t CudaAsyncAllocator::DoReleaseCached() {
  ScopedCudaDevice scope(device_);
  uint64_t before = 0, after = 0;
  cudaMemPoolGetAttribute(AsPool(pool_), cudaMemPoolAttrReservedMemCurrent,
                          &before);
  // Frees on streams complete at their stream's pace; only then can the
  // driver give their memory back.
  cudaDeviceSynchronize();
  cudaMemPoolTrimTo(AsPool(pool_), 0);
  cudaMemPoolGetAttribute(AsPool(pool_), cudaMemPoolAttrReservedMemCurrent,
                          &after);
  return before > after ? static_cast<size_t>(before - after) : 0;
}

AllocatorStats CudaAsyncAllocator::DoGetStats() const {
  AllocatorStats stats = stats_.Snapshot();
  uint64_t reserved = 0, peak = 0;
  if (cudaMemPoolGetAttribute(AsPool(pool_), cudaMemPoolAttrReservedMemCurrent,
                              &reserved) == cudaSuccess &&
      cudaMemPoolGetAttribute(AsPool(pool_), cudaMemPoolAttrReservedMemHigh,
                              &peak) == cudaSuccess) {
    stats.bytes_reserved = static_cast<int64_t>(reserved);
    stats.peak_bytes_reserved = static_cast<int64_t>(peak);
  }
  return stats;
}

}  // namespace memory
}  // namespace dilated
