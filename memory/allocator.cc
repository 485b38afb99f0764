#include "memory/allocator.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dilated {
namespace memory {

std::string StatsToString(const AllocatorStats& stats) {
  return absl::StrFormat(
      "in_use=%d peak_in_use=%d reserved=%d peak_reserved=%d "
      "allocations=%d deallocations=%d hits=%d misses=%d",
      stats.bytes_in_use, stats.peak_bytes_in_use, stats.bytes_reserved,
      stats.peak_bytes_reserved, stats.allocation_count,
      stats.deallocation_count, stats.pool_hits, stats.pool_misses);
}

Allocator::Allocator(MemorySpace space, size_t max_alignment, std::string name)
    : space_(space), max_alignment_(max_alignment), name_(std::move(name)) {}

absl::Status Allocator::BadAlignment(size_t bytes, size_t alignment) const {
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s: alignment %d (for %d bytes) must be a power of two no larger than "
      "%d",
      name_, alignment, bytes, max_alignment_));
}

absl::Status Allocator::TooLarge(size_t bytes) const {
  return absl::ResourceExhaustedError(
      absl::StrFormat("%s: %d bytes exceed the largest supported allocation "
                      "(%d bytes)",
                      name_, bytes, kMaxAllocationBytes));
}

}  // namespace memory
}  // namespace dilated
