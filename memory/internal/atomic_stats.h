// File: internal/atomic_stats.h
//
// AtomicStats keeps the exact counters of a direct allocator with relaxed
// atomics: in use, peak in use, and the allocation and deallocation counts.
// Direct allocation costs a system or driver call, so a few shared atomics
// per call do not change its cost.

#ifndef MEMORY_INTERNAL_ATOMIC_STATS_H_
#define MEMORY_INTERNAL_ATOMIC_STATS_H_

#include <atomic>
#include <cstdint>

#include "memory/allocator.h"

namespace dilated {
namespace memory {
namespace memory_internal {

class AtomicStats {
 public:
  // Counts a successful allocation of `bytes`.
  void OnAllocate(int64_t bytes) {
    const int64_t now =
        in_use_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    int64_t peak = peak_.load(std::memory_order_relaxed);
    while (now > peak &&
           !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
    allocations_.fetch_add(1, std::memory_order_relaxed);
  }

  // Counts a deallocation of `bytes`.
  void OnDeallocate(int64_t bytes) {
    in_use_.fetch_sub(bytes, std::memory_order_relaxed);
    deallocations_.fetch_add(1, std::memory_order_relaxed);
  }

  // Returns the counters. Reserved equals in use (nothing is cached); the
  // pool counters stay 0.
  AllocatorStats Snapshot() const {
    AllocatorStats stats;
    stats.bytes_in_use = in_use_.load(std::memory_order_relaxed);
    stats.peak_bytes_in_use = peak_.load(std::memory_order_relaxed);
    stats.bytes_reserved = stats.bytes_in_use;
    stats.peak_bytes_reserved = stats.peak_bytes_in_use;
    stats.allocation_count = allocations_.load(std::memory_order_relaxed);
    stats.deallocation_count = deallocations_.load(std::memory_order_relaxed);
    return stats;
  }

 private:
  std::atomic<int64_t> in_use_{0};
  std::atomic<int64_t> peak_{0};
  std::atomic<int64_t> allocations_{0};
  std::atomic<int64_t> deallocations_{0};
};

}  // namespace memory_internal
}  // namespace memory
}  // namespace dilated

#endif  // MEMORY_INTERNAL_ATOMIC_STATS_H_
