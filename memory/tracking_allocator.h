// File: tracking_allocator.h
//
// TrackingAllocator: an adaptor around any allocator that records every live
// block and keeps exact statistics (including the exact peak in use). Tests
// wrap the allocator under test, or a pool's upstream, in one and then check
// that nothing leaked.
//
//   dilated::memory::HostAllocator host;
//   dilated::memory::TrackingAllocator tracked(&host);
//   dilated::memory::PoolAllocator pool(&tracked);
//   ...
//   pool.ReleaseCached();
//   EXPECT_OK(tracked.CheckNoLeaks());  // every segment went back
//
// It takes one mutex per call: it is for tests and diagnostics, not for the
// hot path. A double free or foreign pointer aborts here, before the wrapped
// allocator sees it.

#ifndef MEMORY_TRACKING_ALLOCATOR_H_
#define MEMORY_TRACKING_ALLOCATOR_H_

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "memory/allocator.h"

namespace dilated {
namespace memory {

class TrackingAllocator final : public Allocator {
 public:
  struct Record {
    void* ptr;
    size_t bytes;
    size_t alignment;
    StreamHandle stream;
  };

  // REQUIRES: `upstream` outlives this adaptor.
  explicit TrackingAllocator(Allocator* upstream);

  // Returns OK if no block is live, else FailedPrecondition naming the live
  // blocks (the first ten) and their total.
  absl::Status CheckNoLeaks() const;

  // Returns the live blocks, in no particular order.
  std::vector<Record> LiveBlocks() const;

  // Returns the wrapped allocator.
  Allocator* upstream() const { return upstream_; }

 private:
  absl::StatusOr<void*> DoAllocate(size_t bytes, size_t alignment,
                                   StreamHandle stream) override;
  void DoDeallocate(void* ptr, size_t bytes, size_t alignment,
                    StreamHandle stream) noexcept override;
  size_t DoReleaseCached() override { return upstream_->ReleaseCached(); }
  AllocatorStats DoGetStats() const override;

  Allocator* const upstream_;
  mutable std::mutex mutex_;
  absl::flat_hash_map<void*, Record> live_ ABSL_GUARDED_BY(mutex_);
  AllocatorStats stats_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_TRACKING_ALLOCATOR_H_
