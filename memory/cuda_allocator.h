// File: cuda_allocator.h
//
// CudaAllocator: direct device allocation, one cudaMalloc and one cudaFree
// per block. cudaFree synchronises the whole device, and each call costs
// microseconds (milliseconds for large blocks), so this is the baseline and
// the upstream of the pool, not something to call per tensor.
//
//   absl::StatusOr<std::unique_ptr<CudaAllocator>> device =
//       CudaAllocator::Create(/*device=*/0);
//   absl::StatusOr<void*> p = (*device)->Allocate(16 << 20);
//
// Memory from cudaMalloc is usable on every stream at once; the stream
// arguments are ignored. Blocks are 256-byte aligned (max_alignment()).
// Every live block is recorded, so a double free or foreign pointer aborts
// with a message before it reaches cudaFree.

#ifndef MEMORY_CUDA_ALLOCATOR_H_
#define MEMORY_CUDA_ALLOCATOR_H_

#include <memory>

#include "absl/status/statusor.h"
#include "memory/allocator.h"
#include "memory/internal/atomic_stats.h"
#include "memory/internal/live_set.h"

namespace dilated {
namespace memory {

class CudaAllocator final : public Allocator {
 public:
  // cudaMalloc guarantees 256-byte alignment.
  static constexpr size_t kMaxAlignment = 256;

  // Returns an allocator for `device`, or InvalidArgument if there is no
  // such device (FailedPrecondition without a driver).
  static absl::StatusOr<std::unique_ptr<CudaAllocator>> Create(int device);

 private:
  explicit CudaAllocator(int device);

  absl::StatusOr<void*> DoAllocate(size_t bytes, size_t alignment,
                                   StreamHandle stream) override;
  void DoDeallocate(void* ptr, size_t bytes, size_t alignment,
                    StreamHandle stream) noexcept override;
  AllocatorStats DoGetStats() const override { return stats_.Snapshot(); }

  const int device_;
  memory_internal::LiveSet live_;
  memory_internal::AtomicStats stats_;
};

}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_CUDA_ALLOCATOR_H_
