// File: host_allocator.h
//
// HostAllocator: direct aligned host allocation, one posix_memalign and one
// free per block, nothing cached. It is the baseline the pool is measured
// against and the default host allocator (see default_allocator.h).
//
//   dilated::memory::HostAllocator host;
//   absl::StatusOr<void*> p = host.Allocate(1 << 20);  // 64-byte aligned
//   absl::StatusOr<void*> q = host.Allocate(100, /*alignment=*/4096);
//
// Every live block is recorded (an address-sharded table), so that a double
// free or a foreign pointer aborts with a message instead of reaching free().

#ifndef MEMORY_HOST_ALLOCATOR_H_
#define MEMORY_HOST_ALLOCATOR_H_

#include <cstddef>

#include "memory/allocator.h"
#include "memory/internal/atomic_stats.h"
#include "memory/internal/live_set.h"

namespace dilated {
namespace memory {

class HostAllocator final : public Allocator {
 public:
  // 1 GiB: the largest alignment a caller could reasonably need (a huge
  // page); larger ones are InvalidArgument.
  static constexpr size_t kMaxAlignment = size_t{1} << 30;

  HostAllocator();

 private:
  absl::StatusOr<void*> DoAllocate(size_t bytes, size_t alignment,
                                   StreamHandle stream) override;
  void DoDeallocate(void* ptr, size_t bytes, size_t alignment,
                    StreamHandle stream) noexcept override;
  AllocatorStats DoGetStats() const override { return stats_.Snapshot(); }

  memory_internal::LiveSet live_;
  memory_internal::AtomicStats stats_;
};

}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_HOST_ALLOCATOR_H_
