// File: cuda_async_allocator.h
//
// CudaAsyncAllocator: stream-ordered device allocation through a CUDA memory
// pool of the driver (cudaMallocFromPoolAsync / cudaFreeAsync), RMM's
// cuda_async_memory_resource. The driver reuses freed memory along stream
// order without synchronising the device.
//
//   absl::StatusOr<std::unique_ptr<CudaAsyncAllocator>> device =
//       CudaAsyncAllocator::Create(/*device=*/0);
//   absl::StatusOr<void*> p = (*device)->Allocate(16 << 20, 256, stream);
//   ...  // kernels on `stream` use *p
//   (*device)->Deallocate(*p, 16 << 20, 256, stream);
//
// The allocator owns its pool (cudaMemPoolCreate) rather than using the
// device's default one, so its settings touch no other library. The pool's
// release threshold defaults to "keep everything": the driver's own default
// (0) gives memory back at every synchronisation, which turns steady-state
// allocation back into driver calls. ReleaseCached() synchronises the device
// and trims the pool to zero.

#ifndef MEMORY_CUDA_ASYNC_ALLOCATOR_H_
#define MEMORY_CUDA_ASYNC_ALLOCATOR_H_

#include <cstdint>
#include <limits>
#include <memory>

#include "absl/status/statusor.h"
#include "memory/allocator.h"
#include "memory/internal/atomic_stats.h"
#include "memory/internal/live_set.h"

namespace dilated {
namespace memory {

struct CudaAsyncOptions {
  // Bytes the pool keeps reserved across synchronisations
  // (cudaMemPoolAttrReleaseThreshold).
  uint64_t release_threshold = std::numeric_limits<uint64_t>::max();
};

class CudaAsyncAllocator final : public Allocator {
 public:
  // Blocks from a driver pool are at least 256-byte aligned.
  static constexpr size_t kMaxAlignment = 256;

  // Returns an allocator with a new pool on `device`; InvalidArgument for a
  // device that does not exist, FailedPrecondition if it has no memory
  // pools.
  static absl::StatusOr<std::unique_ptr<CudaAsyncAllocator>> Create(
      int device, CudaAsyncOptions options = {});

  // Synchronises the device and destroys the pool.
  ~CudaAsyncAllocator() override;

 private:
  CudaAsyncAllocator(int device, void* pool);

  absl::StatusOr<void*> DoAllocate(size_t bytes, size_t alignment,
                                   StreamHandle stream) override;
  void DoDeallocate(void* ptr, size_t bytes, size_t alignment,
                    StreamHandle stream) noexcept override;
  size_t DoReleaseCached() override;
  AllocatorStats DoGetStats() const override;

  const int device_;
  void* const pool_;  // cudaMemPool_t; no CUDA type in this header.
  memory_internal::LiveSet live_;
  memory_internal::AtomicStats stats_;
};

}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_CUDA_ASYNC_ALLOCATOR_H_
